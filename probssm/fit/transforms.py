"""Maps between constrained model parameters and unconstrained optimisation variables."""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = [
    "constrain_stationary",
    "cov_from_unconstrained",
    "cov_to_unconstrained",
    "unconstrain_stationary",
]


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


@jax.jit
def constrain_stationary(unconstrained):
    """Map free numbers to the coefficients of a stationary autoregressive polynomial.

    Monahan (1984) / Jones (1980): each :math:`u_k` becomes a partial autocorrelation
    :math:`\\rho_k = -u_k / \\sqrt{1 + u_k^2} \\in (-1, 1)`, and the Durbin-Levinson recursion

    .. math::

        \\phi^{(k)}_k = \\rho_k, \\qquad
        \\phi^{(k)}_i = \\phi^{(k-1)}_i - \\rho_k\\, \\phi^{(k-1)}_{k-i}, \\quad i < k,

    turns them into :math:`\\phi = \\phi^{(p)}`, for which
    :math:`1 - \\phi_1 z - \\dots - \\phi_p z^p` has all roots outside the unit circle. The sign
    of :math:`\\rho_k` is statsmodels' (``constrain_stationary_univariate``), so the two agree
    number for number. For an invertible moving-average polynomial
    :math:`1 + \\theta_1 z + \\dots + \\theta_p z^p` use :math:`\\theta = -\\phi` (statsmodels'
    convention for ``enforce_invertibility``).

    Parameters
    ----------
    unconstrained : array, shape ``(*batch, p)``
        Any real numbers (``p`` may be 0).

    Returns
    -------
    array, shape ``(*batch, p)``
        :math:`(\\phi_1, \\dots, \\phi_p)`. Smooth in the input; compiled once per shape, and
        works under ``jit``, ``vmap`` and ``grad``.
    """
    u = jnp.asarray(unconstrained)
    p = u.shape[-1]
    if p == 0:
        return u
    pacf = -u / jnp.sqrt(1 + u * u)
    phi = pacf[..., :1]
    for k in range(1, p):
        rho = pacf[..., k:k + 1]
        phi = jnp.concatenate([phi - rho * phi[..., ::-1], rho], axis=-1)
    return phi


@jax.jit
def unconstrain_stationary(constrained):
    """Inverse of :func:`constrain_stationary`.

    Runs the Durbin-Levinson recursion backwards,
    :math:`\\phi^{(k-1)}_i = (\\phi^{(k)}_i + \\rho_k \\phi^{(k)}_{k-i}) / (1 - \\rho_k^2)` with
    :math:`\\rho_k = \\phi^{(k)}_k`, and returns :math:`u_k = -\\rho_k / \\sqrt{1 - \\rho_k^2}`
    (statsmodels' ``unconstrain_stationary_univariate``).

    Parameters
    ----------
    constrained : array, shape ``(*batch, p)``
        Coefficients :math:`\\phi` of a stationary polynomial
        :math:`1 - \\phi_1 z - \\dots - \\phi_p z^p` (all roots outside the unit circle). For a
        non-stationary input some :math:`|\\rho_k| \\ge 1` and the result is not finite.

    Returns
    -------
    array, shape ``(*batch, p)``
    """
    phi = jnp.asarray(constrained)
    p = phi.shape[-1]
    if p == 0:
        return phi
    pacf = [None] * p
    for k in range(p - 1, -1, -1):
        rho = phi[..., k:k + 1]
        pacf[k] = rho
        if k:
            head = phi[..., :k]
            phi = (head + rho * head[..., ::-1]) / (1 - rho * rho)
    rho = jnp.concatenate(pacf, axis=-1)
    return -rho / jnp.sqrt(1 - rho * rho)
