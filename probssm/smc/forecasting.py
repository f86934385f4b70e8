"""Predictive simulation from a particle approximation of the filtering distribution.

Given the particles :math:`x_{T-1}^j` and normalised weights :math:`W^j` after observation
:math:`T-1`, a path of the predictive distribution :math:`p(y_{T:T+H-1} \\mid y_{0:T-1})` is
drawn by picking :math:`j \\sim W`, then :math:`x_{T+h} \\sim p(x_{T+h} \\mid x_{T+h-1})` and
:math:`y_{T+h} \\sim p(y_{T+h} \\mid x_{T+h})` for :math:`h = 0, \\dots, H-1`. Under a
posterior over the parameters, each draw :math:`\\psi_s` has its own particle system and
paths are spread evenly over the draws (the posterior predictive).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..ssm import _vector
from .filtering import _batched_sample, _gaussian_block, _square_roots
from .resampling import multinomial

__all__ = ["simulate"]


def simulate(model, key, particles, log_weights, start, horizon: int, n_paths: int):
    """Predictive paths from a weighted particle system (traceable).

    Parameters
    ----------
    model : StateSpaceModel
    key : jax.random key
    particles : ``(N, n)``
        :math:`x_{T-1}^j`, filtered at step ``start - 1``.
    log_weights : ``(N,)``
        Their normalised log-weights.
    start : int
        ``T``, the time step of the first simulated observation.
    horizon, n_paths : int
        ``H`` and the number of paths.

    Returns
    -------
    states : ``(n_paths, H, n)``
    observations : ``(n_paths, H, m)``
    """
    k_pick, k_path = jax.random.split(key)
    x = particles[multinomial(k_pick, log_weights, n_paths)]
    n = x.shape[-1]
    roots = _square_roots(model)

    def step(x_prev, inputs):
        t, k = inputs
        k_x, k_y = jax.random.split(k)
        if model.additive:
            means = jax.vmap(model.transition_mean, (0, None))(x_prev, t - 1)
            x_t = _gaussian_block(k_x, means, roots["Q"])
            h = jax.vmap(model.emission_mean, (0, None))(x_t, t)
            y_t = _gaussian_block(k_y, h, _psd_sqrt(model.R))
        else:
            x_t, _ = _batched_sample(lambda xp: model.transition_distribution(xp, t - 1), k_x, x_prev, n)
            m = _vector(model.emission_distribution(x_t[0], t).mean).shape[0]
            y_t, _ = _batched_sample(lambda xx: model.emission_distribution(xx, t), k_y, x_t, m)
            y_t = y_t.astype(x_t.dtype)
        return x_t, (x_t, y_t)

    ts = start + jnp.arange(horizon)
    _, (xs, ys) = jax.lax.scan(step, x, (ts, jax.random.split(k_path, horizon)))
    return jnp.swapaxes(xs, 0, 1), jnp.swapaxes(ys, 0, 1)


def _psd_sqrt(a):
    from ..kalman._linalg import psd_sqrt
    return psd_sqrt(a)
