r"""Exact score of the log-likelihood from the filtered moments, in parallel over time.

For a time-invariant model shared by ``B`` series and the filter's outputs, the gradient of
:math:`\sum_b w_b \ell_b` with respect to every field of the model and to the observations
(Koopman & Shephard 1992; Durbin & Koopman 2012, section 7.3.3), without inverting
:math:`F`, :math:`Q`, :math:`R`, :math:`P_0` or any predicted covariance, so singular noise and
deterministic states are fine.

With predicted moments :math:`a_t, P_t`, filtered :math:`m_t, P_{t|t}` and, for the observed
entries at ``t`` (a missing entry is a zero row of :math:`H` with unit noise, no innovation):

.. math::

    v_t = y_t - H a_t - d,\quad S_t = H P_t H^T + R,\quad K_t = P_t H^T S_t^{-1},\quad
    L_t = F (I - K_t H),

the backward recursion :math:`r_{t-1} = H^T S_t^{-1} v_t + L_t^T r_t`,
:math:`N_{t-1} = H^T S_t^{-1} H + L_t^T N_t L_t`, :math:`r_{T-1} = 0`, :math:`N_{T-1} = 0`
gives :math:`\partial \ell / \partial a_{t+1} = r_t` and
:math:`\partial \ell / \partial P_{t+1} = \tfrac12 (r_t r_t^T - N_t)`. It is an affine map of
:math:`(r, N)` per step, so it runs as a scan of the elements
:math:`(L_t, H^T S_t^{-1} v_t, H^T S_t^{-1} H)` composed associatively: sequential inside chunks
of 32 steps, recursive doubling across chunks (depth :math:`O(32 + \log T)`, each level
compiled once). Then, with
:math:`\tilde r_t = F^T r_t`, :math:`\tilde N_t = F^T N_t F`, :math:`G_t = r_t r_t^T - N_t`,
:math:`u_t = S_t^{-1} v_t - K_t^T \tilde r_t` and the smoothed mean
:math:`\hat x_t = a_t + P_t r_{t-1}`:

.. math::

    \partial_F \ell &= \textstyle\sum_t r_t m_t^T + G_t F P_{t|t}, &
    \partial_Q \ell &= \textstyle\sum_t \tfrac12 G_t, &
    \partial_b \ell &= \textstyle\sum_t r_t, \\
    \partial_H \ell &= \textstyle\sum_t u_t \hat x_t^T - S_t^{-1} H P_t
        + K_t^T \tilde N_t P_{t|t}, &
    \partial_R \ell &= \textstyle\sum_t \tfrac12 (u_t u_t^T - S_t^{-1} - K_t^T \tilde N_t K_t), &
    \partial_d \ell &= \textstyle\sum_t u_t, \\
    \partial_{\mu_0} \ell &= r_{-1}, &
    \partial_{P_0} \ell &= \tfrac12 (r_{-1} r_{-1}^T - N_{-1}), &
    \partial_{y_t} \ell &= -u_t,

observation terms restricted to the observed entries (zero for missing ones). The covariance
gradients are symmetric (the derivative along symmetric directions).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.linalg import cho_solve

from .model import FIELD_NAMES, LGSSM

__all__ = ["log_likelihood_vjp"]


_HIGHEST = jax.lax.Precision.HIGHEST  # float32 products in full float32, not TF32, on GPUs
_SCAN_CHUNK = 32


def _mT(a):
    return jnp.swapaxes(a, -1, -2)


def _mm(a, b):
    """``a @ b`` over the last two axes (batch axes broadcast)."""
    return jnp.matmul(a, b, precision=_HIGHEST)


def _mv(a, x):
    """``a @ x``: ``a`` ``(..., i, j)``, ``x`` ``(..., j)``."""
    return jnp.einsum("...ij,...j->...i", a, x, precision=_HIGHEST)


def _outer(x, z):
    return x[..., :, None] * z[..., None, :]


def _compose(later, earlier):
    """Backward elements ``(A, c, W)`` mapping ``(r, N)`` to ``(c + A^T r, W + A^T N A)``:
    the map of ``earlier`` applied after that of ``later`` (which acts first, going back)."""
    A2, c2, W2 = later
    A1, c1, W1 = earlier
    return (_mm(A2, A1), c1 + _mv(_mT(A1), c2), W1 + _mm(_mT(A1), _mm(W2, A1)))


def _suffix_doubling(A, c, W):
    """Every suffix composition of the elements along axis 1 (of ``t .. T-1`` at ``t``), by
    recursive doubling: level ``k`` composes each window with the one ``2^k`` later (identity past
    the end). :math:`O(T \\log T)` work, but one compiled level in a ``fori_loop``, where
    ``lax.associative_scan`` unrolls ``2 log2 T`` levels (3.6-7.6 s of XLA compile on an H100
    at T = 1e6, ``benchmarks/score_compile_probe.py``)."""
    T, n = c.shape[1], c.shape[-1]
    identity = (jnp.eye(n, dtype=A.dtype), jnp.zeros((n,), A.dtype), jnp.zeros((n, n), A.dtype))
    steps = jnp.arange(T)

    def later_window(x, shift, ident):
        inside = (steps + shift < T).reshape((1, T) + (1,) * (x.ndim - 2))
        return jnp.where(inside, jnp.roll(x, -shift, axis=1), ident)

    def level(k, window):
        shift = jnp.left_shift(1, k)
        return _compose(tuple(map(later_window, window, (shift,) * 3, identity)), window)

    return jax.lax.fori_loop(0, max(1, (T - 1).bit_length()), level, (A, c, W))


def _backward_adjoints(L, c, W, chunk=_SCAN_CHUNK):
    """``(r_{t-1}, N_{t-1})`` for every ``t`` (time axis 1), from the elements at ``t .. T-1``.

    Work-efficient in three steps: a sequential ``lax.scan`` through every chunk of ``chunk``
    steps (all chunks at once) gives the suffix compositions within chunks; recursive doubling
    over the chunk totals (:func:`_suffix_doubling`) the adjoints entering each chunk from the
    right; applying the within-chunk suffixes to them gives every step's."""
    B, T, n = c.shape
    C = -(-T // chunk)
    pad = C * chunk - T  # identity elements after the end change no suffix
    eye = jnp.eye(n, dtype=L.dtype)
    padded = (jnp.concatenate([L, jnp.broadcast_to(eye, (B, pad, n, n))], axis=1),
              jnp.pad(c, ((0, 0), (0, pad), (0, 0))),
              jnp.pad(W, ((0, 0), (0, pad), (0, 0), (0, 0))))
    by_step = tuple(jnp.moveaxis(x.reshape((B, C, chunk) + x.shape[2:]), 2, 0) for x in padded)

    def back(later, element):
        window = _compose(later, element)
        return window, window

    identity = (jnp.broadcast_to(eye, (B, C, n, n)), jnp.zeros((B, C, n), L.dtype),
                jnp.zeros((B, C, n, n), L.dtype))
    totals, (A_w, c_w, W_w) = jax.lax.scan(back, identity, by_step, reverse=True)
    _, r_chunks, N_chunks = _suffix_doubling(*totals)
    r_in = jnp.concatenate([r_chunks[:, 1:], jnp.zeros_like(r_chunks[:, :1])], axis=1)
    N_in = jnp.concatenate([N_chunks[:, 1:], jnp.zeros_like(N_chunks[:, :1])], axis=1)
    r_prev = c_w + _mv(_mT(A_w), r_in)
    N_prev = W_w + _mm(_mT(A_w), _mm(N_in, A_w))

    def by_time(x):
        return jnp.moveaxis(x, 0, 2).reshape((B, C * chunk) + x.shape[3:])[:, :T]

    return by_time(r_prev), by_time(N_prev)


def log_likelihood_vjp(model: LGSSM, y, states, cotangent):
    """Gradient of :math:`\\sum_b w_b \\ell_b` (``w`` = ``cotangent`` ``(B,)``) with respect to
    ``model`` (time-invariant, no batch axes) and ``y`` ``(B, T, m)`` (NaN = missing), from the
    filter's ``states``: ``predicted_mean`` ``(B, T, n)``, ``predicted_cov`` ``(B, T, n, n)``,
    ``mean``, ``cov`` (filtered, same shapes). Returns ``(model_cotangent, y_cotangent)``, an
    :class:`LGSSM` of gradients (zero for ``initial_diffuse_cov``) and ``(B, T, m)``."""
    F, Q = model.transition_matrix, model.transition_cov
    H, R, d = model.observation_matrix, model.observation_cov, model.observation_offset
    n, m = model.state_dim, model.observation_dim
    dtype = y.dtype
    a, P = states["predicted_mean"], states["predicted_cov"]
    mean, cov = states["mean"], states["cov"]
    w = jnp.asarray(cotangent, dtype)[:, None]  # (B, 1): weight of every step of a series

    observed = ~jnp.isnan(y)
    o = observed.astype(dtype)
    mask2 = o[..., :, None] * o[..., None, :]
    Ho = o[..., :, None] * H  # (B, T, m, n): a missing entry is a zero row
    Ro = mask2 * R + jnp.eye(m, dtype=dtype) * (1.0 - o)[..., None, :]
    v = jnp.where(observed, y - d - _mv(H, a), 0.0)
    HoP = _mm(Ho, P)
    S = _mm(HoP, _mT(Ho)) + Ro
    chol = jnp.linalg.cholesky(0.5 * (S + _mT(S)))
    Sinv_v = cho_solve((chol, True), v[..., None])[..., 0]
    Sinv_HP = cho_solve((chol, True), HoP)  # (B, T, m, n) = K^T
    K = _mT(Sinv_HP)
    eye = jnp.eye(n, dtype=dtype)
    L = _mm(F, eye - _mm(K, Ho))
    c = _mv(_mT(Ho), Sinv_v)
    W = _mm(_mT(Ho), cho_solve((chol, True), Ho))

    r_prev, N_prev = _backward_adjoints(L, c, W)  # adjoints of a_t, P_t
    r = jnp.concatenate([r_prev[:, 1:], jnp.zeros_like(r_prev[:, :1])], axis=1)  # of a_{t+1}
    N = jnp.concatenate([N_prev[:, 1:], jnp.zeros_like(N_prev[:, :1])], axis=1)
    G = _outer(r, r) - N
    r_f = _mv(_mT(F), r)  # adjoints at the filtered moments
    N_f = _mm(_mT(F), _mm(N, F))
    u = Sinv_v - _mv(_mT(K), r_f)
    smoothed = a + _mv(P, r_prev)

    wsum = lambda x: jnp.sum(w.reshape(w.shape + (1,) * (x.ndim - 2)) * x, axis=(0, 1))  # noqa: E731
    gF = wsum(_outer(r, mean) + _mm(_mm(G, F), cov))
    gQ = 0.5 * wsum(G)
    gb = wsum(r)
    KT_Nf = _mm(Sinv_HP, N_f)
    gH = wsum(_outer(u, smoothed) - Sinv_HP + _mm(KT_Nf, cov))
    D = cho_solve((chol, True), jnp.broadcast_to(jnp.eye(m, dtype=dtype), S.shape)) + _mm(KT_Nf, K)
    gR = 0.5 * wsum(mask2 * (_outer(u, u) - D))
    gd = wsum(u)
    r0, N0 = r_prev[:, 0], N_prev[:, 0]
    w0 = w.reshape(-1, 1, 1)
    gm0 = jnp.sum(w * r0, axis=0)
    gP0 = 0.5 * jnp.sum(w0 * (_outer(r0, r0) - N0), axis=0)

    sym = lambda g: 0.5 * (g + _mT(g))  # noqa: E731
    grads = dict(transition_matrix=gF, transition_cov=sym(gQ), observation_matrix=gH,
                 observation_cov=sym(gR), initial_mean=gm0, initial_cov=sym(gP0),
                 transition_offset=gb, observation_offset=gd,
                 initial_diffuse_cov=jnp.zeros_like(model.initial_diffuse_cov))
    children, static = model.tree_flatten()
    model_ct = LGSSM.tree_unflatten(static, [
        jnp.asarray(grads[k], leaf.dtype).reshape(jnp.shape(leaf))
        for k, leaf in zip(FIELD_NAMES, children)])
    return model_ct, -w[..., None] * u
