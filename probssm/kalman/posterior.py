"""Bayesian fits of linear-Gaussian forecasters and forecasts that integrate over the posterior.

With ``method="nuts"`` a :class:`~probssm.kalman.forecaster.LinearGaussianForecaster` samples
:math:`p(\\psi \\mid y) \\propto L(\\psi) \\prod_i \\pi_i(\\psi_i)` with NumPyro's NUTS
(:func:`probssm.fit.bayes.sample_posterior`), started at the MLE. Forecasts, intervals, sample
paths and scores then use the posterior predictive distribution, approximated by the equal-weight
mixture over :math:`S \\le 200` evenly thinned draws:

.. math::

    p(y_{T+h} \\mid y) \\approx \\frac1S \\sum_{s=1}^S N(y_{T+h};\\ \\mu_{h,s}, \\Sigma_{h,s}),

each component the Kalman forecast at draw :math:`\\psi_s`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from scipy import stats

from ..fit.bayes import half_cauchy_variance_prior, log_prior_from, posterior_summary, sample_posterior
from . import compiled
from .inference import filter as kalman_filter
from .inference import sample as kalman_sample

__all__ = ["PosteriorMixin", "mixture_quantiles", "nuts_seed"]

# Draws kept for predictive mixtures: the mixture's quantiles then move by well under the
# posterior's own Monte Carlo error, and every forecast stays one batched filter.
_PREDICTIVE_DRAWS = 200


def nuts_seed(random_state) -> int:
    """The sampler's integer seed from ``random_state``: an int is the seed itself, a
    ``numpy.random.Generator`` gives one draw, ``None`` fresh entropy."""
    if isinstance(random_state, (bool, np.bool_)):
        raise TypeError(f"random_state must be None, an int or a numpy Generator, got {random_state!r}")
    if isinstance(random_state, (int, np.integer)):
        return int(random_state)
    if random_state is None or isinstance(random_state, np.random.Generator):
        return int(np.random.default_rng(random_state).integers(0, 2**31 - 1))
    raise TypeError(
        f"random_state must be None, an int or a numpy Generator, got {type(random_state).__name__}"
    )


def mixture_quantiles(mean, sd, alphas, iterations=80):
    """Quantiles of the equal-weight Gaussian mixture over axis 0 of ``mean``/``sd`` ``(S, ...)``,
    by bisection on its CDF; returns ``(..., len(alphas))``."""
    lo = (mean - 10 * sd).min(0)[..., None] * np.ones(len(alphas))
    hi = (mean + 10 * sd).max(0)[..., None] * np.ones(len(alphas))
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        cdf = stats.norm.cdf((mid[None] - mean[..., None]) / sd[..., None]).mean(0)
        below = cdf < alphas
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return 0.5 * (lo + hi)


class PosteriorMixin:
    """The Bayesian part of :class:`~probssm.kalman.forecaster.LinearGaussianForecaster`:
    priors, the NUTS run, and predictive moments, quantiles, samples and scores under the
    posterior. Fitted attributes: ``posterior_`` (draws, DataFrame ``(chains * samples, k)``),
    ``posterior_summary_`` (mean, sd, 5 % and 95 % quantiles, split-:math:`\\hat R`, ESS),
    ``divergences_``."""

    def _param_kind(self, name: str) -> str:
        """``"variance"``, ``"bounded"`` (flat prior) or ``"location"``, for default priors."""
        return "variance" if name.startswith("sigma2") else "location"

    def _log_priors(self, data) -> list:
        names = self._param_names(data.values.shape[1])
        given = dict(self.priors or {})
        unknown = sorted(set(given) - set(names))
        if unknown:
            raise ValueError(f"priors: unknown parameters {unknown}; the model has {names}")
        y = data.values[:, 0]
        y = y[~np.isnan(y)]
        dy = np.diff(y) if len(y) > 2 else y
        scale_dy = max(float(np.std(dy)), 1e-8 * max(abs(float(np.mean(y))), 1.0))
        scale_y = max(float(np.std(y)) + abs(float(np.mean(y))), 1e-8)
        exog_sd = dict(zip(self._exog_columns or (), np.std(self._X, axis=0))) if self._X is not None else {}
        out = []
        for name in names:
            if name in given:
                out.append(log_prior_from(given[name]))
                continue
            kind = self._param_kind(name)
            if kind == "variance":
                out.append(half_cauchy_variance_prior(scale_dy))
            elif kind == "bounded":
                out.append(lambda v: jnp.zeros_like(v))
            else:
                column = name.split(".", 1)[-1]
                sd = 10 * scale_y / max(float(exog_sd.get(column, 1.0)), 1e-12)
                out.append(lambda v, sd=sd: -0.5 * (v / sd) ** 2 - jnp.log(sd * np.sqrt(2 * np.pi)))
        return out

    def _sample_posterior(self, data, mle) -> np.ndarray:
        """NUTS from the MLE; sets the posterior attributes and returns the posterior mean (or
        the draw nearest to it where the mean leaves the admissible region)."""
        names = self._param_names(data.values.shape[1])
        y, aux, _ = self._padded_data()
        with jax.enable_x64(True):
            theta0 = np.asarray(self._to_unconstrained(jnp.asarray(mle)))
            draws, divergences = sample_posterior(
                compiled.objective(self, self._burn, natural=True), self._to_natural,
                self._log_priors(data), theta0, y, aux,
                num_warmup=int(self.num_warmup), num_samples=int(self.num_samples),
                num_chains=int(self.num_chains), seed=nuts_seed(self.random_state),
                progress_bar=self._show_progress(),
            )
        self._set_posterior(draws, names)
        self.divergences_ = divergences
        mean = self.posterior_.mean().to_numpy()
        try:
            return self._given_params(mean, data)
        except ValueError:
            flat = self.posterior_.to_numpy()
            return flat[np.argmin(np.sum((flat - mean) ** 2, axis=1))]

    def _set_posterior(self, draws, names):
        self._draws = np.asarray(draws)
        self.posterior_ = pd.DataFrame(self._draws.reshape(-1, len(names)), columns=names)
        self.posterior_summary_ = posterior_summary(self._draws, names)
        self._draw_cache = None

    def _predictive_draws(self) -> np.ndarray:
        """Up to 200 posterior draws, evenly thinned, for predictive mixtures ``(S, k)``."""
        flat = self._draws.reshape(-1, self._draws.shape[-1])
        keep = np.unique(np.linspace(0, len(flat) - 1, min(len(flat), _PREDICTIVE_DRAWS)).astype(int))
        return flat[keep]

    def _draw_states(self):
        """Per-draw prediction of the state after the data, :math:`p(x_T \\mid y, \\psi_s)`:
        ``(draws (S, k), means (S, n), covariances (S, n, n))``, cached until ``update``."""
        key = self._y.num_timesteps
        if self._draw_cache is None or self._draw_cache[0] != key:
            y, aux, T = self._padded_data()

            def one(p):
                model, _ = self._model(p, aux)
                return compiled.state_after(kalman_filter(model, y, method="sequential"), T)

            with jax.enable_x64(True):
                draws = jnp.asarray(self._predictive_draws())
                mean, cov = jax.jit(jax.vmap(one))(draws)
            self._draw_cache = (key, draws, mean, cov)
        return self._draw_cache[1:]

    def _future_models(self, exog, steps):
        """The forecast-period model of every predictive draw (a batched LGSSM)."""
        draws, mean, cov = self._draw_states()
        aux = self._aux(exog, self._y.num_timesteps, steps)

        def one(p, m, P):
            model = self._build(p, aux)
            return model.replace(initial_mean=m, initial_cov=P, initial_diffuse_cov=None)

        return jax.vmap(one)(draws, mean, cov)

    def _posterior_forecast(self, horizon, exog):
        """Per-draw predictive moments ``(S, h, m)`` and ``(S, h, m, m)``."""
        nan = jnp.full((horizon, self._y.values.shape[1]), jnp.nan)
        with jax.enable_x64(True):
            models = self._future_models(exog, horizon)
            res = jax.vmap(lambda m: kalman_filter(m, nan, method="sequential"))(models)
            return np.asarray(res.observation_mean), np.asarray(res.observation_cov)

    def _posterior_moments(self, steps, exog):
        """Mean and variance of the predictive mixture at ``steps``, each ``(len(steps), m)``."""
        mean, cov = self._posterior_forecast(int(np.max(steps)), exog)
        idx = np.asarray(steps) - 1
        var = np.diagonal(cov, axis1=-2, axis2=-1)
        return mean.mean(0)[idx], (var.mean(0) + mean.var(0))[idx]

    def _posterior_quantiles(self, steps, alphas, exog):
        """Quantiles of the predictive mixture ``(len(steps), m, len(alphas))``."""
        mean, cov = self._posterior_forecast(int(np.max(steps)), exog)
        idx = np.asarray(steps) - 1
        sd = np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))[:, idx]
        return mixture_quantiles(mean[:, idx], sd, np.asarray(alphas))

    def _posterior_sample(self, horizon, n_samples, rng, key, exog):
        """Sample paths ``(n_samples, horizon, m)``, each from its own posterior draw."""
        models = self._future_models(exog, horizon)
        pick = jnp.asarray(rng.integers(0, models.initial_mean.shape[0], n_samples))
        keys = jax.random.split(key, n_samples)

        def one(i, k):
            return kalman_sample(jax.tree_util.tree_map(lambda a: a[i], models), k, horizon)[1]

        return jax.vmap(one)(pick, keys)

    def _posterior_log_predictive(self, new, exog) -> float:
        """:math:`\\log \\frac1S \\sum_s p(y_{new} \\mid y, \\psi_s)`."""
        models = self._future_models(exog, new.num_timesteps)
        ll = jax.vmap(lambda m: kalman_filter(m, new.values, method="sequential").log_likelihood)(models)
        return float(jax.scipy.special.logsumexp(ll) - np.log(ll.shape[0]))

    def _posterior_summary_text(self) -> str:
        """The posterior table of :meth:`summary` after a NUTS fit."""
        chains, draws = self._draws.shape[:2]
        head = [
            f"{type(self).__name__} posterior (NUTS)",
            f"  observations: {self.nobs_}    initialization: {self.initialization}",
            f"  chains: {chains}    draws per chain: {draws}    warm-up: {int(self.num_warmup)}"
            f"    divergences: {self.divergences_}",
            f"  log-likelihood at the posterior mean: {self.loglik_:.5f}",
            "",
        ]
        table = self.posterior_summary_.rename(columns={"q5": "5%", "q95": "95%"})
        return "\n".join(head) + table.to_string(float_format=lambda v: f"{v:.6g}")
