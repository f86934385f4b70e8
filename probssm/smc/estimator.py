"""``ParticleFilter``: a :mod:`probssm.ssm` model on the forecasting contract, filtered by
sequential Monte Carlo, its parameters fitted by PMMH or by the differentiable filter."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from ..base import BaseForecaster, StateEstimates
from ..ssm import StateSpaceModel
from . import filtering
from .differentiable import gradient_ascent
from .filtering import check_functions, check_model, make_config, run
from .forecasting import simulate
from .pmmh import pmmh
from .smoothing import SMOOTHERS, smooth

__all__ = ["ParticleFilter"]

METHODS = ("mle", "pmmh")
# Posterior draws kept for predictive mixtures and online updates (each with its own particle
# system), and predictive paths behind forecasts, intervals and quantiles.
_PREDICTIVE_DRAWS = 32
_FORECAST_PATHS = 4000


def _float64(model: StateSpaceModel) -> StateSpaceModel:
    return jax.tree_util.tree_map(lambda leaf: jnp.asarray(np.asarray(leaf, dtype=np.float64)), model)


def _seed(random_state) -> int:
    from ..kalman.posterior import nuts_seed
    return nuts_seed(random_state)


def _labels(name, shape):
    return [name] if shape == () else [f"{name}[{','.join(map(str, ix))}]" for ix in np.ndindex(*shape)]


class ParticleFilter(BaseForecaster):
    """Particle filter and smoother of a model specification, on the forecasting contract.

    .. math::

        x_0 \\sim p_\\psi(x_0), \\quad x_{t+1} \\mid x_t \\sim p_\\psi(\\cdot \\mid x_t, t), \\quad
        y_t \\mid x_t \\sim p_\\psi(\\cdot \\mid x_t, t),

    filtered by :func:`probssm.smc.filter` (any NumPyro emission: counts, heavy tails,
    stochastic volatility), smoothed by :func:`probssm.smc.smooth`, forecast by simulation from
    the particle system after the data.

    Parameters
    ----------
    model : StateSpaceModel
        The specification with its (starting) parameters. ``t`` in its functions counts time
        steps from the first training observation.
    estimate : tuple of str or dict
        Parameters to fit: keys of ``model.params`` (a dict) and, for an
        :class:`~probssm.ssm.AdditiveGaussianSSM`, ``"Q"``, ``"R"``, ``"m0"``, ``"P0"``. For
        ``method="mle"`` as in :class:`probssm.ExtendedKalmanFilter` (``{name: "real" |
        "positive" | "cov"}`` chooses the constraint); for ``method="pmmh"`` the names need
        priors (empty: the keys of ``priors``). Empty and no priors: ``fit`` only filters.
    priors : dict, optional
        ``{name: numpyro Distribution}`` (``method="pmmh"``); the support sets the transform.
    method : ``"mle"`` or ``"pmmh"``
        ``"mle"``: gradient ascent (Adam, ``max_iter`` steps) on the differentiable filter's
        log-likelihood (:func:`probssm.smc.differentiable_log_likelihood`; consistent, biased
        by :math:`O(T/N)`); ``"pmmh"``: particle marginal Metropolis-Hastings
        (:func:`probssm.smc.pmmh`), the posterior kept, ``params_`` its mean, forecasts
        integrating over it.
    n_particles : int
        Particles of the filter, smoother and forecasts (and of each PMMH likelihood estimate,
        unless ``pmmh_particles``).
    resampling, ess_threshold, proposal
        As in :func:`probssm.smc.filter`.
    smoother : ``"ffbs"``, ``"rejection"`` or ``"genealogy"``
        The method of ``smooth()``.
    num_warmup, num_samples, num_chains, pmmh_particles
        PMMH settings.
    max_iter, learning_rate
        Gradient-ascent settings of ``method="mle"``.
    random_state : None, int or numpy Generator
        Seeds the fit, the filter and the forecasts (an int gives reproducible results).

    Attributes
    ----------
    params_ : Series
        Fitted natural parameter values (posterior means under PMMH).
    model_ : StateSpaceModel
        The model with them.
    log_likelihood_ : float
        The particle estimate of :math:`\\log p(y)` at ``params_`` over all data seen.
    posterior_ : DataFrame
        PMMH draws ``(chains * samples, k)``, one column per scalar parameter.
    posterior_summary_ : DataFrame
        Mean, sd, quantiles, split-:math:`\\hat R` and ESS of each parameter.
    acceptance_rate_ : ndarray ``(chains,)``

    Notes
    -----
    ``save`` stores parameters, posterior draws and the particle systems; the model's functions
    (and priors, and a callable proposal) are code, so :func:`probssm.load` takes them again:
    ``probssm.load(path, model=spec, priors=priors)``.
    """

    def __init__(self, model=None, estimate=(), priors=None, method="mle", n_particles=1000,
                 resampling="systematic", ess_threshold=0.5, proposal="bootstrap", smoother="ffbs",
                 num_warmup=1000, num_samples=1000, num_chains=4, pmmh_particles=None, max_iter=200,
                 learning_rate=0.05, random_state=None):
        self.model = model
        self.estimate = estimate
        self.priors = priors
        self.method = method
        self.n_particles = n_particles
        self.resampling = resampling
        self.ess_threshold = ess_threshold
        self.proposal = proposal
        self.smoother = smoother
        self.num_warmup = num_warmup
        self.num_samples = num_samples
        self.num_chains = num_chains
        self.pmmh_particles = pmmh_particles
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.random_state = random_state

    @property
    def _code_params(self):
        """Hyper-parameters that are code (not saved; :func:`probssm.load` takes them again)."""
        names = ["model"]
        if self.priors is not None:
            names.append("priors")
        if not isinstance(self.proposal, str):
            names.append("proposal")
        return tuple(names)

    # -- configuration ---------------------------------------------------------------------------
    def _check_hyper(self):
        check_model(self.model)
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.smoother not in SMOOTHERS:
            raise ValueError(f"smoother must be one of {SMOOTHERS}, got {self.smoother!r}")
        self._filter_config = make_config(self.n_particles, self.proposal, self.resampling, self.ess_threshold)
        self._rng = np.random.default_rng(_seed(self.random_state))
        self._forecast_seed = int(self._rng.integers(0, 2**31 - 1))

    def _next_key(self):
        return jax.random.PRNGKey(int(self._rng.integers(0, 2**31 - 1)))

    def _estimated_names(self) -> list:
        if isinstance(self.estimate, str):
            return [self.estimate]
        names = list(self.estimate)
        if not names and self.method == "pmmh" and self.priors:
            names = list(self.priors)
        return names

    def _build(self, values: dict) -> StateSpaceModel:
        from ..fit.parameters import replace_parameters
        base = _float64(self.model)
        return replace_parameters(base, {k: jnp.asarray(v) for k, v in values.items()}) if values else base

    # -- fitting ---------------------------------------------------------------------------------
    def _fit(self, data):
        self._check_hyper()
        with jax.enable_x64(True):
            model = _float64(self.model)
            m = model.observation_dim
            if data.values.shape[1] != m:
                raise ValueError(f"y has {data.values.shape[1]} variables but the model's emission has "
                                 f"dimension {m}")
            y = jnp.asarray(data.values)
            check_functions(model, self._filter_config, y)
            names = self._estimated_names()
            self._values, self._draws, self.posterior_ = {}, None, None
            if names and self.method == "pmmh":
                self._fit_pmmh(model, y, names)
            elif names:
                self._fit_mle(model, y)
            self._shapes = {k: tuple(np.shape(v)) for k, v in self._values.items()}
            self.params_ = self._params_series()
            self._refilter()

    def _fit_pmmh(self, model, y, names):
        priors = dict(self.priors or {})
        missing = [n for n in names if n not in priors]
        if missing:
            raise ValueError(f"method='pmmh' needs a prior for every estimated parameter; missing {missing} "
                             f"(pass priors={{name: numpyro distribution}})")
        res = pmmh(model, y, self._next_key(), {n: priors[n] for n in names},
                   n_particles=int(self.pmmh_particles or self.n_particles), num_samples=int(self.num_samples),
                   num_warmup=int(self.num_warmup), num_chains=int(self.num_chains),
                   proposal=self.proposal, resampling=self.resampling, ess_threshold=self.ess_threshold)
        self.posterior_ = res.draws.reset_index(drop=True)
        self.posterior_summary_ = res.summary
        self.acceptance_rate_ = res.acceptance_rate
        self._values = {n: np.asarray(v).reshape((-1,) + np.shape(v)[2:]).mean(0) for n, v in res.samples.items()}
        # evenly thinned draws for the predictive mixture
        flat = {n: np.asarray(v).reshape((-1,) + np.shape(v)[2:]) for n, v in res.samples.items()}
        total = next(iter(flat.values())).shape[0]
        pick = np.linspace(0, total - 1, min(_PREDICTIVE_DRAWS, total)).round().astype(int)
        self._draws = {n: v[pick] for n, v in flat.items()}

    def _fit_mle(self, model, y):
        from ..fit.parameters import ParameterSpace
        space = ParameterSpace(model, self.estimate)
        config = make_config(self.n_particles, self.proposal, self.resampling, self.ess_threshold,
                             differentiable=True, summaries=False)

        def objective(theta, key):
            ll = run(space.build(theta), y, key, config).log_likelihood
            return jnp.where(jnp.isfinite(ll), ll, -jnp.inf)

        res = gradient_ascent(objective, jnp.asarray(space.theta0), self._next_key(), num_steps=int(self.max_iter),
                              learning_rate=float(self.learning_rate))
        values = space.values(jnp.asarray(res.theta))
        self._values = {k: np.asarray(v) for k, v in values.items()}
        self.optimization_trace_ = pd.DataFrame(space.natural(res.trace) if res.trace.ndim == 1 else
                                                np.stack([space.natural(t) for t in res.trace]),
                                                columns=space.names)

    def _params_series(self) -> pd.Series:
        labels, values = [], []
        for name, value in self._values.items():
            labels += _labels(name, np.shape(value))
            values += list(np.asarray(value, dtype=np.float64).reshape(-1))
        return pd.Series(values, index=labels, name="estimate", dtype=np.float64)

    @property
    def model_(self) -> StateSpaceModel:
        """The model with the fitted parameters."""
        self._check_is_fitted()
        with jax.enable_x64(True):
            return self._build(self._values)

    def _refilter(self):
        """Filter all data seen at ``params_`` (and, under PMMH, at each kept draw)."""
        with jax.enable_x64(True):
            y = jnp.asarray(self._y.values)
            res = filtering._compiled(self._build(self._values), y, self._next_key(), self._filter_config)
            filtering.raise_if_degenerate(res, y)
            self._filtered = (np.asarray(res.mean), np.asarray(res.cov))
            self._increments = np.asarray(res.log_likelihood_increments)
            self._cloud = (np.asarray(res.particles), np.asarray(res.log_weights))
            self.log_likelihood_ = float(res.log_likelihood)
            self._draw_clouds = None
            if self._draws is not None:
                out = _filter_draws(self._build({}), self._draws, y, self._next_key(), self._filter_config, 0, None)
                self._draw_clouds = (np.asarray(out.particles), np.asarray(out.log_weights))

    # -- continuing past the data ----------------------------------------------------------------
    def _continue(self, y_new, key):
        """The filter over ``y_new`` ``(k, m)`` from the particle systems after the data:
        ``(point result, draws result or None)``."""
        y = jnp.asarray(y_new, dtype=jnp.float64)
        start = self._y.num_timesteps
        point = _continue_point(self._build(self._values), y, key, self._filter_config, start,
                                tuple(jnp.asarray(a) for a in self._cloud))
        draws = None
        if self._draw_clouds is not None:
            draws = _filter_draws(self._build({}), self._draws, y, jax.random.fold_in(key, 1), self._filter_config, start,
                                  tuple(jnp.asarray(a) for a in self._draw_clouds))
        return point, draws

    def _update(self, new, exog=None):
        with jax.enable_x64(True):
            point, draws = self._continue(new.values, self._next_key())
            filtering.raise_if_degenerate(point, new.values, start=self._y.num_timesteps)
            self._filtered = (np.concatenate([self._filtered[0], np.asarray(point.mean)]),
                              np.concatenate([self._filtered[1], np.asarray(point.cov)]))
            self._increments = np.concatenate([self._increments, np.asarray(point.log_likelihood_increments)])
            self._cloud = (np.asarray(point.particles), np.asarray(point.log_weights))
            self.log_likelihood_ += float(point.log_likelihood)
            if draws is not None:
                self._draw_clouds = (np.asarray(draws.particles), np.asarray(draws.log_weights))

    def _log_predictive(self, new, exog=None) -> float:
        with jax.enable_x64(True):
            point, draws = self._continue(new.values, self._next_key())
            if draws is None:
                return float(point.log_likelihood)
            ll = np.asarray(draws.log_likelihood)
            return float(np.logaddexp.reduce(ll) - math.log(len(ll)))

    def _simulate(self, horizon: int, n_paths: int, key):
        """Predictive observation paths ``(n_paths, horizon, m)`` (posterior predictive under PMMH)."""
        with jax.enable_x64(True):
            start = self._y.num_timesteps
            if self._draw_clouds is None:
                _, ys = _simulate_point(self._build(self._values), key, *(jnp.asarray(a) for a in self._cloud),
                                        start, horizon, n_paths)
                return np.asarray(ys)
            S = next(iter(self._draws.values())).shape[0]
            per = math.ceil(n_paths / S)
            ys = _simulate_draws(self._build({}), self._draws, key, *(jnp.asarray(a) for a in self._draw_clouds),
                                 start, horizon, per)
            return np.asarray(ys).reshape((-1,) + ys.shape[2:])[:n_paths]

    def _forecast_paths(self, steps):
        horizon = int(np.max(steps))
        # one fixed key: predict, predict_interval and predict_quantiles read the same paths
        ys = self._simulate(horizon, _FORECAST_PATHS, jax.random.PRNGKey(self._forecast_seed))
        return ys[:, np.asarray(steps) - 1, :]

    def _forecast_moments(self, steps, exog=None):
        ys = self._forecast_paths(steps)
        return ys.mean(axis=0), ys.var(axis=0, ddof=1)

    def _predict_quantiles(self, steps, alphas, exog=None) -> np.ndarray:
        ys = self._forecast_paths(steps)
        return np.moveaxis(np.quantile(ys, np.asarray(alphas), axis=0), 0, -1)

    def _sample(self, steps, n_samples, rng, exog=None):
        key = jax.random.PRNGKey(int(rng.integers(0, 2**31 - 1)))
        return self._simulate(int(np.max(steps)), n_samples, key)[:, np.asarray(steps) - 1, :]

    # -- latent states ---------------------------------------------------------------------------
    def _state_names(self):
        return [f"state_{i}" for i in range(self._filtered[0].shape[1])]

    def _estimates(self, mean, cov, loglik) -> StateEstimates:
        return StateEstimates.from_moments(mean, cov, self._y.index, self._state_names(), loglik)

    def _filter(self) -> StateEstimates:
        return self._estimates(*self._filtered, self.log_likelihood_)

    def _smooth(self) -> StateEstimates:
        with jax.enable_x64(True):
            res = smooth(self._build(self._values), self._y.values, self._next_key(), self.n_particles,
                         method=self.smoother, proposal=self.proposal, resampling=self.resampling,
                         ess_threshold=self.ess_threshold)
            return self._estimates(np.asarray(res.mean), np.asarray(res.cov), res.log_likelihood)

    # -- persistence -----------------------------------------------------------------------------
    def _fitted_state(self):
        meta = {"log_likelihood_": self.log_likelihood_,
                "params": {k: list(v) for k, v in self._shapes.items()},
                "rng": self._rng.bit_generator.state, "forecast_seed": self._forecast_seed}
        arrays = {"filtered_mean": self._filtered[0], "filtered_cov": self._filtered[1],
                  "increments": self._increments, "cloud_particles": self._cloud[0],
                  "cloud_log_weights": self._cloud[1]}
        for name, value in self._values.items():
            arrays[f"value__{name}"] = np.asarray(value)
        if self._draws is not None:
            for name, value in self._draws.items():
                arrays[f"draw__{name}"] = np.asarray(value)
            arrays["draw_particles"], arrays["draw_log_weights"] = self._draw_clouds
            arrays["posterior"] = self.posterior_.to_numpy()
            arrays["acceptance_rate"] = np.asarray(self.acceptance_rate_)
            meta["posterior_columns"] = list(self.posterior_.columns)
            meta["summary"] = {"index": list(self.posterior_summary_.index),
                               "columns": list(self.posterior_summary_.columns),
                               "values": self.posterior_summary_.to_numpy().tolist()}
        return meta, arrays

    def _restore_fitted_state(self, meta, arrays):
        self._check_hyper()
        self._rng.bit_generator.state = meta["rng"]
        self._forecast_seed = int(meta["forecast_seed"])
        self._shapes = {k: tuple(v) for k, v in meta["params"].items()}
        self._values = {k: arrays[f"value__{k}"] for k in self._shapes}
        self._filtered = (arrays["filtered_mean"], arrays["filtered_cov"])
        self._increments = arrays["increments"]
        self._cloud = (arrays["cloud_particles"], arrays["cloud_log_weights"])
        self.log_likelihood_ = meta["log_likelihood_"]
        self.params_ = self._params_series()
        self._draws, self._draw_clouds, self.posterior_ = None, None, None
        if "posterior" in arrays:
            self._draws = {k: arrays[f"draw__{k}"] for k in self._shapes}
            self._draw_clouds = (arrays["draw_particles"], arrays["draw_log_weights"])
            self.posterior_ = pd.DataFrame(arrays["posterior"], columns=meta["posterior_columns"])
            self.acceptance_rate_ = arrays["acceptance_rate"]
            s = meta["summary"]
            self.posterior_summary_ = pd.DataFrame(s["values"], index=s["index"], columns=s["columns"])


# ------------------------------------------------------------------------------------------------
# compiled programs shared by all instances (the model and the draws are arguments)
# ------------------------------------------------------------------------------------------------
def _build_with(model, values):
    from ..fit.parameters import replace_parameters
    return replace_parameters(model, values) if values else model


def _filter_draws_impl(model, draws, y, key, config, start, state):
    S = next(iter(draws.values())).shape[0]
    keys = jax.random.split(key, S)
    if state is None:
        return jax.vmap(lambda v, k: run(_build_with(model, v), y, k, config, start))(draws, keys)
    return jax.vmap(lambda v, k, s: run(_build_with(model, v), y, k, config, start, s))(draws, keys, state)


_filter_draws = jax.jit(_filter_draws_impl, static_argnames=("config",))


def _continue_point_impl(model, y, key, config, start, state):
    return run(model, y, key, config, start, state)


_continue_point = jax.jit(_continue_point_impl, static_argnames=("config",))


def _simulate_point_impl(model, key, particles, log_weights, start, horizon, n_paths):
    return simulate(model, key, particles, log_weights, start, horizon, n_paths)


_simulate_point = jax.jit(_simulate_point_impl, static_argnames=("horizon", "n_paths"))


def _simulate_draws_impl(model, draws, key, particles, log_weights, start, horizon, per_draw):
    S = particles.shape[0]
    keys = jax.random.split(key, S)
    return jax.vmap(lambda v, k, p, lw: simulate(_build_with(model, v), k, p, lw, start, horizon, per_draw)[1])(
        draws, keys, particles, log_weights)


_simulate_draws = jax.jit(_simulate_draws_impl, static_argnames=("horizon", "per_draw"))
