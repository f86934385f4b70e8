"""``ExtendedKalmanFilter`` and ``UnscentedKalmanFilter``: a nonlinear model specification on the
forecasting contract."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from ..base import BaseForecaster, StateEstimates
from ..fit.mle import maximize_likelihood
from ..kalman._linalg import chol_psd
from ..ssm import StateSpaceModel
from . import inference
from .filtering import filter_from
from ..fit.parameters import ParameterSpace
from .rules import Cubature, Extended, GaussHermite, Unscented

__all__ = ["ExtendedKalmanFilter", "UnscentedKalmanFilter"]


def _float64(model: StateSpaceModel) -> StateSpaceModel:
    """The model with float64 leaves (inside an ``enable_x64`` scope)."""
    return jax.tree_util.tree_map(lambda leaf: jnp.asarray(np.asarray(leaf, dtype=np.float64)), model)


class _NonlinearForecaster(BaseForecaster):
    """The estimator contract around :func:`probssm.nonlinear.filter` and ``smooth`` for one rule.

    Time steps: ``t = 0`` is the first training observation; forecasts continue the count.
    Everything computes in float64 (scoped).
    """

    _code_params = ("model",)

    # -- hooks of the subclasses -----------------------------------------------------------------
    def _rule(self):
        raise NotImplementedError

    # -- fitting ---------------------------------------------------------------------------------
    def _check_hyper(self):
        if not isinstance(self.model, StateSpaceModel):
            raise TypeError(f"model must be a probssm.ssm.StateSpaceModel or AdditiveGaussianSSM, "
                            f"got {type(self.model).__name__}")
        if self.method != "mle":
            raise ValueError(f"method must be 'mle', got {self.method!r}")
        self._rule_ = self._rule()
        with jax.enable_x64(True):
            self._space = ParameterSpace(_float64(self.model), self.estimate)

    def _fit(self, data):
        self._check_hyper()
        with jax.enable_x64(True):
            m = self._space.model.observation_dim
        if data.values.shape[1] != m:
            raise ValueError(f"y has {data.values.shape[1]} variables but the model's emission has "
                             f"dimension {m}")
        space, rule, y = self._space, self._rule_, data.values
        theta = space.theta0
        self.converged_ = True
        if theta.size:
            def log_likelihood(theta_, y_):
                return inference.filter(space.build(theta_), y_, rule).log_likelihood

            result = maximize_likelihood(log_likelihood, theta, y, max_iter=self.max_iter)
            theta, self.converged_ = result.theta, result.converged
        self._theta = np.asarray(theta, dtype=np.float64)
        self.params_ = pd.Series(space.natural(self._theta), index=space.names, name="estimate",
                                 dtype=np.float64)
        self._refilter()

    def _model(self) -> StateSpaceModel:
        return self._space.build(jnp.asarray(self._theta))

    @property
    def model_(self) -> StateSpaceModel:
        """The model with the fitted parameters."""
        self._check_is_fitted()
        with jax.enable_x64(True):
            return self._model()

    def _refilter(self):
        """Filter all the data seen so far with the fitted parameters."""
        with jax.enable_x64(True):
            res = inference.filter(self._model(), self._y.values, self._rule_)
            self._filtered = (np.asarray(res.mean), np.asarray(res.cov))
            self._next = (np.asarray(res.next_mean), np.asarray(res.next_cov))
            self.log_likelihood_ = float(res.log_likelihood)

    # -- continuing past the data ------------------------------------------------------------------
    def _from_next(self, y):
        """The filter over ``y`` ``(k, m)`` (NaN rows: pure prediction) from the state after the
        data; returns its per-step outputs (numpy) and the following state."""
        with jax.enable_x64(True):
            model = self._model()
            mean, cov = (jnp.asarray(a) for a in self._next)
            out, next_mean, next_cov = _continue(model, jnp.asarray(y, dtype=jnp.float64), self._rule_,
                                                 mean, cov, self._y.num_timesteps)
            return jax.tree_util.tree_map(np.asarray, out), (np.asarray(next_mean), np.asarray(next_cov))

    def _update(self, new, exog=None):
        out, self._next = self._from_next(new.values)
        self._filtered = (np.concatenate([self._filtered[0], out["mean"]]),
                          np.concatenate([self._filtered[1], out["cov"]]))
        self.log_likelihood_ += float(np.sum(out["loglik"]))

    def _forecast_moments(self, steps, exog=None):
        horizon = int(np.max(steps))
        out, _ = self._from_next(np.full((horizon, self._y.values.shape[1]), np.nan))
        H, P = out["H"], out["predicted_cov"]
        mean = np.einsum("tij,tj->ti", H, out["predicted_mean"]) + out["d"]
        cov = H @ P @ np.swapaxes(H, 1, 2) + out["R"]
        idx = np.asarray(steps) - 1
        return mean[idx], np.diagonal(cov[idx], axis1=-2, axis2=-1).copy()

    def _sample(self, steps, n_samples, rng, exog=None):
        """Paths from the model itself, started from the Gaussian filtered state after the data."""
        horizon = int(np.max(steps))
        with jax.enable_x64(True):
            model = self._model()
            key = jax.random.PRNGKey(int(rng.integers(0, 2**31 - 1)))
            obs = _simulate(model, key, jnp.asarray(self._next[0]), jnp.asarray(self._next[1]),
                            self._y.num_timesteps, horizon, n_samples)
        return np.asarray(obs)[:, np.asarray(steps) - 1, :]

    def _log_predictive(self, new, exog=None) -> float:
        out, _ = self._from_next(new.values)
        return float(np.sum(out["loglik"]))

    # -- latent states --------------------------------------------------------------------------
    def _state_names(self):
        return [f"state_{i}" for i in range(self._filtered[0].shape[1])]

    def _estimates(self, mean, cov, loglik) -> StateEstimates:
        return StateEstimates.from_moments(mean, cov, self._y.index, self._state_names(), loglik)

    def _filter(self) -> StateEstimates:
        return self._estimates(*self._filtered, self.log_likelihood_)

    def _smooth(self) -> StateEstimates:
        with jax.enable_x64(True):
            res = inference.smooth(self._model(), self._y.values, self._rule_, iterated=self.iterated)
            return self._estimates(np.asarray(res.mean), np.asarray(res.cov), res.log_likelihood)

    # -- persistence ----------------------------------------------------------------------------
    def _fitted_state(self):
        meta = {"log_likelihood_": self.log_likelihood_, "converged_": bool(self.converged_),
                "param_names": list(self.params_.index)}
        arrays = {"theta": self._theta, "filtered_mean": self._filtered[0],
                  "filtered_cov": self._filtered[1], "next_mean": self._next[0], "next_cov": self._next[1]}
        return meta, arrays

    def _restore_fitted_state(self, meta, arrays):
        self._check_hyper()
        self._theta = arrays["theta"]
        self._filtered = (arrays["filtered_mean"], arrays["filtered_cov"])
        self._next = (arrays["next_mean"], arrays["next_cov"])
        self.log_likelihood_ = meta["log_likelihood_"]
        self.converged_ = meta["converged_"]
        self.params_ = pd.Series(self._space.natural(self._theta), index=meta["param_names"],
                                 name="estimate", dtype=np.float64)


def _continue_impl(model, y, rule, mean, cov, start):
    return filter_from(model, y, rule, mean, chol_psd(cov), start, (mean, cov))


_continue = jax.jit(_continue_impl, static_argnames=("rule",))


def _simulate_impl(model, key, mean, cov, start, horizon, n_samples):
    def one(key_):
        k0, k_path = jax.random.split(key_)
        x = mean + chol_psd(cov) @ jax.random.normal(k0, mean.shape, mean.dtype)

        def step(x_, inputs):
            t, k = inputs
            k_obs, k_next = jax.random.split(k)
            y_t = model._sample_emission(k_obs, x_, t)
            return model._sample_transition(k_next, x_, t), y_t

        steps = start + jnp.arange(horizon)
        return jax.lax.scan(step, x, (steps, jax.random.split(k_path, horizon)))[1]

    return jax.vmap(one)(jax.random.split(key, n_samples))


_simulate = jax.jit(_simulate_impl, static_argnames=("horizon", "n_samples"))


class ExtendedKalmanFilter(_NonlinearForecaster):
    """Extended Kalman filter and smoother of a nonlinear model, on the forecasting contract.

    .. math::

        x_{t+1} \\mid x_t \\sim p_\\theta(\\cdot \\mid x_t, t), \\qquad
        y_t \\mid x_t \\sim p_\\theta(\\cdot \\mid x_t, t),

    linearised by first-order Taylor expansion at each step (:class:`probssm.nonlinear.Extended`;
    Jacobians by ``jax.jacfwd``), every step then a :mod:`probssm.kalman` step.

    Parameters
    ----------
    model : StateSpaceModel
        The specification with its (starting) parameters, usually a
        :class:`probssm.ssm.AdditiveGaussianSSM`. ``t`` in its functions counts time steps from
        the first training observation.
    estimate : tuple of str or dict
        Parameters to estimate by maximum likelihood of the filter's approximate likelihood:
        keys of ``model.params`` (a dict) and, for the additive form, ``"Q"``, ``"R"``, ``"m0"``,
        ``"P0"``; as a dict ``{name: "real" | "positive" | "cov"}`` to choose the constraint
        (see :class:`probssm.fit.parameters.ParameterSpace`). Empty: ``fit`` only filters.
    method : ``"mle"``
        The estimation method (L-BFGS with exact gradients of the approximate log-likelihood).
    iterated : bool
        ``smooth()`` runs the iterated extended smoother (Gauss-Newton: the MAP path).
    max_iter : int
        Maximum L-BFGS iterations.

    Attributes
    ----------
    params_ : Series
        The estimated parameters' natural values (one entry per scalar).
    model_ : StateSpaceModel
        The model with them.
    log_likelihood_ : float
        The approximate log-likelihood of all data seen (including ``update``).
    converged_ : bool

    Notes
    -----
    ``save`` stores the estimated parameters and the filter's results; the model's functions are
    code, so :func:`probssm.load` takes the specification again: ``probssm.load(path,
    model=spec)``.
    """

    def __init__(self, model=None, estimate=(), method="mle", iterated=False, max_iter=200):
        self.model = model
        self.estimate = estimate
        self.method = method
        self.iterated = iterated
        self.max_iter = max_iter

    def _rule(self):
        return Extended()


class UnscentedKalmanFilter(_NonlinearForecaster):
    """Sigma-point Kalman filter and smoother (unscented, cubature or Gauss-Hermite) of a nonlinear
    model, on the forecasting contract.

    Every step linearises the transition and the emission by statistical linear regression over
    sigma points (:mod:`probssm.nonlinear.rules`) and makes a :mod:`probssm.kalman` step; for
    emissions that are not additive-Gaussian the regression uses the conditional mean and
    variance (posterior linearisation).

    Parameters
    ----------
    model, estimate, method, max_iter
        As in :class:`ExtendedKalmanFilter`.
    rule : ``"unscented"``, ``"cubature"`` or ``"gauss_hermite"``
    alpha, beta, kappa : float
        Unscented-transform parameters (:class:`probssm.nonlinear.Unscented`).
    order : int
        Points per dimension of the Gauss-Hermite rule.
    iterated : bool
        ``smooth()`` runs the iterated posterior-linearisation smoother.
    """

    def __init__(self, model=None, estimate=(), rule="unscented", alpha=1.0, beta=0.0, kappa=0.0,
                 order=3, method="mle", iterated=False, max_iter=200):
        self.model = model
        self.estimate = estimate
        self.rule = rule
        self.alpha = alpha
        self.beta = beta
        self.kappa = kappa
        self.order = order
        self.method = method
        self.iterated = iterated
        self.max_iter = max_iter

    def _rule(self):
        if self.rule == "unscented":
            return Unscented(float(self.alpha), float(self.beta), float(self.kappa))
        if self.rule == "cubature":
            return Cubature()
        if self.rule == "gauss_hermite":
            return GaussHermite(int(self.order))
        raise ValueError(f"rule must be 'unscented', 'cubature' or 'gauss_hermite', got {self.rule!r}")
