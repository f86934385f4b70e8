"""Bayesian fitting with NumPyro's No-U-Turn sampler over unconstrained parameters.

The sampler runs on :math:`\\theta \\in \\mathbb R^k` with the natural parameters
:math:`\\psi = g(\\theta)` (variances, stationary AR coefficients, ...) and the log density

.. math::

    \\log p(\\theta \\mid y) = \\log L(g(\\theta)) + \\sum_i \\log \\pi_i(\\psi_i)
    + \\log \\lvert \\det \\partial g / \\partial \\theta \\rvert + \\text{const},

so priors :math:`\\pi_i` are stated on the natural parameters, whatever map :math:`g` the model
optimises over. Draws are returned in natural parameters.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

__all__ = ["log_prior_from", "half_cauchy_variance_prior", "sample_posterior", "posterior_summary"]


def log_prior_from(prior) -> Callable:
    """A log-density function ``value -> scalar`` from a NumPyro distribution (its ``log_prob``)
    or a callable (returned as is)."""
    if hasattr(prior, "log_prob"):
        return prior.log_prob
    if callable(prior):
        return prior
    raise TypeError(f"a prior must be a numpyro Distribution or a callable log density, got {type(prior).__name__}")


def half_cauchy_variance_prior(scale: float) -> Callable:
    """Log density of a variance :math:`v` whose standard deviation :math:`\\sqrt v` is
    half-Cauchy with scale ``scale`` (Gelman 2006):
    :math:`\\log \\pi(v) = \\log \\frac{2}{\\pi s (1 + v / s^2)} - \\log (2 \\sqrt v)`."""
    scale = float(scale)

    def log_prob(v):
        v = jnp.maximum(v, jnp.finfo(jnp.result_type(v, float)).tiny)
        return jnp.log(2 / (jnp.pi * scale)) - jnp.log1p(v / scale**2) - jnp.log(2 * jnp.sqrt(v))

    return log_prob


def sample_posterior(
    log_likelihood: Callable,
    to_natural: Callable,
    log_priors: list,
    theta0,
    *args,
    num_warmup: int = 500,
    num_samples: int = 500,
    num_chains: int = 2,
    seed: int = 0,
    target_accept: float = 0.85,
    progress_bar: bool = False,
):
    """Run NUTS on the unconstrained parameters.

    Parameters
    ----------
    log_likelihood : callable
        ``log_likelihood(psi, *args)`` of the natural parameters ``psi`` ``(k,)`` (a JAX function).
    to_natural : callable
        :math:`g`: unconstrained ``theta`` ``(k,)`` to natural ``psi`` ``(k,)``.
    log_priors : list of k callables
        ``log_priors[i](psi_i)``: the log prior density of each natural parameter.
    theta0 : array ``(k,)``
        Starting point (the MLE is a good one); chains start at small jitters of it.
    num_warmup, num_samples, num_chains, seed, target_accept
        NUTS settings (chains run one after another).
    progress_bar : bool
        NumPyro's progress bar over the iterations of each chain.

    Returns
    -------
    natural : ndarray ``(num_chains, num_samples, k)``
        Posterior draws of the natural parameters.
    diverging : int
        Number of divergent transitions after warm-up.
    """
    from numpyro.infer import MCMC, NUTS

    with jax.enable_x64(True):
        theta0 = jnp.asarray(theta0, dtype=jnp.float64)
        k = theta0.shape[0]

        def log_density(theta):
            psi = to_natural(theta)
            log_jac = jnp.linalg.slogdet(jax.jacfwd(to_natural)(theta))[1]
            prior = sum(lp(psi[i]) for i, lp in enumerate(log_priors))
            value = log_likelihood(psi, *args) + prior + log_jac
            return jnp.where(jnp.isfinite(value), value, -jnp.inf)

        kernel = NUTS(potential_fn=lambda theta: -log_density(theta), target_accept_prob=target_accept)
        mcmc = MCMC(kernel, num_warmup=num_warmup, num_samples=num_samples, num_chains=num_chains,
                     chain_method="sequential", progress_bar=progress_bar)
        key = jax.random.PRNGKey(seed)
        jitter = 0.01 * jax.random.normal(jax.random.fold_in(key, 1), (num_chains, k))
        init = theta0 + jitter if num_chains > 1 else theta0
        mcmc.run(key, init_params=init, extra_fields=("diverging",))
        theta = mcmc.get_samples(group_by_chain=True)
        natural = jax.vmap(jax.vmap(to_natural))(theta)
        diverging = int(np.sum(np.asarray(mcmc.get_extra_fields()["diverging"])))
        return np.asarray(natural), diverging


def posterior_summary(draws: np.ndarray, names: list) -> pd.DataFrame:
    """Mean, standard deviation, 5 % and 95 % quantiles, split-:math:`\\hat R` and effective
    sample size (NumPyro's estimators) of draws ``(chains, samples, k)``; one row per parameter."""
    from numpyro.diagnostics import effective_sample_size, split_gelman_rubin

    draws = np.asarray(draws)
    flat = draws.reshape(-1, draws.shape[-1])
    rows = {}
    for i, name in enumerate(names):
        x = draws[..., i]
        rows[name] = {
            "mean": flat[:, i].mean(), "sd": flat[:, i].std(ddof=1),
            "q5": np.quantile(flat[:, i], 0.05), "q95": np.quantile(flat[:, i], 0.95),
            "r_hat": float(split_gelman_rubin(x)) if x.shape[0] > 1 or x.shape[1] > 3 else np.nan,
            "ess": float(effective_sample_size(x)),
        }
    return pd.DataFrame.from_dict(rows, orient="index")
