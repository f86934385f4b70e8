"""Particle smoothers: genealogy tracing and forward-filtering backward-sampling (FFBS).

All three run the particle filter with its history (the :math:`O(NT)` particle system) and
return ``M`` trajectories :math:`x_{0:T-1}^{(k)}` with log-weights, approximately distributed
as :math:`p(x_{0:T-1} \\mid y_{0:T-1})`:

* ``"genealogy"``: the ``N`` ancestral lines of the last particles, weighted by
  :math:`W_{T-1}`; cost :math:`O(NT)`, but the lines coalesce going back in time (path
  degeneracy), so early marginals rest on few distinct particles.
* ``"ffbs"``: backward sampling (Godsill, Doucet & West 2004): :math:`b_{T-1} \\sim W_{T-1}`,
  then for :math:`t = T-2, \\dots, 0`

  .. math::

      P(b_t = i) \\propto W_t^i\\, p(x_{t+1}^{b_{t+1}} \\mid x_t^i),

  equal-weight paths; cost :math:`O(MNT)` (:math:`O(N^2 T)` for :math:`M = N`).
* ``"rejection"``: the same backward kernel sampled by rejection (Douc, Garivier, Moulines &
  Olsson 2011): propose :math:`i \\sim W_t`, accept with probability
  :math:`p(x_{t+1} \\mid x_t^i) / \\bar p`, where :math:`\\bar p \\ge \\sup p(x' \\mid x)` bounds the
  transition density; expected cost :math:`O(MT)` per accepted draw times the mean number of
  tries. Paths still pending after ``max_rejections`` rounds take the exact :math:`O(N)` draw
  (the hybrid of Dau & Chopin 2023), so the output is exact FFBS either way. For
  :class:`~probssm.ssm.AdditiveGaussianSSM` the bound is
  :math:`\\bar p = (2\\pi)^{-n/2} |Q|^{-1/2}`; other models pass ``transition_log_bound``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .filtering import (
    ParticleFilterResult,
    _compiled,
    _is_concrete,
    check_functions,
    check_model,
    check_y,
    make_config,
    raise_if_degenerate,
)
from .resampling import multinomial

__all__ = ["SMOOTHERS", "ParticleSmootherResult", "smooth"]

SMOOTHERS = ("genealogy", "ffbs", "rejection")
"""The ``method=`` names of :func:`smooth`."""


class ParticleSmootherResult(NamedTuple):
    """Outcome of :func:`probssm.smc.smooth`.

    Attributes
    ----------
    mean : ``(T, n)``
        Smoothed means :math:`\\approx E[x_t \\mid y_{0:T-1}]` (weighted over the paths).
    cov : ``(T, n, n)``
        Smoothed covariances.
    paths : ``(M, T, n)``
        Trajectories.
    log_weights : ``(M,)``
        Their normalised log-weights (equal for the backward samplers).
    log_likelihood : scalar
        The filter's log-likelihood estimate.
    filter : ParticleFilterResult
        The forward pass, with its history.
    """

    mean: jax.Array
    cov: jax.Array
    paths: jax.Array
    log_weights: jax.Array
    log_likelihood: jax.Array
    filter: ParticleFilterResult


def _trace_genealogy(history):
    """The ancestral lines ``(N, T, n)`` of the last step's particles."""
    particles, ancestors = history.particles, history.ancestors
    T = particles.shape[0]
    last = jnp.arange(particles.shape[1], dtype=jnp.int32)

    def back(idx, t):
        return ancestors[t][idx], particles[t - 1][ancestors[t][idx]]

    _, earlier = jax.lax.scan(back, last, jnp.arange(T - 1, 0, -1))
    lines = jnp.concatenate([earlier[::-1], particles[-1][None]], axis=0)  # (T, N, n)
    return jnp.swapaxes(lines, 0, 1)


def _transition_log_density_matrix(model, x_next, x, t):
    """:math:`\\log p(x_{t+1}^{(k)} \\mid x_t^i)` ``(M, N)`` for ``x_next`` ``(M, n)``, ``x``
    ``(N, n)``."""
    if model.additive:
        means = jax.vmap(model.transition_mean, (0, None))(x, t)  # (N, n)
        L = jnp.linalg.cholesky(model.Q)
        diff = x_next[:, None, :] - means[None, :, :]
        white = jax.scipy.linalg.solve_triangular(L, diff.reshape(-1, diff.shape[-1]).T, lower=True).T
        n = x.shape[-1]
        log_norm = -0.5 * n * math.log(2 * math.pi) - jnp.sum(jnp.log(jnp.diagonal(L)))
        return log_norm - 0.5 * jnp.sum(white**2, -1).reshape(diff.shape[:2])

    def one(xi):
        d = model.transition_distribution(xi, t)
        shape = tuple(d.batch_shape) + tuple(d.event_shape)
        return jax.vmap(lambda xn: jnp.sum(d.log_prob(jnp.reshape(xn, shape))))(x_next)

    return jax.vmap(one, out_axes=1)(x)


def _transition_log_density_pairs(model, x_next, x, t):
    """:math:`\\log p(x_{t+1}^{(k)} \\mid x_t^{(k)})` ``(M,)`` of paired rows."""
    def one(xn, xi):
        d = model.transition_distribution(xi, t)
        shape = tuple(d.batch_shape) + tuple(d.event_shape)
        return jnp.sum(d.log_prob(jnp.reshape(xn, shape)))

    return jax.vmap(one)(x_next, x)


def _backward_exact(model, key, x_next, x, lw, t):
    logits = lw[None, :] + _transition_log_density_matrix(model, x_next, x, t)
    return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)


def _backward_rejection(model, key, x_next, x, lw, t, log_bound, max_rounds):
    M = x_next.shape[0]

    def cond(state):
        r, _, done, _ = state
        return (r < max_rounds) & ~jnp.all(done)

    def body(state):
        r, idx, done, k = state
        k, k_prop, k_acc = jax.random.split(k, 3)
        cand = multinomial(k_prop, lw, M)
        log_acc = _transition_log_density_pairs(model, x_next, x[cand], t) - log_bound
        accept = jnp.log(jax.random.uniform(k_acc, (M,), dtype=x.dtype)) < log_acc
        new = ~done & accept
        return r + 1, jnp.where(new, cand, idx), done | accept, k

    k_loop, k_exact = jax.random.split(key)
    init = (jnp.array(0), jnp.zeros(M, jnp.int32), jnp.zeros(M, bool), k_loop)
    _, idx, done, _ = jax.lax.while_loop(cond, body, init)
    exact = jax.lax.cond(jnp.all(done), lambda: idx,
                         lambda: _backward_exact(model, k_exact, x_next, x, lw, t))
    return jnp.where(done, idx, exact)


def _backward_paths(model, key, history, n_paths, method, log_bound, max_rounds, start):
    particles, log_weights = history.particles, history.log_weights
    T = particles.shape[0]
    keys = jax.random.split(key, T)
    last = multinomial(keys[-1], log_weights[-1], n_paths)
    x_last = particles[-1][last]

    def back(x_next, inputs):
        x, lw, t, k = inputs
        if method == "ffbs":
            idx = _backward_exact(model, k, x_next, x, lw, t)
        else:
            idx = _backward_rejection(model, k, x_next, x, lw, t, log_bound(t), max_rounds)
        x_t = x[idx]
        return x_t, x_t

    ts = start + jnp.arange(T - 1)
    _, earlier = jax.lax.scan(back, x_last, (particles[:-1], log_weights[:-1], ts, keys[:-1]), reverse=True)
    return jnp.swapaxes(jnp.concatenate([earlier, x_last[None]], axis=0), 0, 1)  # (M, T, n)


def _smooth_impl(model, y, key, config, method, n_paths, bound_value, max_rounds):
    k_filter, k_back = jax.random.split(key)
    result = _compiled(model, y, k_filter, config)
    if method == "genealogy":
        paths, lw = _trace_genealogy(result.history), result.log_weights
    else:
        if method == "rejection":
            if bound_value is None:
                n = result.particles.shape[-1]
                log_bound = lambda t: (-0.5 * n * math.log(2 * math.pi)
                                       - 0.5 * jnp.linalg.slogdet(model.Q)[1])
            else:
                log_bound = lambda t: bound_value
        else:
            log_bound = None
        paths = _backward_paths(model, k_back, result.history, n_paths, method, log_bound, max_rounds, 0)
        lw = jnp.full((n_paths,), -math.log(n_paths), paths.dtype)
    w = jnp.exp(lw)
    mean = jnp.einsum("m,mtn->tn", w, paths)
    centred = paths - mean
    cov = jnp.einsum("m,mti,mtj->tij", w, centred, centred)
    return ParticleSmootherResult(mean, cov, paths, lw, result.log_likelihood, result)


_smooth_jit = jax.jit(_smooth_impl, static_argnames=("config", "method", "n_paths", "max_rounds"))


def smooth(model, y, key, n_particles=1000, method="ffbs", n_paths=None, proposal="bootstrap",
           resampling="systematic", ess_threshold=0.5, *, transition_log_bound=None,
           max_rejections=32, errors="raise") -> ParticleSmootherResult:
    """Particle smoother of one series (see the module docstring for the methods).

    Parameters
    ----------
    model : StateSpaceModel
    y : array ``(T, m)`` (or ``(T,)`` for ``m = 1``); NaN entries missing.
    key : jax.random key
    n_particles : int
        ``N`` of the forward filter.
    method : ``"ffbs"``, ``"rejection"`` or ``"genealogy"``
    n_paths : int, optional
        ``M`` backward trajectories (default ``min(N, 256)``; ``"genealogy"`` always returns the
        ``N`` weighted lines).
    proposal, resampling, ess_threshold
        Of the forward filter, as in :func:`probssm.smc.filter`.
    transition_log_bound : float, optional
        :math:`\\log \\bar p`, an upper bound of :math:`\\log p(x_{t+1} \\mid x_t)` over both
        arguments, for ``"rejection"`` on models other than
        :class:`~probssm.ssm.AdditiveGaussianSSM` (whose bound is computed). A value below the
        true supremum biases the draws.
    max_rejections : int
        Rounds of rejection proposals before the pending paths take the exact draw.
    errors : ``"raise"`` or ``"ignore"``
        As in :func:`probssm.smc.filter`.

    Returns
    -------
    ParticleSmootherResult
        ``mean (T, n)``, ``cov (T, n, n)``, ``paths (M, T, n)``, ``log_weights (M,)``, ...
    """
    if method not in SMOOTHERS:
        raise ValueError(f"method must be one of {SMOOTHERS}, got {method!r}")
    config = make_config(n_particles, proposal, resampling, ess_threshold, history=True)
    check_model(model)
    y = check_y(model, y)
    if y.ndim != 2:
        raise ValueError(f"y: smooth takes one series of shape (T, m), got {tuple(y.shape)}; vmap over series")
    check_functions(model, config, y)
    if n_paths is None:
        n_paths = min(config.n_particles, 256)
    if isinstance(n_paths, bool) or not isinstance(n_paths, (int, np.integer)) or n_paths < 1:
        raise ValueError(f"n_paths must be a positive integer, got {n_paths!r}")
    bound = None
    if method == "rejection":
        if transition_log_bound is None and not model.additive:
            raise ValueError("method='rejection' needs transition_log_bound (an upper bound of "
                             "log p(x_{t+1} | x_t)) for a model that is not an AdditiveGaussianSSM")
        if transition_log_bound is not None:
            bound = jnp.asarray(transition_log_bound, dtype=y.dtype)
            if _is_concrete(bound) and not np.isfinite(float(bound)):
                raise ValueError(f"transition_log_bound must be finite, got {transition_log_bound}")
    if int(max_rejections) < 1:
        raise ValueError(f"max_rejections must be a positive integer, got {max_rejections}")
    out = _smooth_jit(model, y, key, config, method, int(n_paths), bound, int(max_rejections))
    if errors == "raise" and _is_concrete(out.filter.degenerate_step):
        raise_if_degenerate(out.filter, y)
    return out
