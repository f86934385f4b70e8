r"""Reverse mode of the Kalman filter and smoother from their outputs, in parallel over time.

For a model shared by ``B`` series (time-invariant, or with time-varying fields ``(T, ...)``),
the gradients of functions of the filter's
and smoother's outputs with respect to every field of the model and to the observations,
computed from those outputs (the kernels' own, :mod:`probssm.kalman.ops.filter_kernel`), without
differentiating or recomputing the forward pass and without inverting :math:`F`, :math:`Q`,
:math:`R`, :math:`P_0` or a predicted covariance, so singular noise and deterministic states
are fine: :func:`filter_vjp` (cotangents on any filter output), :func:`smoother_vjp` (and on the
smoothed moments), and :func:`log_likelihood_vjp`, the exact score of the log-likelihood
(Koopman & Shephard 1992; Durbin & Koopman 2012, section 7.3.3), which this docstring states.

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
gradients are symmetric (the derivative along symmetric directions). For a time-varying model
(:math:`F_t` maps :math:`x_t` to :math:`x_{t+1}`) every :math:`F, Q, H, R, b, d` above carries
the index of its step, and the gradient of a time-varying field is the term of each step,
not the sum: e.g. :math:`\partial_{F_t} \ell = r_t m_t^T + G_t F_t P_{t|t}` and
:math:`\partial_{R_t} \ell = \tfrac12 (u_t u_t^T - S_t^{-1} - K_t^T \tilde N_t K_t)`, so
:math:`F_{T-1}, Q_{T-1}, b_{T-1}` (which only predict past the data) get zero.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from .states import FilterStates, SmootherStates
from .._entrywise import cho_solve_entries, cholesky_entries
from .._linalg import matmul, matvec, psd_shifted, symmetrize, unfolded
from ..model import FIELD_NAMES, LGSSM

__all__ = ["filter_vjp", "log_likelihood_vjp", "smoother_vjp"]


_SCAN_CHUNK = 32


def _outer(x, z):
    return x[..., :, None] * z[..., None, :]


class _Algebra(NamedTuple):
    """Elements of a backward scan: ``compose(later, earlier)``, the map of ``earlier`` applied
    after that of ``later`` (which acts first, going back in time), and ``identity(n, dtype,
    shape)``, its neutral element broadcast to ``shape``."""

    compose: Callable
    identity: Callable


def _compose_adjoints(later, earlier):
    """Backward elements ``(A, c, h, W)``, each the map
    :math:`(\\lambda, \\Lambda) \\mapsto (A^T \\lambda + c,\\;
    A^T \\Lambda A + \\mathrm{sym}(h (A^T \\lambda)^T) + W)`. The coupling term keeps its
    form under composition: ``h = h_1 + A_1^T h_2``."""
    A2, c2, h2, W2 = later
    A1, c1, h1, W1 = earlier
    A1T = A1.mT
    x = matvec(A1T, c2)
    return (matmul(A2, A1), c1 + x, h1 + matvec(A1T, h2),
            W1 + matmul(A1T, matmul(W2, A1)) + symmetrize(_outer(h1, x)))


def _identity_adjoints(n, dtype, shape=()):
    eye = jnp.broadcast_to(jnp.eye(n, dtype=dtype), shape + (n, n))
    return eye, jnp.zeros(shape + (n,), dtype), jnp.zeros(shape + (n,), dtype), jnp.zeros_like(eye)


def _compose_rts(later, earlier):
    """Rauch-Tung-Striebel elements ``(E, g, L)``: :math:`x_t \\mid x_{t+1}, y \\sim
    N(E x_{t+1} + g, L)`, mapping smoothed moments :math:`(s, S) \\mapsto (E s + g,
    E S E^T + L)`."""
    E2, g2, L2 = later
    E1, g1, L1 = earlier
    return matmul(E1, E2), matvec(E1, g2) + g1, matmul(E1, matmul(L2, E1.mT)) + L1


def _identity_rts(n, dtype, shape=()):
    eye = jnp.broadcast_to(jnp.eye(n, dtype=dtype), shape + (n, n))
    return eye, jnp.zeros(shape + (n,), dtype), jnp.zeros_like(eye)


_ADJOINTS = _Algebra(_compose_adjoints, _identity_adjoints)
_RTS = _Algebra(_compose_rts, _identity_rts)


def _suffix_doubling(elements, algebra):
    """Every suffix composition of ``elements`` along axis 1 (of ``t .. T-1`` at ``t``), by
    recursive doubling: level ``k`` composes each window with the one ``2^k`` later (identity past
    the end). :math:`O(T \\log T)` work, but one compiled level in a ``fori_loop``, where
    ``lax.associative_scan`` unrolls ``2 log2 T`` levels, each compiled on its own (seconds of
    XLA compile at long ``T``; ``benchmarks/README.md``)."""
    T, n = elements[0].shape[1], elements[0].shape[-1]
    identity = algebra.identity(n, elements[0].dtype)
    steps = jnp.arange(T)

    def later_window(x, shift, ident):
        inside = (steps + shift < T).reshape((1, T) + (1,) * (x.ndim - 2))
        return jnp.where(inside, jnp.roll(x, -shift, axis=1), ident)

    def level(k, window):
        shift = jnp.left_shift(1, k)
        later = tuple(later_window(x, shift, i) for x, i in zip(window, identity))
        return algebra.compose(later, window)

    return jax.lax.fori_loop(0, max(1, (T - 1).bit_length()), level, tuple(elements))


def _suffix_compositions(elements, algebra, chunk=_SCAN_CHUNK):
    """Every suffix composition of ``elements`` (time axis 1), work-efficiently: a sequential
    ``lax.scan`` through every chunk of ``chunk`` steps (all chunks at once) composes the suffixes
    within chunks, recursive doubling (:func:`_suffix_doubling`) those of the chunk totals, and
    one more composition joins each step's suffix in its chunk to the next chunk's."""
    B, T = elements[0].shape[:2]
    n, dtype = elements[0].shape[-1], elements[0].dtype
    C = -(-T // chunk)
    pad = C * chunk - T  # identity elements after the end change no suffix
    padded = [jnp.concatenate([x, jnp.broadcast_to(i, (B, pad) + i.shape)], axis=1)
              for x, i in zip(elements, algebra.identity(n, dtype))]
    by_step = tuple(jnp.moveaxis(x.reshape((B, C, chunk) + x.shape[2:]), 2, 0) for x in padded)

    def back(later, element):
        window = algebra.compose(later, element)
        return window, window

    totals, within = jax.lax.scan(back, algebra.identity(n, dtype, (B, C)), by_step, reverse=True)
    chunk_suffixes = _suffix_doubling(totals, algebra)
    after = [jnp.concatenate([x[:, 1:], i], axis=1)
             for x, i in zip(chunk_suffixes, algebra.identity(n, dtype, (B, 1)))]
    joined = algebra.compose(tuple(x[None] for x in after), within)

    def by_time(x):
        return jnp.moveaxis(x, 0, 2).reshape((B, C * chunk) + x.shape[3:])[:, :T]

    return tuple(map(by_time, joined))


def _sum_terms(*terms):
    """The sum of the terms that are not ``None`` (absent cotangents), or ``None``."""
    present = [t for t in terms if t is not None]
    return sum(present[1:], present[0]) if present else None


def filter_vjp(model: LGSSM, y, states: FilterStates, cotangents: FilterStates):
    """Reverse mode of the filter in parallel over time: the gradient of
    :math:`\\sum \\langle \\bar o, o \\rangle` over the filter's outputs ``o`` (``states``)
    and their cotangents :math:`\\bar o` (``cotangents``, a :class:`~.states.FilterStates`
    whose ``None`` fields are zero), with respect to ``model`` (no batch axes; time-varying
    fields get per-step gradients, ``(T, ...)``, the sums below taken over the series only)
    and ``y`` ``(B, T, m)`` (NaN = missing).

    ``states`` (from :func:`probssm.kalman.ops.filter_kernel.filter_batch`): ``predicted_mean``,
    ``mean`` ``(B, T, n)``, ``predicted_cov``, ``cov`` ``(B, T, n, n)``; cotangents also for
    ``observation_mean`` ``(B, T, m)``, ``observation_cov`` ``(B, T, m, m)``,
    ``log_likelihood_terms`` ``(B, T)``, ``next_mean`` ``(B, n)``, ``next_cov`` ``(B, n, n)``.
    Returns ``(model_cotangent, y_cotangent)``: an :class:`LGSSM` of gradients (zero for
    ``initial_diffuse_cov``; covariances symmetric) and ``(B, T, m)`` (zero where missing).

    With the adjoints :math:`\\lambda_t, \\Lambda_t` of the predicted moments
    :math:`a_t, P_t` (module docstring for :math:`S_t, K_t, v_t`), :math:`z_t = S_t^{-1} v_t`,
    :math:`h_t = H^T z_t`, :math:`\\tilde L_t = I - K_t H` and :math:`A_t = F \\tilde L_t`,
    one step back is

    .. math::

        \\lambda_t = A_t^T \\lambda_{t+1} + c_t, \\qquad
        \\Lambda_t = A_t^T \\Lambda_{t+1} A_t + \\mathrm{sym}(h_t (A_t^T \\lambda_{t+1})^T)
            + W_t,

    with :math:`c_t = \\tilde L_t^T \\bar m_t + \\bar\\ell_t h_t + \\bar a_t
    + H^T \\bar o_t` and :math:`W_t = \\tilde L_t^T \\bar P_{t|t} \\tilde L_t
    + \\mathrm{sym}(h_t (\\tilde L_t^T \\bar m_t)^T)
    + \\tfrac12 \\bar\\ell_t (h_t h_t^T - H^T S_t^{-1} H) + \\bar P_t + H^T \\bar S^o_t H`
    (the last two for the predicted and observation covariances' cotangents), started from the
    cotangents of ``next_mean`` and ``next_cov``. These maps compose associatively
    (:func:`_compose_adjoints`), so all adjoints come from one scan
    (:func:`_suffix_compositions`). The
    adjoints of the filtered moments are then :math:`\\mu_t = F^T \\lambda_{t+1} + \\bar m_t`,
    :math:`\\Gamma_t = F^T \\Lambda_{t+1} F + \\bar P_{t|t}`, and each field's gradient a sum
    over steps: :math:`\\partial_F = \\sum \\lambda_{t+1} m_t^T + 2 \\Lambda_{t+1} F P_{t|t}`,
    :math:`\\partial_Q = \\sum \\Lambda_{t+1}`, :math:`\\partial_b = \\sum \\lambda_{t+1}`,
    :math:`\\bar v_t = K_t^T \\mu_t - \\bar\\ell_t z_t` (:math:`= \\partial_{y_t}`,
    :math:`\\partial_d = -\\sum \\bar v_t + \\bar o_t`), :math:`\\bar S_t =
    \\tfrac12 \\bar\\ell_t (z_t z_t^T - S_t^{-1}) - \\mathrm{sym}(K_t^T \\mu_t z_t^T)
    + K_t^T \\Gamma_t K_t` (:math:`\\partial_R = \\sum \\bar S_t + \\bar S^o_t`),
    :math:`\\partial_H = \\sum -\\bar v_t a_t^T + 2 \\bar S_t H P_t + z_t (P_t \\mu_t)^T
    - 2 K_t^T \\Gamma_t P_t + \\bar o_t a_t^T + 2 \\bar S^o_t H P_t`,
    :math:`\\partial_{\\mu_0} = \\lambda_0`, :math:`\\partial_{P_0} = \\Lambda_0`.
    """
    F = model.transition_matrix
    H, R, d = model.observation_matrix, model.observation_cov, model.observation_offset
    n, m = model.state_dim, model.observation_dim
    y = unfolded(y)
    B, T, _ = y.shape
    dtype = y.dtype
    a, P = states.predicted_mean, states.predicted_cov
    mean, cov = states.mean, states.cov

    def cotangent(key, symmetric=False):
        value = getattr(cotangents, key)
        if value is None:
            return None
        value = jnp.asarray(value, dtype)
        return symmetrize(value) if symmetric else value

    g_mean, g_cov = cotangent("mean"), cotangent("cov", True)
    g_pmean, g_pcov = cotangent("predicted_mean"), cotangent("predicted_cov", True)
    g_omean, g_ocov = cotangent("observation_mean"), cotangent("observation_cov", True)
    g_ll = cotangent("log_likelihood_terms")
    g_next_mean, g_next_cov = cotangent("next_mean"), cotangent("next_cov", True)

    observed = ~jnp.isnan(y)
    o = observed.astype(dtype)
    mask2 = _outer(o, o)
    Ho = o[..., :, None] * H  # (B, T, m, n): a missing entry is a zero row with unit noise
    Ro = mask2 * R + jnp.eye(m, dtype=dtype) * (1.0 - o)[..., None, :]
    v = jnp.where(observed, y - d - matvec(H, a), 0.0)
    HoP = matmul(Ho, P)
    S = matmul(HoP, Ho.mT) + Ro
    chol = cholesky_entries(symmetrize(S))
    z = cho_solve_entries(chol, v[..., None])[..., 0]
    KT = cho_solve_entries(chol, HoP)  # (B, T, m, n)
    K = KT.mT
    h = matvec(Ho.mT, z)
    L_tilde = jnp.eye(n, dtype=dtype) - matmul(K, Ho)
    L_tildeT = L_tilde.mT
    gl = None if g_ll is None else g_ll[..., None]
    gl2 = None if g_ll is None else g_ll[..., None, None]
    Sinv = None if g_ll is None else cho_solve_entries(
        chol, jnp.broadcast_to(jnp.eye(m, dtype=dtype), S.shape))
    Lt_gm = None if g_mean is None else matvec(L_tildeT, g_mean)

    c = _sum_terms(Lt_gm, None if gl is None else gl * h, g_pmean,
                   None if g_omean is None else matvec(H.mT, g_omean))
    W = _sum_terms(
        None if g_cov is None else matmul(L_tildeT, matmul(g_cov, L_tilde)),
        None if g_mean is None else symmetrize(_outer(h, Lt_gm)),
        None if gl is None else 0.5 * gl2 * (_outer(h, h) - matmul(Ho.mT, matmul(Sinv, Ho))),
        g_pcov,
        None if g_ocov is None else matmul(H.mT, matmul(g_ocov, H)))
    zeros_n, zeros_nn = jnp.zeros((B, T, n), dtype), jnp.zeros((B, T, n, n), dtype)
    c = zeros_n if c is None else c
    W = zeros_nn if W is None else W
    terminal = (jnp.zeros((B, 1, n, n), dtype),
                jnp.zeros((B, 1, n), dtype) if g_next_mean is None else g_next_mean[:, None],
                jnp.zeros((B, 1, n), dtype),
                jnp.zeros((B, 1, n, n), dtype) if g_next_cov is None else g_next_cov[:, None])
    elements = [jnp.concatenate([x, e], axis=1)
                for x, e in zip((matmul(F, L_tilde), c, h, W), terminal)]
    _, lam, _, Lam = _suffix_compositions(elements, _ADJOINTS)  # of a_t, P_t, t = 0 .. T
    lam_next, Lam_next = lam[:, 1:], Lam[:, 1:]  # of a_{t+1}, P_{t+1}

    mu = _sum_terms(matvec(F.mT, lam_next), g_mean)
    Gamma = _sum_terms(matmul(F.mT, matmul(Lam_next, F)), g_cov)
    v_bar = _sum_terms(matvec(KT, mu), None if gl is None else -gl * z)
    S_bar = mask2 * _sum_terms(
        None if gl is None else 0.5 * gl2 * (_outer(z, z) - Sinv),
        -symmetrize(_outer(matvec(KT, mu), z)), matmul(KT, matmul(Gamma, K)))

    def totals(name):
        """The sum of per-step terms over the series, and over the steps unless field ``name``
        varies in time (its gradient is then per step)."""
        axes = 0 if name in model.time_varying else (0, 1)
        return lambda x: jnp.sum(x, axis=axes)

    total = totals("transition_matrix")
    gF = total(_outer(lam_next, mean) + 2.0 * matmul(Lam_next, matmul(F, cov)))
    total = totals("observation_matrix")
    gH = total(-_outer(v_bar, a) + 2.0 * matmul(S_bar, HoP) + _outer(z, matvec(P, mu))
               - 2.0 * matmul(KT, matmul(Gamma, P)))
    if g_omean is not None:
        gH = gH + total(_outer(g_omean, a))
    if g_ocov is not None:
        gH = gH + 2.0 * total(matmul(g_ocov, matmul(H, P)))
    total = totals("observation_cov")
    gR = total(S_bar)
    if g_ocov is not None:
        gR = gR + total(g_ocov)
    total = totals("observation_offset")
    gd = -total(v_bar)
    if g_omean is not None:
        gd = gd + total(g_omean)
    grads = dict(transition_matrix=gF,
                 transition_cov=symmetrize(totals("transition_cov")(Lam_next)),
                 observation_matrix=gH, observation_cov=symmetrize(gR),
                 initial_mean=jnp.sum(lam[:, 0], axis=0),
                 initial_cov=symmetrize(jnp.sum(Lam[:, 0], axis=0)),
                 transition_offset=totals("transition_offset")(lam_next), observation_offset=gd,
                 initial_diffuse_cov=jnp.zeros_like(model.initial_diffuse_cov))
    children, static = model.tree_flatten()
    model_ct = LGSSM.tree_unflatten(static, [
        jnp.asarray(grads[k], leaf.dtype).reshape(jnp.shape(leaf))
        for k, leaf in zip(FIELD_NAMES, children)])
    return model_ct, v_bar


def log_likelihood_vjp(model: LGSSM, y, states: FilterStates, cotangent):
    """Gradient of :math:`\\sum_b w_b \\ell_b` (``w`` = ``cotangent`` ``(B,)``) with respect to
    ``model`` (no batch axes; per-step gradients of time-varying fields) and ``y``
    ``(B, T, m)`` (NaN = missing), from the
    filter's ``states``: ``predicted_mean`` ``(B, T, n)``, ``predicted_cov`` ``(B, T, n, n)``,
    ``mean``, ``cov`` (filtered, same shapes). Returns ``(model_cotangent, y_cotangent)``, an
    :class:`LGSSM` of gradients (zero for ``initial_diffuse_cov``) and ``(B, T, m)``: the
    Koopman-Shephard score of the module docstring, :func:`filter_vjp` with the cotangent on the
    log-likelihood terms only (:math:`c_t = h_t`, :math:`W_t = \\tfrac12 (h_t h_t^T - H^T
    S_t^{-1} H)`, so :math:`\\lambda_t = r_{t-1}`, :math:`\\Lambda_t = \\tfrac12 (r_{t-1}
    r_{t-1}^T - N_{t-1})`)."""
    w = jnp.asarray(cotangent, y.dtype)
    terms = jnp.broadcast_to(w[:, None], y.shape[:2])
    return filter_vjp(model, y, states, FilterStates(log_likelihood_terms=terms))


def _rts_elements(F, Q, b, mean, cov):
    """Rauch-Tung-Striebel elements of the steps ``t < T - 1`` from the filtered moments
    ``mean`` ``(B, T - 1, n)``, ``cov`` ``(B, T - 1, n, n)``: :math:`E_t = P_{t|t} F^T
    (P^-_{t+1})^{-1}` (Cholesky factor of the prediction, shifted by :math:`16 \\epsilon` of its
    scale as in :func:`probssm.kalman._linalg.chol_psd`), :math:`g_t = m_t - E_t a_{t+1}`,
    :math:`L_t = P_{t|t} - E_t F P_{t|t}`."""
    FP = matmul(F, cov)
    P_next = matmul(FP, F.mT) + Q
    E = cho_solve_entries(cholesky_entries(psd_shifted(P_next)), FP).mT
    return E, mean - matvec(E, matvec(F, mean) + b), symmetrize(cov - matmul(E, FP))


def _rts_adjoint(model: LGSSM, states: SmootherStates, cotangents: SmootherStates):
    """Cotangents of the filtered moments and gradients in :math:`F, Q, b` from those of the
    smoothed moments, through the Rauch-Tung-Striebel pass :math:`s_t = E_t s_{t+1} + g_t`,
    :math:`S_t = E_t S_{t+1} E_t^T + L_t`, lag-one :math:`S_{t+1} E_t^T` (from the last filtered
    state). Its adjoints run forward in time, :math:`\\sigma_{t+1} = E_t^T \\sigma_t + \\bar
    s_{t+1}`, :math:`\\Sigma_{t+1} = E_t^T \\Sigma_t E_t + \\bar S_{t+1} + \\mathrm{sym}(\\bar
    C_t E_t)` from :math:`(\\bar s_0, \\bar S_0)`: the same element algebra, scanned on reversed
    time. Then :math:`\\bar g_t = \\sigma_t`, :math:`\\bar L_t = \\Sigma_t`,
    :math:`\\bar E_t = \\sigma_t s_{t+1}^T + 2 \\Sigma_t E_t S_{t+1} + \\bar C_t^T S_{t+1}`,
    and reverse-mode autodiff of :func:`_rts_elements` (no scan) gives the rest."""
    # The smoother uses the transitions of steps 0 .. T-2 (F_{T-1} only predicts past the data).
    F, Q, b = (getattr(model, k)[:-1] if k in model.time_varying else getattr(model, k)
               for k in ("transition_matrix", "transition_cov", "transition_offset"))
    mean, cov = states.filtered.mean, states.filtered.cov
    s_mean, s_cov = states.smoothed_mean, states.smoothed_cov

    def cotangent(key, symmetric=False):
        value = getattr(cotangents, key)
        value = (jnp.zeros_like(getattr(states, key)) if value is None
                 else jnp.asarray(value, mean.dtype))
        return symmetrize(value) if symmetric else value

    g_mean, g_cov, g_lag = (cotangent("smoothed_mean"), cotangent("smoothed_cov", True),
                            cotangent("lag_one_cov"))
    (E, _, _), pullback = jax.vjp(_rts_elements, F, Q, b, mean[:, :-1], cov[:, :-1])
    first = jnp.zeros_like(cov[:, :1])  # the initial adjoints enter as a constant map (E = 0)
    forward = (jnp.concatenate([first, E.mT], axis=1), g_mean,
               g_cov + jnp.concatenate([first, symmetrize(matmul(g_lag, E))], axis=1))
    reverse = tuple(jnp.flip(x, axis=1) for x in forward)
    _, sigma, Sigma = (jnp.flip(x, axis=1) for x in _suffix_compositions(reverse, _RTS))
    s_next, S_next = s_mean[:, 1:], s_cov[:, 1:]
    E_bar = (_outer(sigma[:, :-1], s_next) + 2.0 * matmul(Sigma[:, :-1], matmul(E, S_next))
             + matmul(g_lag.mT, S_next))
    gF, gQ, gb, g_filtered_mean, g_filtered_cov = pullback((E_bar, sigma[:, :-1], Sigma[:, :-1]))
    g_filtered_mean = jnp.concatenate([g_filtered_mean, sigma[:, -1:]], axis=1)
    g_filtered_cov = jnp.concatenate([g_filtered_cov, Sigma[:, -1:]], axis=1)

    def every_step(g, name):  # a time-varying field's gradient: zero at the last step
        if name not in model.time_varying:
            return g
        return jnp.concatenate([g, jnp.zeros_like(g[:1])], axis=0)

    return ((every_step(gF, "transition_matrix"), every_step(gQ, "transition_cov"),
             every_step(gb, "transition_offset")), g_filtered_mean, g_filtered_cov)


def smoother_vjp(model: LGSSM, y, states: SmootherStates, cotangents: SmootherStates):
    """Reverse mode of the smoother: as :func:`filter_vjp`, with ``states`` and ``cotangents``
    :class:`~.states.SmootherStates` (``smoothed_mean`` ``(B, T, n)``, ``smoothed_cov``
    ``(B, T, n, n)``, ``lag_one_cov`` ``(B, T - 1, n, n)`` beside the filter's fields in
    ``filtered``). The smoothing pass's adjoint
    (:func:`_rts_adjoint`) adds cotangents to the filtered moments and gradients in
    :math:`F, Q, b`; :func:`filter_vjp` does the rest."""
    (gF, gQ, gb), g_mean, g_cov = _rts_adjoint(model, states, cotangents)
    filtered = cotangents.filtered
    filter_cts = filtered._replace(mean=_sum_terms(filtered.mean, g_mean),
                                   cov=_sum_terms(filtered.cov, g_cov))
    g_model, g_y = filter_vjp(model, y, states.filtered, filter_cts)
    children, static = g_model.tree_flatten()
    extra = dict(transition_matrix=gF, transition_cov=symmetrize(gQ), transition_offset=gb)
    children = [c + extra[k].astype(c.dtype) if k in extra else c
                for k, c in zip(FIELD_NAMES, children)]
    return LGSSM.tree_unflatten(static, children), g_y
