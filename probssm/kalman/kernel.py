"""Fused, work-efficient Kalman filter kernel (Pallas: Triton on GPU, ``interpret=True`` on CPU).

The series is cut into chunks of ``L`` steps; every chunk of every series is one *lane*, and a
program handles a block of lanes (the grid maps batches and chunks alike).

1. **Chunk summaries** (kernel): each lane runs the exact sequential filter through its chunk,
   with the state mean kept as an affine function :math:`A x + b` of the unknown state
   :math:`x` entering the chunk. At the end :math:`(A, b, C)` give
   :math:`p(x_{end} \\mid x_{enter}, y_{chunk}) = N(A x_{enter} + b, C)` and the accumulated
   :math:`(\\eta, J)` the likelihood :math:`p(y_{chunk} \\mid x_{enter}) \\propto
   N_I(x_{enter}; \\eta, J)`: the filtering element of Särkkä & García-Fernández (2021) for the
   whole chunk, built with scalar (univariate) updates only, no matrix inverse. The first chunk
   starts from the prior instead (``A = 0``).
2. **Chunk scan** (XLA): the ``T / L`` chunk elements of each series are combined by a
   Hillis-Steele scan (:func:`chunk_scan`) with the square-root combination of :mod:`.parallel`,
   giving the filtered state at the end of every chunk.
3. **Fix-up** (kernel): each lane reruns the sequential filter through its chunk from its entering
   state and writes every step's filtered mean, covariance and log-likelihood term once.

Work is :math:`O(T n^3)` in the kernels, like the sequential filter, plus
:math:`O((T/L) \\log(T/L)\\, n^3)` in the chunk scan; the depth is :math:`O(L + \\log(T/L))`.
Each step's observations are decorrelated inside the kernels (:math:`R_t = L D L^T` of the
observed entries, as in :mod:`.sequential`), so every update is a scalar one and a NaN entry,
in a whole or a partly missing row, is skipped.

Supported (otherwise :func:`probssm.kalman.filter` uses ``"parallel"`` with the same results):
time-invariant model without batch axes, ``n <= 8``, ``m <= 8``, float32/float64 (all static
conditions, :func:`supported`), and a proper prior (a value, :func:`runtime_supported`).
Gradients are computed by recomputation through the ``"parallel"`` method (``custom_vjp``),
which gives the same function.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from ._linalg import chol_psd, symmetrize
from .model import LGSSM
from .parallel import _combine_filter

_LOG_2PI = math.log(2.0 * math.pi)
MAX_STATE_DIM = 8
MAX_OBS_DIM = 8
DEFAULT_CHUNK = 128
DEFAULT_BLOCK = 32


def supported(model: LGSSM, y) -> bool:
    """Static (shape and dtype) conditions for the kernel."""
    return (
        not model.time_varying
        and model.batch_shape == ()
        and 1 <= model.state_dim <= MAX_STATE_DIM
        and 1 <= model.observation_dim <= MAX_OBS_DIM
        and jnp.dtype(y.dtype) in (jnp.dtype(jnp.float32), jnp.dtype(jnp.float64))
    )


def runtime_supported(model: LGSSM, y=None):
    """Value condition (traced): a proper prior (``initial_diffuse_cov == 0``). ``y`` is not
    needed (partly missing rows are decorrelated step by step inside the kernels); it is accepted
    for compatibility."""
    del y
    return jnp.all(model.initial_diffuse_cov == 0)


# -- parameters as one flat vector, read as scalars inside the kernels --------------------------
def _layout(n, m):
    sizes = dict(F=n * n, Q=n * n, H=m * n, R=m * m, u=n, tiny=1)
    offsets, pos = {}, 0
    for k, s in sizes.items():
        offsets[k] = pos
        pos += s
    return offsets, pos


def _pack(model: LGSSM):
    """The step parameters as one flat vector (read as scalars inside the kernels)."""
    R = model.observation_cov
    m = R.shape[-1]
    tiny = 100 * m * jnp.finfo(R.dtype).eps  # times the scale of R, as in ``_linalg.ldl``
    return jnp.concatenate([
        model.transition_matrix.ravel(), model.transition_cov.ravel(),
        model.observation_matrix.ravel(), R.ravel(), model.transition_offset,
        jnp.full((1,), tiny, R.dtype),
    ])


def _read(p_ref, n, m):
    off, _ = _layout(n, m)
    F = [[p_ref[off["F"] + i * n + j] for j in range(n)] for i in range(n)]
    Q = [[p_ref[off["Q"] + i * n + j] for j in range(n)] for i in range(n)]
    H = [[p_ref[off["H"] + i * n + j] for j in range(n)] for i in range(m)]
    R = [[p_ref[off["R"] + i * m + j] for j in range(m)] for i in range(m)]
    u = [p_ref[off["u"] + i] for i in range(n)]
    return F, Q, H, R, u, p_ref[off["tiny"]]


def _observation_rows(y, H, R, tiny, n, m):
    """Decorrelate one step's observations, as :func:`probssm.kalman.sequential._decorrelate`.

    ``y``: ``m`` lane vectors (``y_t - d``, NaN where missing). With the missing entries
    decoupled (zero cross-covariance, unit variance), :math:`R_t = L D L^T` (unit lower ``L``,
    computed here entry by entry, a pivot below ``tiny`` times the largest diagonal entry giving
    ``D_j = 0``) and the rows :math:`y^*_t = L^{-1} y_t`, :math:`H^*_t = L^{-1} H` are returned as
    ``(observed, y*_i, h*_i, D_i)``; a diagonal ``R`` gives ``L = I``.
    """
    obs = [~jnp.isnan(v) for v in y]
    base = [jnp.where(o, v, 0.0) for o, v in zip(obs, y)]

    def r(i, j):
        if i == j:
            return jnp.where(obs[i], R[i][i], 1.0)
        return jnp.where(obs[i] & obs[j], R[i][j], 0.0)

    scale = r(0, 0)
    for i in range(1, m):
        scale = jnp.maximum(scale, r(i, i))
    threshold = tiny * jnp.where(scale > 0, scale, 1.0)
    L = [[None] * m for _ in range(m)]
    D = [None] * m
    for j in range(m):
        dj = r(j, j)
        for k in range(j):
            dj = dj - L[j][k] * L[j][k] * D[k]
        positive = dj > threshold
        inverse = jnp.where(positive, 1.0 / jnp.where(positive, dj, 1.0), 0.0)
        for i in range(j + 1, m):
            s = r(i, j)
            for k in range(j):
                s = s - L[i][k] * L[j][k] * D[k]
            L[i][j] = s * inverse
        D[j] = jnp.where(positive, dj, 0.0)
    y_star, h_star = [], []
    for i in range(m):
        yi = base[i]
        hi = [jnp.where(obs[i], H[i][l], 0.0) for l in range(n)]
        for k in range(i):
            yi = yi - L[i][k] * y_star[k]
            hi = [hi[l] - L[i][k] * h_star[k][l] for l in range(n)]
        y_star.append(yi)
        h_star.append(hi)
    return [(obs[i], y_star[i], h_star[i], D[i]) for i in range(m)]


# -- unrolled small linear algebra on lists of lane vectors -------------------------------------
def _matvec(M, x):
    return [sum(M[i][k] * x[k] for k in range(len(x))) for i in range(len(M))]


def _predict_cov(F, P, Q, n):
    """F P F^T + Q (upper triangle computed, mirrored)."""
    FP = [[sum(F[i][k] * P[k][j] for k in range(n)) for j in range(n)] for i in range(n)]
    out = [[None] * n for _ in range(n)]
    for i in range(n):
        for j in range(i, n):
            out[i][j] = sum(FP[i][k] * F[j][k] for k in range(n)) + Q[i][j]
            out[j][i] = out[i][j]
    return out


def _lanes(block, lanes_total, chunks, chunk, T):
    """Lane indices of this program (padding lanes repeat the last lane, so their masked-off
    accesses coincide with a real lane's) and their series / first-step coordinates."""
    lane = jnp.minimum(pl.program_id(0) * block + jnp.arange(block), lanes_total - 1)
    series = lane // chunks
    start = (lane % chunks) * chunk
    return lane, series, start


def _load_y(y_ref, series, t, valid, i, T, dtype):
    row = series * T + jnp.minimum(t, T - 1)
    value = y_ref[row, i]
    return jnp.where(valid, value, jnp.array(jnp.nan, dtype))


def _summary_kernel(n, m, T, chunk, chunks, lanes_total, block, dtype):
    """Pass 1: the filtering element of every chunk."""

    def kernel(p_ref, prior_ref, y_ref, A_ref, b_ref, C_ref, eta_ref, J_ref):
        F, Q, H, R, u, tiny = _read(p_ref, n, m)
        m0 = [prior_ref[i] for i in range(n)]
        P0 = [[prior_ref[n + i * n + j] for j in range(n)] for i in range(n)]
        lane, series, start = _lanes(block, lanes_total, chunks, chunk, T)
        first = start == 0
        zero = jnp.zeros(block, dtype)
        A = [[jnp.where(first, zero, F[i][j]) for j in range(n)] for i in range(n)]
        b = [jnp.where(first, m0[i], u[i] + zero) for i in range(n)]
        C = [[jnp.where(first, P0[i][j], Q[i][j] + zero) for j in range(n)] for i in range(n)]
        eta = [zero] * n
        J = [[zero] * n for _ in range(n)]

        def step(k, state):
            A, b, C, eta, J = state
            t = start + k
            valid = t < T
            ys = [_load_y(y_ref, series, t, valid, i, T, dtype) for i in range(m)]
            for obs, y, h, r in _observation_rows(ys, H, R, tiny, n, m):
                hA = [sum(h[l] * A[l][j] for l in range(n)) for j in range(n)]
                Ch = [sum(C[l][j] * h[j] for j in range(n)) for l in range(n)]
                f = sum(h[l] * Ch[l] for l in range(n)) + r
                f = jnp.where(obs, f, 1.0)
                v = jnp.where(obs, y - sum(h[l] * b[l] for l in range(n)), 0.0)
                w = jnp.where(obs, 1.0 / f, 0.0)
                K = [Ch[l] * w for l in range(n)]
                A = [[A[l][j] - K[l] * hA[j] for j in range(n)] for l in range(n)]
                b = [b[l] + K[l] * v for l in range(n)]
                C = _sym([[C[l][j] - K[l] * Ch[j] for j in range(n)] for l in range(n)], n)
                eta = [eta[l] + hA[l] * v * w for l in range(n)]
                J = _sym([[J[l][j] + hA[l] * hA[j] * w for j in range(n)] for l in range(n)], n)
            go = (k + 1 < chunk) & (t + 1 < T)
            A_next = [[sum(F[i][l] * A[l][j] for l in range(n)) for j in range(n)] for i in range(n)]
            b_next = [x + u[i] for i, x in enumerate(_matvec(F, b))]
            C_next = _predict_cov(F, C, Q, n)
            A = [[jnp.where(go, A_next[i][j], A[i][j]) for j in range(n)] for i in range(n)]
            b = [jnp.where(go, b_next[i], b[i]) for i in range(n)]
            C = [[jnp.where(go, C_next[i][j], C[i][j]) for j in range(n)] for i in range(n)]
            return A, b, C, eta, J

        A, b, C, eta, J = jax.lax.fori_loop(0, chunk, step, (A, b, C, eta, J))
        for i in range(n):
            b_ref[lane, i] = b[i]
            eta_ref[lane, i] = eta[i]
            for j in range(n):
                A_ref[lane, i, j] = A[i][j]
                C_ref[lane, i, j] = C[i][j]
                J_ref[lane, i, j] = J[i][j]

    return kernel


def _sym(M, n):
    return [[M[min(i, j)][max(i, j)] for j in range(n)] for i in range(n)]


def _fixup_kernel(n, m, T, chunk, chunks, lanes_total, block, dtype, write_states):
    """Pass 3: the sequential filter through every chunk from its entering prediction."""

    def kernel(p_ref, enter_mean_ref, enter_cov_ref, y_ref, *out_refs):
        F, Q, H, R, u, tiny = _read(p_ref, n, m)
        lane, series, start = _lanes(block, lanes_total, chunks, chunk, T)
        a = [enter_mean_ref[lane, i] for i in range(n)]
        P = [[enter_cov_ref[lane, i, j] for j in range(n)] for i in range(n)]
        total = jnp.zeros(block, dtype)

        def step(k, state):
            a, P, total = state
            t = start + k
            valid = t < T
            loglik = jnp.zeros(block, dtype)
            ys = [_load_y(y_ref, series, t, valid, i, T, dtype) for i in range(m)]
            for obs, y, h, r in _observation_rows(ys, H, R, tiny, n, m):
                Ph = [sum(P[l][j] * h[j] for j in range(n)) for l in range(n)]
                f = sum(h[l] * Ph[l] for l in range(n)) + r
                f = jnp.where(obs, f, 1.0)
                v = jnp.where(obs, y - sum(h[l] * a[l] for l in range(n)), 0.0)
                w = jnp.where(obs, 1.0 / f, 0.0)
                K = [Ph[l] * w for l in range(n)]
                a = [a[l] + K[l] * v for l in range(n)]
                P = _sym([[P[l][j] - K[l] * Ph[j] for j in range(n)] for l in range(n)], n)
                loglik = loglik + jnp.where(obs, -0.5 * (_LOG_2PI + jnp.log(f) + v * v * w), 0.0)
            if write_states:
                mean_ref, cov_ref, ll_ref = out_refs
                row = series * T + jnp.minimum(t, T - 1)
                for i in range(n):
                    pl_store(mean_ref, (row, i), a[i], valid)
                    for j in range(n):
                        pl_store(cov_ref, (row, i, j), P[i][j], valid)
                pl_store(ll_ref, (row,), loglik, valid)
            total = total + jnp.where(valid, loglik, 0.0)
            go = (k + 1 < chunk) & (t + 1 < T)
            a_next = [x + u[i] for i, x in enumerate(_matvec(F, a))]
            P_next = _predict_cov(F, P, Q, n)
            a = [jnp.where(go, a_next[i], a[i]) for i in range(n)]
            P = [[jnp.where(go, P_next[i][j], P[i][j]) for j in range(n)] for i in range(n)]
            return a, P, total

        _, _, total = jax.lax.fori_loop(0, chunk, step, (a, P, total))
        if not write_states:
            (sum_ref,) = out_refs
            sum_ref[lane] = total

    return kernel


def pl_store(ref, index, value, mask):
    """Masked scatter store (works in Triton and in the interpreter)."""
    from jax.experimental.pallas import triton as plgpu

    plgpu.store(ref.at[index], value, mask=mask)


def _pallas(kernel, n_in, out_shapes, grid, interpret, num_warps):
    kwargs = {}
    if not interpret:
        from jax.experimental.pallas import triton as plgpu

        kwargs["compiler_params"] = plgpu.CompilerParams(num_warps=num_warps, num_stages=1)
    any_spec = pl.BlockSpec(memory_space=pl.ANY)
    return pl.pallas_call(
        kernel, out_shape=out_shapes, grid=grid, in_specs=[any_spec] * n_in,
        out_specs=[any_spec] * len(out_shapes), interpret=interpret, **kwargs,
    )


def _geometry(T, B, chunk, block):
    chunk = max(1, min(chunk, T))
    chunks = -(-T // chunk)
    lanes = B * chunks
    grid = (-(-lanes // block),)
    return chunk, chunks, lanes, grid


# -- chunk-level scan ---------------------------------------------------------------------------
def chunk_scan(A, b, C, eta, J, chunks):
    """Inclusive prefix combination of the chunk elements of every series.

    ``A`` ``(B * chunks, n, n)``, ``b`` ``(B * chunks, n)``, ``C``, ``J`` ``(B * chunks, n, n)``,
    ``eta`` ``(B * chunks, n)``: the filtering elements of consecutive chunks, series after series
    (the first chunk of a series has ``A = 0``, so its prefix is a filtered state). Returns the
    filtered mean ``(B * chunks, n)`` and a covariance factor ``U`` ``(B * chunks, n, n)``
    (:math:`P = U U^T`) at the end of every chunk.

    A Hillis-Steele scan: level ``d`` combines element ``c - 2^d`` into element ``c`` (the
    identity :math:`(I, 0, 0, 0, 0)` where ``c < 2^d`` within its series) with the square-root
    combination of :func:`probssm.kalman.parallel._combine_filter` (:math:`C = U U^T`, Yaghoobi
    et al. 2025): :math:`O(N \\log N)` combinations in :math:`\\lceil \\log_2
    \\mathrm{chunks} \\rceil` levels of a ``fori_loop``, so the combination is traced and
    compiled once, whatever the number of chunks (``lax.associative_scan`` unrolls about
    :math:`2 \\log_2 \\mathrm{chunks}` copies of it).
    """
    N, n = b.shape
    x = (A, b, chol_psd(C), eta, symmetrize(J))
    eye = jnp.eye(n, dtype=b.dtype)
    identity = (eye, jnp.zeros(n, b.dtype), jnp.zeros_like(eye), jnp.zeros(n, b.dtype),
                jnp.zeros_like(eye))
    position = jnp.arange(N) % chunks
    levels = math.ceil(math.log2(chunks)) if chunks > 1 else 0

    def level(d, x):
        shift = jnp.left_shift(1, d)
        source = jnp.maximum(jnp.arange(N) - shift, 0)
        first = position < shift

        def earlier_of(a, e):
            mask = first.reshape((N,) + (1,) * (a.ndim - 1))
            return jnp.where(mask, e, jnp.take(a, source, axis=0))

        earlier = jax.tree_util.tree_map(earlier_of, x, identity)
        return _combine_filter(earlier, x)

    _, mean, U, _, _ = jax.lax.fori_loop(0, levels, level, x)
    return mean, U


@partial(jax.jit, static_argnames=("write_states", "chunk", "block", "interpret"))
@jax.default_matmul_precision("highest")  # no TF32 in the chunk scan (see inference.py)
def filter_batch(model: LGSSM, y, *, write_states=True, chunk=DEFAULT_CHUNK, block=DEFAULT_BLOCK,
                 interpret=None):
    """Kernel filter of ``y`` ``(B, T, m)`` under one time-invariant model.

    Returns ``mean`` ``(B, T, n)``, ``cov`` ``(B, T, n, n)`` and ``log_likelihood_terms``
    ``(B, T)`` when ``write_states``; otherwise only ``log_likelihood`` ``(B,)``.
    """
    if interpret is None:
        interpret = jax.default_backend() == "cpu"
    B, T, m = y.shape
    n = model.state_dim
    dtype = y.dtype
    chunk, chunks, lanes, grid = _geometry(T, B, chunk, block)
    params = _pack(model)
    y_flat = (y - model.observation_offset).reshape(B * T, m)  # NaN stays NaN
    prior = jnp.concatenate([model.initial_mean, model.initial_cov.ravel()])
    num_warps = max(1, block // 32)

    summary = _pallas(
        _summary_kernel(n, m, T, chunk, chunks, lanes, block, dtype), 3,
        [jax.ShapeDtypeStruct(s, dtype) for s in
         ((lanes, n, n), (lanes, n), (lanes, n, n), (lanes, n), (lanes, n, n))],
        grid, interpret, num_warps,
    )(params, prior, y_flat)
    mean_end, U_end = chunk_scan(*summary, chunks)
    mean_end = mean_end.reshape(B, chunks, n)
    cov_end = symmetrize(U_end @ jnp.swapaxes(U_end, -1, -2)).reshape(B, chunks, n, n)
    F, Q, u = model.transition_matrix, model.transition_cov, model.transition_offset
    pred_mean = jnp.einsum("ij,bcj->bci", F, mean_end[:, :-1]) + u
    pred_cov = symmetrize(jnp.einsum("ij,bcjk,lk->bcil", F, cov_end[:, :-1], F) + Q)
    enter_mean = jnp.concatenate([jnp.broadcast_to(model.initial_mean, (B, 1, n)), pred_mean], 1)
    enter_cov = jnp.concatenate([jnp.broadcast_to(model.initial_cov, (B, 1, n, n)), pred_cov], 1)
    enter = (enter_mean.reshape(lanes, n), enter_cov.reshape(lanes, n, n))

    fixup = _fixup_kernel(n, m, T, chunk, chunks, lanes, block, dtype, write_states)
    if write_states:
        outs = [jax.ShapeDtypeStruct((B * T, n), dtype), jax.ShapeDtypeStruct((B * T, n, n), dtype),
                jax.ShapeDtypeStruct((B * T,), dtype)]
        mean, cov, terms = _pallas(fixup, 4, outs, grid, interpret, num_warps)(params, *enter, y_flat)
        return dict(mean=mean.reshape(B, T, n), cov=cov.reshape(B, T, n, n),
                    log_likelihood_terms=terms.reshape(B, T))
    (sums,) = _pallas(fixup, 4, [jax.ShapeDtypeStruct((lanes,), dtype)], grid, interpret,
                      num_warps)(params, *enter, y_flat)
    return dict(log_likelihood=sums.reshape(B, chunks).sum(axis=1))


def _reference_states(model: LGSSM, y):
    """The same outputs through the associative scan (used for gradients and as the fallback)."""
    from .parallel import filter_single

    out = jax.vmap(lambda y_: filter_single(model, y_))(y)
    return dict(mean=out["mean"], cov=out["cov"], log_likelihood_terms=out["log_likelihood_terms"])


@jax.custom_vjp
def filter_states(model: LGSSM, y):
    """Differentiable kernel filter: ``mean`` ``(B, T, n)``, ``cov`` ``(B, T, n, n)``,
    ``log_likelihood_terms`` ``(B, T)`` of ``y`` ``(B, T, m)``. The gradient is that of the
    ``"parallel"`` method (the same function), computed by recomputation."""
    return filter_batch(model, y)


def _states_fwd(model, y):
    return filter_batch(model, y), (model, y)


def _states_bwd(residuals, cotangents):
    model, y = residuals
    _, vjp = jax.vjp(_reference_states, model, y)
    return vjp(cotangents)


filter_states.defvjp(_states_fwd, _states_bwd)


@jax.custom_vjp
def log_likelihood_sums(model: LGSSM, y):
    """Differentiable kernel log-likelihood of each series of ``y`` ``(B, T, m)``: ``(B,)``.
    Writes no per-step states (reads ``y`` and a few chunk summaries only)."""
    return filter_batch(model, y, write_states=False)["log_likelihood"]


def _loglik_fwd(model, y):
    return log_likelihood_sums(model, y), (model, y)


def _loglik_bwd(residuals, cotangent):
    model, y = residuals
    _, vjp = jax.vjp(lambda m_, y_: _reference_states(m_, y_)["log_likelihood_terms"].sum(-1), model, y)
    return vjp(cotangent)


log_likelihood_sums.defvjp(_loglik_fwd, _loglik_bwd)
