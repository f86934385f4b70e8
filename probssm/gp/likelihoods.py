"""Observation models of :class:`~probssm.gp.GaussianProcess`: Gaussian (exact) and Poisson,
Bernoulli and Student-t (Laplace approximation, :mod:`probssm.gp.laplace`).

Each likelihood answers the estimator's questions in one place: the (approximate) log marginal
likelihood, the posterior of :math:`f` at new times, its joint samples, and the predictive
distribution of :math:`y` given :math:`f \\sim N(m, v)`. A non-Gaussian likelihood reduces to the
Gaussian one on its pseudo-observations at the posterior mode.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln
from scipy import stats

from . import inference, laplace

__all__ = ["Likelihood", "Gaussian", "Poisson", "Bernoulli", "StudentT", "LIKELIHOODS", "resolve_likelihood"]

# Draws of f per new time for predictive quantiles of a non-Gaussian y (fixed seed: the same
# quantiles on every call).
_QUANTILE_DRAWS = 4000


class Likelihood:
    """Common interface; :class:`Gaussian` is exact, the others go through pseudo-observations."""

    name = ""
    uses_noise = False

    def check_observations(self, values: np.ndarray) -> None:
        """Raise ``ValueError`` for values outside the likelihood's support."""

    def initial_f(self, y):
        """Where the Laplace iteration starts, per observation (traced; NaN where missing is
        allowed): 0 unless the likelihood knows better."""
        return jnp.zeros_like(jnp.nan_to_num(y))

    # -- the Gaussian problem that stands for this one --------------------------------------
    def gaussian_problem(self, kernel, t, y, noise, method):
        """``(y, noise)`` of the Gaussian regression whose posterior is this one's."""
        return laplace.pseudo_observations(self, kernel, jnp.asarray(t), jnp.asarray(y), noise, method)

    def log_marginal_likelihood(self, kernel, t, y, noise, *, method):
        return laplace.log_marginal_likelihood(self, kernel, jnp.asarray(t), jnp.asarray(y), noise, method)

    def marginal_likelihood_function(self, method):
        """A traceable ``(kernel, t, y, noise) -> log q(y)`` for the optimiser, one function
        object per likelihood and method (it keys the compiled objective)."""
        return _laplace_objective(self, method)

    def posterior(self, kernel, t, y, t_new, noise, *, method):
        y_tilde, r_tilde = self.gaussian_problem(kernel, t, y, noise, method)
        return inference.posterior(kernel, t, y_tilde, t_new, r_tilde, method=method)

    def joint_posterior(self, kernel, t, y, t_new, noise, *, method):
        y_tilde, r_tilde = self.gaussian_problem(kernel, t, y, noise, method)
        return inference.posterior_joint(kernel, t, y_tilde, t_new, r_tilde, method=method)

    def sample_posterior(self, kernel, t, y, key, num_samples, t_new, noise, *, method):
        y_tilde, r_tilde = self.gaussian_problem(kernel, t, y, noise, method)
        return inference.sample_posterior(kernel, t, y_tilde, key, num_samples, t_new, r_tilde, method=method)

    # -- the predictive distribution of y ---------------------------------------------------
    def predictive_quantiles(self, mean, var, noise, alphas) -> np.ndarray:
        """Quantiles ``(T*, k, len(alphas))`` of :math:`y` for :math:`f \\sim N(m, v)`, by
        simulation with a fixed seed."""
        rng = np.random.default_rng(0)
        f = mean[None] + np.sqrt(var)[None] * rng.standard_normal((_QUANTILE_DRAWS,) + mean.shape)
        y = self.observe(f, noise, rng)
        return np.moveaxis(np.quantile(y, alphas, axis=0), 0, -1)


def _check_one_output(name, values):
    if values.shape[1] != 1:
        raise ValueError(f"likelihood={name!r} takes one output; got {values.shape[1]} columns")


@dataclass(frozen=True)
class Gaussian(Likelihood):
    """:math:`y_i = f(t_i) + \\varepsilon_i`, :math:`\\varepsilon_i \\sim N(0, r_i)`: exact."""

    name = "gaussian"
    uses_noise = True

    def log_marginal_likelihood(self, kernel, t, y, noise, *, method):
        return inference.log_marginal_likelihood(kernel, t, y, noise, method=method)

    def marginal_likelihood_function(self, method):
        return _gaussian_objective(method)

    def posterior(self, kernel, t, y, t_new, noise, *, method):
        return inference.posterior(kernel, t, y, t_new, noise, method=method)

    def joint_posterior(self, kernel, t, y, t_new, noise, *, method):
        return inference.posterior_joint(kernel, t, y, t_new, noise, method=method)

    def sample_posterior(self, kernel, t, y, key, num_samples, t_new, noise, *, method):
        return inference.sample_posterior(kernel, t, y, key, num_samples, t_new, noise, method=method)

    def predictive_moments(self, mean, var, noise):
        return mean, var + noise

    def predictive_quantiles(self, mean, var, noise, alphas):
        z = stats.norm.ppf(alphas)
        return mean[..., None] + np.sqrt(var + noise)[..., None] * z

    def observe(self, f, noise, rng):
        return f + np.sqrt(noise) * rng.standard_normal(f.shape)


@dataclass(frozen=True)
class Poisson(Likelihood):
    """Counts, log link: :math:`y_i \\sim \\mathrm{Poisson}(e^{f(t_i)})`;
    :math:`g = y - e^f`, :math:`W = e^f`."""

    name = "poisson"
    fill_value = 0.0

    def check_observations(self, values):
        _check_one_output(self.name, values)
        v = values[~np.isnan(values)]
        bad = np.flatnonzero((v < 0) | (v != np.round(v)))
        if bad.size:
            raise ValueError(f"likelihood='poisson' needs non-negative integer counts; got {v[bad[0]]} "
                             f"(observed value number {int(bad[0])})")

    def initial_f(self, y):
        return jnp.log(jnp.nan_to_num(y) + 0.5)

    def log_prob(self, y, f, noise):
        return y * f - jnp.exp(f) - gammaln(y + 1.0)

    def gradient_curvature(self, y, f, noise):
        rate = jnp.exp(f)
        return y - rate, rate

    def predictive_moments(self, mean, var, noise):
        rate = np.exp(mean + var / 2)
        return rate, rate + np.expm1(var) * rate**2

    def observe(self, f, noise, rng):
        return rng.poisson(np.exp(f)).astype(float)


@dataclass(frozen=True)
class Bernoulli(Likelihood):
    """Binary labels, logit link: :math:`P(y_i = 1) = \\sigma(f(t_i))`;
    :math:`g = y - \\sigma(f)`, :math:`W = \\sigma(f)(1 - \\sigma(f))`."""

    name = "bernoulli"
    fill_value = 0.0

    def check_observations(self, values):
        _check_one_output(self.name, values)
        v = values[~np.isnan(values)]
        bad = np.flatnonzero((v != 0) & (v != 1))
        if bad.size:
            raise ValueError(f"likelihood='bernoulli' needs labels 0 or 1; got {v[bad[0]]} "
                             f"(observed value number {int(bad[0])})")

    def log_prob(self, y, f, noise):
        return y * f - jnp.logaddexp(0.0, f)

    def gradient_curvature(self, y, f, noise):
        p = jax.nn.sigmoid(f)
        return y - p, p * (1 - p)

    def predictive_moments(self, mean, var, noise):
        # The probit approximation of E[sigma(f)] (MacKay 1992), accurate to about 0.02.
        p = 1 / (1 + np.exp(-mean / np.sqrt(1 + np.pi * var / 8)))
        return p, p * (1 - p)

    def observe(self, f, noise, rng):
        return (rng.random(f.shape) < 1 / (1 + np.exp(-f))).astype(float)


@dataclass(frozen=True)
class StudentT(Likelihood):
    """Heavy-tailed noise: :math:`y_i = f(t_i) + s \\, \\epsilon_i`, :math:`\\epsilon_i \\sim
    t_\\nu`; the squared scale :math:`s^2` is the estimator's ``noise``. Not log-concave: the
    curvature is :math:`W = \\max(-\\partial_f^2 \\log p, \\; (\\nu + 1) / ((\\nu + 3) s^2))`, the
    Newton curvature bounded below by the Fisher information (see :mod:`probssm.gp.laplace`).

    Parameters
    ----------
    df : float
        :math:`\\nu > 0` (kept fixed).
    """

    df: float = 4.0
    name = "student_t"
    uses_noise = True
    fill_value = 0.0

    def __post_init__(self):
        if not (np.isfinite(self.df) and self.df > 0):
            raise ValueError(f"StudentT: df must be positive and finite, got {self.df}")

    def check_observations(self, values):
        _check_one_output(self.name, values)

    def log_prob(self, y, f, noise):
        nu = self.df
        return (gammaln((nu + 1) / 2) - gammaln(nu / 2) - 0.5 * jnp.log(nu * jnp.pi * noise)
                - (nu + 1) / 2 * jnp.log1p((y - f) ** 2 / (nu * noise)))

    def gradient_curvature(self, y, f, noise):
        nu, r = self.df, y - f
        spread = nu * noise + r**2
        hessian = (nu + 1) * (nu * noise - r**2) / spread**2
        # Newton's curvature where it exceeds the Fisher information; the Fisher information
        # where the residual is an outlier (negative curvature). With the Fisher information
        # alone the iteration converged too slowly (1e-5 after 100 passes).
        return (nu + 1) * r / spread, jnp.maximum(hessian, (nu + 1) / ((nu + 3) * noise))

    def predictive_moments(self, mean, var, noise):
        extra = noise * self.df / (self.df - 2) if self.df > 2 else np.inf
        return mean, var + extra

    def observe(self, f, noise, rng):
        return f + np.sqrt(noise) * rng.standard_t(self.df, size=f.shape)


LIKELIHOODS = {"gaussian": Gaussian, "poisson": Poisson, "bernoulli": Bernoulli, "student_t": StudentT}
"""The likelihoods by the names ``GaussianProcess(likelihood=...)`` accepts."""


def resolve_likelihood(likelihood) -> Likelihood:
    """A :class:`Likelihood` from its name or an instance."""
    if isinstance(likelihood, Likelihood):
        return likelihood
    if isinstance(likelihood, str) and likelihood in LIKELIHOODS:
        return LIKELIHOODS[likelihood]()
    raise ValueError(f"likelihood must be one of {sorted(LIKELIHOODS)} or a Likelihood instance, got {likelihood!r}")


@functools.cache
def _gaussian_objective(method):
    def objective(kernel, t, y, noise):
        return inference._log_marginal_likelihood(kernel, t, y, noise, method)
    return objective


@functools.cache
def _laplace_objective(likelihood, method):
    def objective(kernel, t, y, noise):
        return laplace.log_marginal_likelihood(likelihood, kernel, t, y, noise, method)
    return objective
