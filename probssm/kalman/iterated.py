"""Iterated linearisation: a damped fixed-point loop whose every step is one smoothing pass.

Gauss-Newton / posterior-linearisation methods (Laplace approximations of non-Gaussian
likelihoods, iterated extended and sigma-point smoothers) share one loop: linearise the model
around the current trajectory (its means, or its means and covariances for posterior
linearisation), which gives a linear-Gaussian model and pseudo-observations;
smooth it with :func:`probssm.kalman.smooth`; move towards the smoothed trajectory. Here that loop
lives once, the linearisation is the caller's.

.. math::

    z^{(i+1)} = z^{(i)} + \\gamma \\, \\big(S(z^{(i)}) - z^{(i)}\\big),

with :math:`S(z)` the smoothed state means of the model linearised at :math:`z` and damping
:math:`0 < \\gamma \\le 1`, until :math:`\\max |z^{(i+1)} - z^{(i)}| \\le \\text{tol}
\\, (1 + \\max |z^{(i)}|)` or ``max_iter`` passes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .inference import smooth

__all__ = ["IterationResult", "iterated_smoothing"]


class IterationResult(NamedTuple):
    """Outcome of :func:`iterated_smoothing`.

    Attributes
    ----------
    mean : ``(*batch, T, n)``
        The last iterate :math:`z`.
    cov : ``(*batch, T, n, n)`` or None
        The last iterate's covariances, when the loop carries them (``initial_cov`` given).
    iterations : int array
        Smoothing passes run.
    converged : bool array
        Whether the step-size test was met before ``max_iter``.
    last : tuple or None
        With ``keep_last``: ``(linearise's output, SmoothResult)`` of the last pass.
    """

    mean: jax.Array
    cov: jax.Array | None
    iterations: jax.Array
    converged: jax.Array
    last: Any = None


def iterated_smoothing(linearise: Callable, initial_mean, initial_cov=None, *, max_iter: int = 50,
                       tol: float = 1e-9, damping: float = 1.0, method: str = "auto",
                       with_index: bool = False, keep_last: bool = False,
                       min_iter: int = 1) -> IterationResult:
    """Iterate linearise -> :func:`probssm.kalman.smooth` -> damped step to a fixed point.

    Parameters
    ----------
    linearise : callable
        ``linearise(mean) -> (model, y)`` (or ``linearise(mean, cov)`` when ``initial_cov`` is
        given): the :class:`~probssm.kalman.LGSSM` and observations ``(*batch, T, m)`` of the
        problem linearised at the state means ``mean`` (and covariances ``cov``).
    initial_mean : array ``(*batch, T, n)``
        The starting trajectory.
    initial_cov : array ``(*batch, T, n, n)``, optional
        Starting covariances: the loop then also carries the smoothed covariances, damped as the
        means, :math:`P^{(i+1)} = P^{(i)} + \\gamma (S_P(\\cdot) - P^{(i)})` (a convex
        combination, so positive semi-definite).
    max_iter, tol, damping
        Stopping rule and step length :math:`\\gamma` (see the module docstring).
    method : str
        The :mod:`probssm.kalman` method of each pass.
    with_index : bool
        Pass the index of the pass (0, 1, ...; an int array) to ``linearise`` as its last
        argument (e.g. a first pass on another linearisation than the later ones).
    keep_last : bool
        Carry the last pass's linearisation and :class:`~probssm.kalman.SmoothResult` out of
        the loop (``result.last``), so a caller needs no extra pass after it. ``linearise`` may
        then return more than ``(model, y)``: its whole output is kept.
    min_iter : int
        Passes run before the step-size test may stop the loop.

    Returns
    -------
    IterationResult
        The loop runs under ``lax.while_loop`` (forward-mode differentiable only); to
        differentiate through the fixed point, take one more differentiable pass from
        ``jax.lax.stop_gradient(result.mean)``: for a Newton iteration its derivative is the
        implicit one.
    """

    carries_cov = initial_cov is not None

    def one_pass(mean, cov, i):
        args = ((mean, cov) if carries_cov else (mean,)) + ((i,) if with_index else ())
        out = linearise(*args)
        return out, smooth(out[0], out[1], method=method)

    def keep_going(state):
        _, _, i, change, scale, _ = state
        return (i < max_iter) & ((i < min_iter) | (change > tol * (1.0 + scale)))

    def step(state):
        mean, cov, i, _, _, _ = state
        out, result = one_pass(mean, cov, i)
        new = mean + damping * (result.mean - mean)
        new_cov = cov + damping * (result.cov - cov) if carries_cov else None
        last = (out, result) if keep_last else None
        return new, new_cov, i + 1, jnp.max(jnp.abs(new - mean)), jnp.max(jnp.abs(mean)), last

    mean0 = jnp.asarray(initial_mean)
    cov0 = jnp.asarray(initial_cov, mean0.dtype) if carries_cov else None
    i0 = jnp.asarray(0)
    last0 = None
    if keep_last:  # a placeholder of the right structure: the loop carries the last pass
        shapes = jax.eval_shape(one_pass, mean0, cov0, i0)
        last0 = jax.tree_util.tree_map(lambda a: jnp.zeros(a.shape, a.dtype), shapes)
    inf = jnp.asarray(jnp.inf, mean0.dtype)
    mean, cov, iterations, change, scale, last = jax.lax.while_loop(
        keep_going, step, (mean0, cov0, i0, inf, jnp.zeros((), mean0.dtype), last0))
    return IterationResult(mean, cov, iterations, change <= tol * (1.0 + scale), last)
