"""Exact GP regression at linear cost: marginal likelihood, posterior moments and joint samples.

Pure functions on a kernel and arrays; each builds the state-space model of
:mod:`probssm.gp.model` on the sorted time stamps and runs one :mod:`probssm.kalman` pass, so
``method`` is any of :data:`probssm.kalman.METHODS` (``"sequential"``, ``"parallel"``,
``"kernel"``) or ``"auto"``. Shapes: ``t`` ``(T,)`` in any order (results come back in the
caller's order), repeated time stamps allowed; ``y`` ``(T,)`` for one output or ``(T, k)`` for
``k`` independent outputs sharing the kernel, NaN where missing; ``noise`` the observation noise
variance, a scalar or ``(T,)``. Values follow the inputs' dtype (use ``jax.enable_x64`` for
float64). Posterior quantities at new times ``t_new`` come from the same pass with ``t_new``
inserted as missing observations, so interpolation and extrapolation are exact.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .. import kalman
from .kernels.base import as_times
from .model import check_kernel, state_space_model

__all__ = ["Posterior", "log_marginal_likelihood", "posterior", "posterior_joint", "sample_posterior",
           "check_data"]


class Posterior(NamedTuple):
    """Posterior moments of the latent :math:`f` at the requested times.

    Attributes
    ----------
    mean : ``(T*,)`` or ``(T*, k)``
        :math:`\\mathbb E[f(t^*) \\mid y]`.
    variance : same shape as ``mean``
        :math:`\\mathrm{Var}[f(t^*) \\mid y]` (observation noise not included).
    """

    mean: jax.Array
    variance: jax.Array


def check_data(kernel, t, y, noise=0.0):
    """Checked arrays ``(t, y, noise)`` for the functions here: ``t`` finite real ``(T,)``,
    ``y`` ``(T,)`` or ``(T, k)`` real with NaN for missing values and no infinities, ``noise``
    a scalar or ``(T,)``, non-negative and finite. Traced arrays pass through. The caller's
    arrays are never modified."""
    check_kernel(kernel)
    t = as_times(t, "t")
    if isinstance(y, jax.core.Tracer):
        return t, y, noise
    y_arr = np.asarray(y)
    if y_arr.dtype == object or not np.issubdtype(y_arr.dtype, np.number) or np.iscomplexobj(y_arr):
        raise TypeError(f"y: expected real numbers, got dtype {y_arr.dtype}")
    if y_arr.ndim not in (1, 2):
        raise ValueError(f"y: expected shape (T,) or (T, k), got {y_arr.shape}")
    if y_arr.shape[0] != t.shape[0]:
        raise ValueError(f"t has {t.shape[0]} time stamps but y has {y_arr.shape[0]} rows; they must match")
    if t.shape[0] == 0:
        raise ValueError("t: at least one time stamp is needed")
    if np.issubdtype(y_arr.dtype, np.floating) and np.isinf(y_arr).any():
        pos = tuple(int(i) for i in np.argwhere(np.isinf(y_arr))[0])
        raise ValueError(f"y contains an infinite value at index {pos}; use NaN for missing values")
    y_arr = y_arr.astype(np.result_type(y_arr.dtype, t.dtype))
    if not isinstance(noise, jax.core.Tracer):
        noise_arr = np.asarray(noise, dtype=t.dtype)
        if noise_arr.ndim not in (0, 1) or (noise_arr.ndim == 1 and noise_arr.shape[0] != t.shape[0]):
            raise ValueError(f"noise: expected a scalar or shape ({t.shape[0]},) (one variance per time "
                             f"stamp), got shape {noise_arr.shape}")
        bad = np.flatnonzero(~(np.isfinite(noise_arr) & (noise_arr >= 0)).reshape(-1))
        if bad.size:
            where = "" if noise_arr.ndim == 0 else f" at position {int(bad[0])}"
            raise ValueError(f"noise: variances must be finite and non-negative; got "
                             f"{noise_arr.reshape(-1)[bad[0]]}{where}")
        noise = noise_arr
    return t, y_arr, noise


def _as_batch(y):
    """``(T,)`` -> ``(T, 1)``; ``(T, k)`` -> ``(k, T, 1)`` (the kalman batch axis)."""
    return y[:, None] if y.ndim == 1 else jnp.swapaxes(y, 0, 1)[..., None]


def _from_batch(values, ndim):
    """Inverse of :func:`_as_batch` for per-step scalars ``(T,)`` / ``(k, T)``."""
    return values if ndim == 1 else jnp.swapaxes(values, 0, 1)


def _sorted(t, *columns):
    order = jnp.argsort(t, stable=True)
    inverse = jnp.zeros_like(order).at[order].set(jnp.arange(order.shape[0]))
    return order, inverse, t[order], [c[order] for c in columns]


@partial(jax.jit, static_argnames=("method",))
def _log_marginal_likelihood(kernel, t, y, noise, method):
    noise = jnp.broadcast_to(noise, t.shape)
    _, _, ts, (ys, ns) = _sorted(t, y, noise)
    model = state_space_model(kernel, ts, ns)
    return kalman.log_likelihood(model, _as_batch(ys), method=method)


def log_marginal_likelihood(kernel, t, y, noise=0.0, *, method: str = "auto"):
    """:math:`\\log p(y \\mid \\theta) = \\log N(y; 0, K + \\operatorname{diag}(r))` over the
    observed entries, exactly, in :math:`O(T n^3)`.

    Returns a scalar for ``y`` ``(T,)``, ``(k,)`` for ``y`` ``(T, k)``. Differentiable in the
    kernel's hyperparameters, ``y`` and ``noise`` (``jax.grad``).
    """
    t, y, noise = check_data(kernel, t, y, noise)
    return _log_marginal_likelihood(kernel, t, y, noise, method)


def _merged(t, y, noise, t_new):
    """Training and new times in one sorted grid, the new ones as missing observations."""
    dtype = jnp.result_type(t, y, 1.0)
    T_new = t_new.shape[0]
    missing = jnp.full((T_new,) + y.shape[1:], jnp.nan, dtype)
    t_all = jnp.concatenate([t, t_new.astype(t.dtype)])
    y_all = jnp.concatenate([y.astype(dtype), missing])
    noise_all = jnp.concatenate([jnp.broadcast_to(noise, t.shape).astype(dtype), jnp.ones(T_new, dtype)])
    return t_all, y_all, noise_all


@partial(jax.jit, static_argnames=("method",))
def _posterior(kernel, t, y, noise, t_new, method):
    t_all, y_all, noise_all = _merged(t, y, noise, t_new)
    _, inverse, ts, (ys, ns) = _sorted(t_all, y_all, noise_all)
    model = state_space_model(kernel, ts, ns)
    smoothed = kalman.smooth(model, _as_batch(ys), method=method)
    H = model.observation_matrix[0]
    mean = _from_batch(smoothed.mean @ H, y.ndim)[inverse]
    variance = _from_batch(jnp.einsum("i,...ij,j->...", H, smoothed.cov, H), y.ndim)[inverse]
    T = t.shape[0]
    return Posterior(mean[T:], jnp.maximum(variance[T:], 0.0))


def posterior(kernel, t, y, t_new=None, noise=0.0, *, method: str = "auto") -> Posterior:
    """Posterior mean and variance of :math:`f` at ``t_new`` (default: the training times ``t``).

    ``t_new`` ``(T*,)`` in any order, inside, between or beyond the training times; the result
    has shape ``(T*,)`` (or ``(T*, k)``) in that order.
    """
    t, y, noise = check_data(kernel, t, y, noise)
    t_new = t if t_new is None else as_times(t_new, "t_new")
    return _posterior(kernel, t, y, noise, t_new, method)


@partial(jax.jit, static_argnames=("method",))
def _posterior_joint(kernel, t, y, noise, t_new, method):
    t_all, y_all, noise_all = _merged(t, y, noise, t_new)
    order, inverse, ts, (ys, ns) = _sorted(t_all, y_all, noise_all)
    model = state_space_model(kernel, ts, ns)
    filtered = kalman.filter(model, ys[:, None], method=method)
    smoothed = kalman.smooth(model, ys[:, None], method=method)
    H = model.observation_matrix[0]
    # RTS gains G_k = P_{k|k} A_k^T P_{k+1|k}^+ (pseudo-inverse: deterministic kernels, e.g.
    # Periodic, have singular predictions), so Cov(x_i, x_j | y) = G_i ... G_{j-1} P_{j|T}.
    gains = jnp.einsum("kij,klj->kil", filtered.cov[:-1], model.transition_matrix[:-1])
    gains = gains @ jnp.linalg.pinv(filtered.predicted_cov[1:], hermitian=True)
    gains = jnp.concatenate([gains, jnp.zeros_like(gains[:1])])
    start = inverse[t.shape[0]:]  # sorted positions of the new times, (T*,)

    def step(rows, inputs):
        k, gain, cov = inputs
        rows = jnp.where((start == k)[:, None], H, rows)  # a row starts at its own time
        column = jnp.where(start <= k, rows @ cov @ H, 0.0)
        return rows @ gain, column

    rows0 = jnp.zeros((start.shape[0], H.shape[0]), H.dtype)
    _, columns = jax.lax.scan(step, rows0, (jnp.arange(ts.shape[0]), gains, smoothed.cov))
    lower = columns[start]  # lower[b, a] = Cov(f*_a, f*_b) where the time of a <= that of b
    cov = jnp.where(start[None, :] <= start[:, None], lower, lower.T)
    mean = (smoothed.mean @ H)[inverse][t.shape[0]:]
    return mean, 0.5 * (cov + cov.T)


def posterior_joint(kernel, t, y, t_new, noise=0.0, *, method: str = "auto"):
    """Posterior mean ``(T*,)`` and joint covariance ``(T*, T*)`` of :math:`f(t^*)` (one output,
    ``y`` ``(T,)``), from one filtering and smoothing pass and the smoother gains, in
    :math:`O((T + T^*) \\, T^* n^2)`."""
    t, y, noise = check_data(kernel, t, y, noise)
    if y.ndim != 1:
        raise ValueError(f"posterior_joint takes one output, y of shape (T,); got {y.shape}")
    return _posterior_joint(kernel, t, y, noise, as_times(t_new, "t_new"), method)


@partial(jax.jit, static_argnames=("num_samples", "method"))
def _sample_posterior(kernel, t, y, noise, t_new, key, num_samples, method):
    t_all, y_all, noise_all = _merged(t, y, noise, t_new)
    _, inverse, ts, (ys, ns) = _sorted(t_all, y_all, noise_all)
    model = state_space_model(kernel, ts, ns)
    k = 1 if y.ndim == 1 else y.shape[1]
    states, observations = kalman.sample(model, key, ts.shape[0], sample_shape=(num_samples, k))
    H = model.observation_matrix[0]
    prior_f = states @ H                                     # (S, k, T_all)
    observed = ~jnp.isnan(_as_batch(ys).reshape(k, -1))      # (k, T_all)
    prior_y = jnp.where(observed, observations[..., 0], jnp.nan)
    # Matheron's rule: f | y  =  f + E[f | y] - E[f | y_f], with (f, y_f) a joint prior draw.
    batch = jnp.concatenate([_as_batch(ys).reshape(1, k, -1), prior_y], axis=0)[..., None]
    smoothed_f = kalman.smooth(model, batch, method=method).mean @ H  # (1 + S, k, T_all)
    draws = prior_f + smoothed_f[:1] - smoothed_f[1:]
    draws = draws[..., inverse][..., t.shape[0]:]              # (S, k, T*)
    return draws[:, 0] if y.ndim == 1 else jnp.swapaxes(draws, 1, 2)


def sample_posterior(kernel, t, y, key, num_samples: int, t_new=None, noise=0.0, *,
                     method: str = "auto"):
    """Joint posterior draws of :math:`f(t^*)` given ``y`` (Matheron's rule: a joint prior draw
    of :math:`f` and pseudo-observations, corrected by two smoothing passes run as one batch).

    Returns ``(num_samples, T*)`` or ``(num_samples, T*, k)``.
    """
    t, y, noise = check_data(kernel, t, y, noise)
    t_new = t if t_new is None else as_times(t_new, "t_new")
    if jnp.issubdtype(jnp.asarray(key).dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return _sample_posterior(kernel, t, y, noise, t_new, key, int(num_samples), method)
