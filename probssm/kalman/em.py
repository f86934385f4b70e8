"""Expectation-maximisation for time-invariant linear-Gaussian models (Shumway & Stoffer 1982;
Ghahramani & Hinton 1996).

E-step: the smoother's means :math:`\\hat x_t`, covariances :math:`P_t` and lag-one
cross-covariances :math:`C_t = \\mathrm{Cov}(x_{t+1}, x_t \\mid y)`. M-step, with
:math:`S_{00} = \\sum_{t<T-1} E[x_t x_t^T]`, :math:`S_{10} = \\sum_{t<T-1} E[x_{t+1} x_t^T]`,
:math:`S_{11} = \\sum_{t>0} E[x_t x_t^T]` (offsets :math:`b, d` held fixed):

.. math::

    F &= (S_{10} - b\\, \\textstyle\\sum_{t<T-1} \\hat x_t^T)\\, S_{00}^{-1} \\\\
    Q &= \\tfrac{1}{T-1} \\textstyle\\sum_{t<T-1} E[(x_{t+1} - F x_t - b)(\\cdot)^T] \\\\
    H &= \\textstyle\\sum_{t\\in O} (y_t - d)\\hat x_t^T \\big(\\sum_{t\\in O} E[x_t x_t^T]\\big)^{-1} \\\\
    R &= \\tfrac{1}{|O|} \\textstyle\\sum_{t\\in O} \\big[(y_t - d - H\\hat x_t)(\\cdot)^T + H P_t H^T\\big]

over the set :math:`O` of observed rows, and :math:`\\mu_0 = \\hat x_0`.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from ._linalg import symmetrize
from .inference import smooth
from .model import LGSSM


@partial(jax.jit, static_argnames=("estimate",))
def em_step(model: LGSSM, y, estimate: tuple[str, ...]):
    """One EM iteration.

    Parameters
    ----------
    model : LGSSM
        Time-invariant, with a proper prior.
    y : array of shape (T, m)
        Observations; rows are fully observed or fully missing when ``observation_*`` is estimated.
    estimate : tuple of str
        Fields to update (``transition_matrix``, ``transition_cov``, ``observation_matrix``,
        ``observation_cov``, ``initial_mean``); the others are kept.

    Returns
    -------
    new_model : LGSSM
        The M-step's maximiser of the expected complete-data log-likelihood.
    log_likelihood : scalar array
        :math:`\\log p(y)` under the input ``model`` (the E-step's by-product).
    """
    res = smooth(model, y)
    xs, Ps, C = res.mean, res.cov, res.lag_one_cov
    T = y.shape[0]
    second = Ps + jnp.einsum("ti,tj->tij", xs, xs)
    S00 = jnp.sum(second[:-1], axis=0)
    S11 = jnp.sum(second[1:], axis=0)
    S10 = jnp.sum(C + jnp.einsum("ti,tj->tij", xs[1:], xs[:-1]), axis=0)
    b = model.transition_offset
    sum_x0 = jnp.sum(xs[:-1], axis=0)
    sum_x1 = jnp.sum(xs[1:], axis=0)
    changes = {}
    F = model.transition_matrix
    if "transition_matrix" in estimate:
        F = jnp.linalg.solve(S00.T, (S10 - jnp.outer(b, sum_x0)).T).T
        changes["transition_matrix"] = F
    if "transition_cov" in estimate:
        Q = (
            S11 - F @ S10.T - S10 @ F.T + F @ S00 @ F.T
            - jnp.outer(b, sum_x1) - jnp.outer(sum_x1, b)
            + F @ jnp.outer(sum_x0, b) + jnp.outer(b, sum_x0) @ F.T + (T - 1) * jnp.outer(b, b)
        ) / (T - 1)
        changes["transition_cov"] = symmetrize(Q)
    observed = ~jnp.any(jnp.isnan(y), axis=1)
    w = observed.astype(y.dtype)
    yd = jnp.where(observed[:, None], y - model.observation_offset, 0.0)
    H = model.observation_matrix
    if "observation_matrix" in estimate:
        Sxx = jnp.einsum("t,tij->ij", w, second)
        Syx = jnp.einsum("ti,tj->ij", yd, xs)
        H = jnp.linalg.solve(Sxx.T, Syx.T).T
        changes["observation_matrix"] = H
    if "observation_cov" in estimate:
        resid = yd - jnp.einsum("ij,tj->ti", H, xs) * w[:, None]
        R = (
            jnp.einsum("ti,tj->ij", resid, resid)
            + jnp.einsum("t,ij,tjk,lk->il", w, H, Ps, H)
        ) / jnp.sum(w)
        changes["observation_cov"] = symmetrize(R)
    if "initial_mean" in estimate:
        changes["initial_mean"] = xs[0]
    return model.replace(**changes), res.log_likelihood


def fit_em(model: LGSSM, y, estimate, *, max_iter: int = 500, tol: float = 1e-8):
    """Iterate :func:`em_step` until the relative log-likelihood gain is below ``tol``.

    Parameters
    ----------
    model : LGSSM
        Starting model (time-invariant, proper prior).
    y : array of shape (T, m)
    estimate : iterable of str
        Fields to estimate, as in :func:`em_step`.
    max_iter : int
    tol : float

    Returns
    -------
    model : LGSSM
        The final model.
    history : list of float
        The log-likelihood before each step; non-decreasing up to round-off (the defining property
        of EM).
    """
    history = []
    estimate = tuple(estimate)
    for _ in range(max_iter):
        new, loglik = em_step(model, y, estimate)
        loglik = float(loglik)
        if history and loglik - history[-1] < tol * abs(history[-1]):
            history.append(loglik)
            break
        history.append(loglik)
        model = new
    return model, history
