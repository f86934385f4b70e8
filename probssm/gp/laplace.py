"""The Laplace approximation of a GP with a non-Gaussian likelihood, on the Kalman smoother.

For :math:`y_i \\mid f \\sim p(y_i \\mid f(t_i))` with log-concave :math:`p`, Newton's method on
:math:`\\Psi(f) = \\sum_i \\log p(y_i \\mid f_i) + \\log N(f; 0, K)` is a sequence of GP
regressions on pseudo-observations (Rasmussen & Williams 2006, sec. 3.4):

.. math::

    \\tilde y_i = \\hat f_i + g_i / W_i, \\qquad \\tilde r_i = 1 / W_i, \\qquad
    g_i = \\partial_f \\log p(y_i \\mid \\hat f_i), \\quad W_i = -\\partial_f^2 \\log p(y_i \\mid \\hat f_i),

each solved exactly by one :mod:`probssm.kalman` smoothing pass
(:func:`probssm.kalman.iterated.iterated_smoothing`), started where each observation alone puts
:math:`f` (:meth:`~probssm.gp.Likelihood.initial_f`, e.g. :math:`\\log(y + 1/2)` for counts);
an iteration that has not converged after ``MAX_ITER`` passes gives a NaN marginal likelihood. At the mode :math:`\\hat f` the Laplace
posterior :math:`N(\\hat f, (K^{-1} + W)^{-1})` is the Gaussian posterior of the
pseudo-observations, so predictions reuse :mod:`probssm.gp.inference`, and the approximate log
marginal likelihood is

.. math::

    \\log q(y) = \\log N(\\tilde y; 0, K + \\tilde R) + \\sum_i \\big[\\log p(y_i \\mid \\hat f_i)
    - \\log N(\\tilde y_i; \\hat f_i, \\tilde r_i)\\big],

equal to :math:`\\Psi(\\hat f) - \\tfrac12 \\log |I + W^{1/2} K W^{1/2}|`. Its gradient: the mode is
found under ``stop_gradient`` and one more differentiable Newton pass from it gives
:math:`\\partial \\hat f / \\partial \\theta` (Newton's map has zero derivative in :math:`f` at its
fixed point), so ``jax.grad`` of :func:`log_marginal_likelihood` is the exact derivative of
:math:`\\log q(y)`, including the dependence of :math:`W` on :math:`\\hat f`. Likelihoods that are
not log-concave (Student-t) bound :math:`W` below by the Fisher information: a Gauss-Newton
iteration with the same fixed point (the mode), whose marginal likelihood is the Gaussian
approximation with that curvature, and whose gradient leaves out the term through the
curvature's bound.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from .. import kalman
from ..kalman.iterated import iterated_smoothing
from .inference import _as_batch, _from_batch, _sorted
from .model import state_space_model

__all__ = ["pseudo_observations", "log_marginal_likelihood"]

MAX_ITER = 100
TOL = 1e-10


def _pseudo(likelihood, y, f, noise):
    """Pseudo-observations and their variances at ``f`` (NaN observations stay missing)."""
    observed = ~jnp.isnan(y)
    y0 = jnp.where(observed, y, likelihood.fill_value)
    g, W = likelihood.gradient_curvature(y0, f, noise)
    return jnp.where(observed, f + g / W, jnp.nan), jnp.where(observed, 1.0 / W, 1.0)


def _laplace_sorted(likelihood, kernel, ts, ys, noise, method):
    """``(lml, y_tilde, r_tilde)`` on sorted times; ``ys`` ``(T,)`` or ``(T, k)``."""
    base = state_space_model(kernel, ts, 1.0)
    H = base.observation_matrix[0]
    yb = _as_batch(ys)[..., 0]  # (T,) or (k, T)

    def with_noise(r):
        return base.replace(observation_cov=r[..., None, None])

    def linearise(mean):
        y_tilde, r_tilde = _pseudo(likelihood, yb, mean @ H, noise)
        return with_noise(r_tilde), y_tilde[..., None]

    # Start where each observation alone puts f (log counts for Poisson): from f = 0, Newton's
    # first steps overshoot by about the counts themselves (f = 44 for counts of 150). A state
    # with H x = f_0 is f_0 H^T / |H|^2.
    f0 = likelihood.initial_f(yb)
    start = (f0[..., None] * H / (H @ H)).astype(base.transition_matrix.dtype)
    result = iterated_smoothing(linearise, start, max_iter=MAX_ITER, tol=TOL, method=method)
    mode = jax.lax.stop_gradient(result.mean)
    model, y_tilde = linearise(mode)
    f = kalman.smooth(model, y_tilde, method=method).mean @ H  # the differentiable Newton pass
    y_tilde, r_tilde = _pseudo(likelihood, yb, f, noise)
    observed = ~jnp.isnan(yb)
    y0 = jnp.where(observed, yb, likelihood.fill_value)
    gaussian_terms = -0.5 * (jnp.log(2 * jnp.pi * r_tilde) + (jnp.where(observed, y_tilde, f) - f) ** 2 / r_tilde)
    correction = jnp.sum(jnp.where(observed, likelihood.log_prob(y0, f, noise) - gaussian_terms, 0.0), axis=-1)
    lml = kalman.log_likelihood(with_noise(r_tilde), y_tilde[..., None], method=method) + correction
    # Not converged: no approximation to report (NaN, which the optimiser steps back from and
    # the estimator reports), rather than a value at some iterate.
    lml = jnp.where(result.converged, lml, jnp.nan)
    return lml, _from_batch(y_tilde, ys.ndim), _from_batch(r_tilde, ys.ndim)


@partial(jax.jit, static_argnames=("likelihood", "method"))
def log_marginal_likelihood(likelihood, kernel, t, y, noise, method):
    """The Laplace :math:`\\log q(y)`: a scalar, or ``(k,)`` for ``y`` ``(T, k)``."""
    _, _, ts, (ys,) = _sorted(t, y)
    return _laplace_sorted(likelihood, kernel, ts, ys, noise, method)[0]


@partial(jax.jit, static_argnames=("likelihood", "method"))
def pseudo_observations(likelihood, kernel, t, y, noise, method):
    """``(y_tilde, r_tilde)`` at the mode, in the caller's order of ``t``: the Gaussian
    observations whose exact posterior is the Laplace posterior."""
    _, inverse, ts, (ys,) = _sorted(t, y)
    _, y_tilde, r_tilde = _laplace_sorted(likelihood, kernel, ts, ys, noise, method)
    r_tilde = r_tilde if r_tilde.ndim == 1 else r_tilde[:, 0]
    return y_tilde[inverse], r_tilde[inverse]
