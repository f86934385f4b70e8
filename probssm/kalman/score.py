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
:math:`(r, N)` per step, so it runs as an associative scan of the elements
:math:`(L_t, H^T S_t^{-1} v_t, H^T S_t^{-1} H)` (depth :math:`O(\log T)`). Then, with
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


# Products of the small per-step matrices as broadcast-multiply-and-sum, which XLA fuses into
# loops: as dots, every level of the scan became a cuBLAS call autotuned at compile time (seconds
# of GPU compile), with TF32 unless the precision were raised.
def _mT(a):
    return jnp.swapaxes(a, -1, -2)


def _mm(a, b):
    """``a @ b`` over the last two axes (broadcast batch axes)."""
    return jnp.sum(a[..., :, :, None] * b[..., None, :, :], axis=-2)


def _mv(a, x):
    """``a @ x``: ``a`` ``(..., i, j)``, ``x`` ``(..., j)``."""
    return jnp.sum(a * x[..., None, :], axis=-1)


def _outer(x, z):
    return x[..., :, None] * z[..., None, :]


def _compose(later, earlier):
    """Backward elements ``(A, c, W)`` mapping ``(r, N)`` to ``(c + A^T r, W + A^T N A)``:
    the map of ``earlier`` applied after that of ``later`` (which acts first, going back)."""
    A2, c2, W2 = later
    A1, c1, W1 = earlier
    return (_mm(A2, A1), c1 + _mv(_mT(A1), c2), W1 + _mm(_mT(A1), _mm(W2, A1)))


def _backward_adjoints(L, c, W):
    """``(r_{t-1}, N_{t-1})`` for every ``t``, from the elements at ``t .. T-1`` (time axis 1)."""
    _, r_prev, N_prev = jax.lax.associative_scan(_compose, (L, c, W), reverse=True, axis=1)
    return r_prev, N_prev


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
