"""Maps between constrained model parameters and unconstrained optimisation variables."""

from __future__ import annotations

import jax.numpy as jnp

__all__ = ["cov_from_unconstrained", "cov_to_unconstrained"]


def cov_from_unconstrained(theta, k: int):
    """A ``(k, k)`` positive-definite matrix :math:`L L^T` from ``k(k+1)/2`` free numbers.

    ``L`` is lower triangular with ``exp`` of the first ``k`` numbers on its diagonal and the rest
    below it (row-major), so every real vector maps to a valid covariance.
    """
    theta = jnp.asarray(theta)
    diag = jnp.exp(theta[:k])
    rows, cols = jnp.tril_indices(k, -1)
    lower = jnp.zeros((k, k), theta.dtype).at[rows, cols].set(theta[k:])
    lower = lower + jnp.diag(diag)
    return lower @ lower.T


def cov_to_unconstrained(cov):
    """Inverse of :func:`cov_from_unconstrained` for a positive-definite ``cov`` ``(k, k)``."""
    cov = jnp.asarray(cov)
    k = cov.shape[-1]
    lower = jnp.linalg.cholesky(cov)
    rows, cols = jnp.tril_indices(k, -1)
    return jnp.concatenate([jnp.log(jnp.diagonal(lower)), lower[rows, cols]])
