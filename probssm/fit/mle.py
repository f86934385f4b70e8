"""Maximum likelihood over unconstrained parameters with exact gradients (``jax.grad``) and
SciPy's L-BFGS-B."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from scipy import optimize

from .._compile import jit

__all__ = ["MLEResult", "maximize_likelihood", "observed_information"]


@dataclass(frozen=True)
class MLEResult:
    """Outcome of :func:`maximize_likelihood`.

    Attributes
    ----------
    theta : ndarray ``(k,)``
        Maximiser in the unconstrained space.
    log_likelihood : float
    converged : bool
    message : str
    iterations : int
    """

    theta: np.ndarray
    log_likelihood: float
    converged: bool
    message: str
    iterations: int


def maximize_likelihood(
    log_likelihood: Callable,
    theta0,
    *args,
    max_iter: int = 1000,
    gtol: float = 1e-9,
) -> MLEResult:
    """Maximise ``log_likelihood(theta, *args)`` over ``theta`` in :math:`\\mathbb R^k`.

    ``log_likelihood`` must be a JAX function; it is differentiated with ``jax.value_and_grad``
    and compiled once per shape of its arguments (pass data through ``args`` so refits reuse the
    compiled program). The objective is scaled by ``1 / |log L(theta0)|`` internally so that
    L-BFGS's tolerances are relative. Runs in float64.
    """
    with jax.enable_x64(True):
        theta0 = np.asarray(theta0, dtype=np.float64)
        value_and_grad = _value_and_grad(log_likelihood)
        args = jax.tree_util.tree_map(jnp.asarray, args)
        l0, _ = value_and_grad(jnp.asarray(theta0), *args)
        if not np.isfinite(float(l0)):
            raise ValueError(f"the log-likelihood is not finite at the starting values {theta0}")
        scale = max(abs(float(l0)), 1.0)

        def fun(theta):
            value, grad = value_and_grad(jnp.asarray(theta), *args)
            value, grad = float(value), np.asarray(grad, dtype=np.float64)
            if not np.isfinite(value):
                return np.inf, np.zeros_like(theta)
            return -value / scale, -grad / scale

        res = optimize.minimize(
            fun, theta0, jac=True, method="L-BFGS-B",
            options={"maxiter": max_iter, "gtol": gtol, "ftol": 1e-15, "maxcor": 20},
        )
        # L-BFGS-B may stop on a relative-reduction test a hair short of the optimum; a few
        # BFGS polishing steps from there tighten the maximiser. Where it stopped on the gradient
        # test there is nothing to polish.
        best_x, best_f, polish_steps, polished = res.x, float(res.fun), 0, False
        if float(np.max(np.abs(res.jac), initial=0.0)) > gtol:
            best_x, best_f, polish_steps, polished = _polish(fun, res.x, float(res.fun))
        # Both optimisers may stop when the line search cannot improve on the round-off of the
        # objective (large approximate diffuse variances make it ~1e-10 relative). With the
        # objective scaled to O(1), a gradient below 1e-3 there is a maximum up to that noise.
        flat = float(np.max(np.abs(fun(best_x)[1]), initial=0.0)) < 1e-3
        return MLEResult(
            theta=np.asarray(best_x),
            log_likelihood=-best_f * scale,
            converged=bool(res.success or polished or flat),
            message=str(res.message),
            iterations=int(res.nit) + polish_steps,
        )


# Polishing that has not converged by then is line-searching against the objective's round-off
# (it used to spend up to 160 evaluations for a relative gain of 1e-15).
_POLISH_EVALUATIONS = 40


class _PolishBudgetSpent(Exception):
    pass


def _polish(fun, x0, f0):
    """BFGS from ``x0`` (objective ``f0``) for at most :data:`_POLISH_EVALUATIONS` evaluations
    of ``fun``; returns ``(best x, its objective, iterations, converged)``."""
    best = {"x": np.asarray(x0), "f": f0, "calls": 0}

    def budgeted(theta):
        best["calls"] += 1
        if best["calls"] > _POLISH_EVALUATIONS:
            raise _PolishBudgetSpent
        value, grad = fun(theta)
        if value < best["f"]:
            best.update(x=np.array(theta), f=float(value))
        return value, grad

    try:
        polish = optimize.minimize(budgeted, x0, jac=True, method="BFGS", options={"gtol": 1e-10, "maxiter": 200})
    except _PolishBudgetSpent:
        return best["x"], best["f"], _POLISH_EVALUATIONS, False
    return best["x"], best["f"], int(polish.nit), bool(polish.success)


_COMPILED: dict = {}


def _compiled(transform, fn):
    """One compiled ``transform(fn)`` per objective function (reused across fits)."""
    key = (transform, fn)
    if key not in _COMPILED:
        _COMPILED[key] = jit(transform(fn))
    return _COMPILED[key]


def _value_and_grad(fn):
    return _compiled(jax.value_and_grad, fn)


def observed_information(log_likelihood: Callable, theta, *args) -> np.ndarray:
    """Observed information :math:`-\\nabla^2 \\log L(\\theta)`, shape ``(k, k)`` (float64)."""
    with jax.enable_x64(True):
        hess = _compiled(jax.hessian, log_likelihood)(jnp.asarray(theta, dtype=jnp.float64), *args)
        return -np.asarray(hess)
