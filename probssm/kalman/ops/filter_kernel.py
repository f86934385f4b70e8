"""Fused, work-efficient Kalman filter and smoother kernels (Pallas: Triton on GPU,
``interpret=True`` on CPU).

The series is cut into chunks of ``L`` steps; every chunk of every series is one *lane*, and a
program handles a block of lanes (the grid maps batches and chunks alike). Arrays between the
passes are lane-minor (``(L, rows, lanes)``; :mod:`.chunk_scan`), so every load and store of a
warp is contiguous; XLA transposes the outputs to ``(B, T, ...)`` once at the end. The
observations are read in their own layout (:func:`_observations`).

Filter:

1. **Chunk summaries** (kernel): each lane runs the exact sequential filter through its chunk,
   with the state mean kept as an affine function :math:`A x + b` of the unknown state
   :math:`x` entering the chunk. At the end :math:`(A, b, C)` give
   :math:`p(x_{end} \\mid x_{enter}, y_{chunk}) = N(A x_{enter} + b, C)` and the accumulated
   :math:`(\\eta, J)` the likelihood :math:`p(y_{chunk} \\mid x_{enter}) \\propto
   N_I(x_{enter}; \\eta, J)`: the filtering element of Särkkä & García-Fernández (2021) for the
   whole chunk, built with scalar (univariate) updates only, no matrix inverse. The first chunk
   starts from the prior instead (``A = 0``).
2. **Chunk scan** (two kernels, :func:`probssm.kalman.ops.chunk_scan.chunk_scan`): the filtered
   state at the end of every chunk, through a hierarchy of sequential folds over groups of
   ``G`` elements (depth about :math:`2 G \\log_G(T/L)` element operations); with ``top``, a
   third kernel scans the first level of at most ``top`` elements a series by recursive
   doubling.
3. **Fix-up** (kernel): each lane reruns the sequential filter through its chunk from its entering
   prediction and writes every step's predicted and filtered moments, observation moments and
   log-likelihood term once (without predictions, :func:`filter_batch`, only the filtered
   moments and log-likelihood terms; or only the chunk's log-likelihood).

Smoother (:func:`smooth_batch`): after the filter, a kernel composes each chunk's backward
element :math:`x_{start} \\mid x_{next\\ chunk's\\ start}, y \\sim N(E x + g, L)` from the
Rauch-Tung-Striebel elements of its steps (:func:`probssm.kalman.ops.lane_algebra.rts_element`,
computed from the filtered moments); a reverse chunk scan of these affine elements gives the
smoothed state entering every chunk from the right, and a last kernel runs the RTS recursion
backward through each chunk from it, writing the smoothed means, covariances and lag-one
cross-covariances once.

Work is :math:`O(T n^3)`, like the sequential filter; the depth is :math:`O(L + G \\log_G(T/L))`.
Each step's observations are decorrelated inside the kernels (:math:`R_t = L D L^T` of the
observed entries, as in :mod:`probssm.kalman.sequential`), so every update is a scalar one and a NaN entry,
in a whole or a partly missing row, is skipped.

Supported (otherwise :func:`probssm.kalman.filter` uses ``"parallel"`` with the same results):
time-invariant model without batch axes, ``n <= 8``, ``m <= 8``, float32/float64 (all static
conditions, :func:`supported`), and a proper prior (a value, :func:`runtime_supported`).
Gradients (``custom_vjp``): the reverse mode of the filter and the smoother (and so the exact
score of the log-likelihood) computed from the kernels' own outputs by backward scans of small
matrix products (:mod:`.adjoint`: quick to compile, no recomputation).

Compile time: most of Triton's compile time went to its coalescing pass, which walks the whole
def-use slice of the kernel once for every load and store (and every ``ref[...] = v`` is a load
and a store), i.e. (memory operations) x (kernel size) or worse. Every field, element or step's
rows therefore move as one tile (:func:`probssm.kalman.ops.chunk_scan.load_rows` and friends;
arrays between kernels have their rows padded to a power of two), and loop bodies are kept small
(the chunk scan's combination conditions on the later element's likelihood one scalar factor at
a time, in an inner loop). XLA compiles the kernels of a program one after another (its IR
emission runs each kernel's Triton pipeline and LLVM's NVPTX back end in turn), so a program's
compile time is the sum over its kernels; at ``n = 8`` most of it is LLVM's, and it shrinks
with the values live across loop iterations: symmetric fields are carried as upper triangles
(:func:`probssm.kalman.ops.lane_algebra.symmetric`) and above
:data:`probssm.kalman.ops.lane_algebra.LOOP_ROWS` a step's observation rows are one loop body
(:func:`_for_each_row`).
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl

from . import lane_algebra as ka
from . import chunk_scan as ks
from . import adjoint
from .._linalg import matmul, matvec, symmetrize, unfolded
from ..model import LGSSM

_LOG_2PI = math.log(2.0 * math.pi)
MAX_STATE_DIM = 8
MAX_OBS_DIM = 8
DEFAULT_BLOCK = 32
# Chunk length by series length (measured on an H100, n = 4, chunk scan groups of 4): short
# chunks give more lanes and a shorter sequential pass through each chunk, long ones fewer chunk
# elements for the chunk scan. T = 1e6: 64 steps filter in 0.61 ms, 32 in 0.69, 128 in 0.98;
# 1024 x T = 1e3: 16 and 32 steps alike.
SHORT_CHUNK, LONG_CHUNK, LONG_SERIES = 32, 64, 32 * 4096


def default_chunk(T: int) -> int:
    """Chunk length for series of ``T`` steps: 32, or 64 above :math:`2^{17}` steps."""
    return LONG_CHUNK if T > LONG_SERIES else SHORT_CHUNK


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
    sizes = dict(F=n * n, Q=n * n, H=m * n, R=m * m, u=n, d=m, m0=n, P0=n * n, tiny=1)
    offsets, pos = {}, 0
    for k, s in sizes.items():
        offsets[k] = pos
        pos += s
    return offsets, pos


def _pack(model: LGSSM):
    """The model as one flat vector (read as scalars inside the kernels)."""
    R = model.observation_cov
    m = R.shape[-1]
    tiny = 100 * m * jnp.finfo(R.dtype).eps  # times the scale of R, as in ``_linalg.ldl``
    return jnp.concatenate([
        model.transition_matrix.ravel(), model.transition_cov.ravel(),
        model.observation_matrix.ravel(), R.ravel(), model.transition_offset,
        model.observation_offset, model.initial_mean, model.initial_cov.ravel(),
        jnp.full((1,), tiny, R.dtype),
    ])


def _read(p_ref, n, m):
    """The parameters as scalars: a dict of ``F, Q, H, R, u, d, m0, P0`` (lists) and ``tiny``."""
    off, _ = _layout(n, m)

    def mat(k, r, c):
        return [[p_ref[off[k] + i * c + j] for j in range(c)] for i in range(r)]

    return dict(F=mat("F", n, n), Q=mat("Q", n, n), H=mat("H", m, n), R=mat("R", m, m),
                u=[p_ref[off["u"] + i] for i in range(n)], d=[p_ref[off["d"] + i] for i in range(m)],
                m0=[p_ref[off["m0"] + i] for i in range(n)], P0=mat("P0", n, n),
                tiny=p_ref[off["tiny"]])


def _observation_rows(y, H, R, tiny, n, m):
    """Decorrelate one step's observations, as :func:`probssm.kalman.sequential._decorrelate`.

    ``y``: ``m`` lane vectors (``y_t - d``, NaN where missing). With the missing entries
    decoupled (zero cross-covariance, unit variance), :math:`R_t = L D L^T` (unit lower ``L``,
    computed here entry by entry, a pivot below ``tiny`` times the largest diagonal entry giving
    ``D_j = 0``) and the rows :math:`y^*_t = L^{-1} y_t`, :math:`H^*_t = L^{-1} H` are returned as
    ``(observed, y*_i, h*_i, D_i)``; a diagonal ``R`` gives ``L = I``.
    """
    obs = [lax.eq(v, v) for v in y]  # not NaN
    base = [ka.where(o, v, 0.0) for o, v in zip(obs, y)]

    def r(i, j):
        if i == j:
            return ka.where(obs[i], R[i][i], 1.0)
        return ka.where(lax.bitwise_and(obs[i], obs[j]), R[i][j], 0.0)

    scale = r(0, 0)
    for i in range(1, m):
        scale = lax.max(scale, r(i, i))
    threshold = lax.mul(tiny, ka.where(lax.gt(scale, ka.const(0.0, scale)), scale, 1.0))
    L = [[None] * m for _ in range(m)]
    D = [None] * m
    for j in range(m):
        dj = r(j, j)
        for k in range(j):
            dj = lax.sub(dj, lax.mul(lax.mul(L[j][k], L[j][k]), D[k]))
        positive = lax.gt(dj, threshold)
        inverse = ka.where(positive, ka.recip(ka.where(positive, dj, 1.0)), 0.0)
        for i in range(j + 1, m):
            s = r(i, j)
            for k in range(j):
                s = lax.sub(s, lax.mul(lax.mul(L[i][k], L[j][k]), D[k]))
            L[i][j] = lax.mul(s, inverse)
        D[j] = ka.where(positive, dj, 0.0)
    y_star, h_star = [], []
    for i in range(m):
        yi = base[i]
        hi = [ka.where(obs[i], H[i][l], 0.0) for l in range(n)]
        for k in range(i):
            yi = lax.sub(yi, lax.mul(L[i][k], y_star[k]))
            hi = [lax.sub(hi[l], lax.mul(L[i][k], h_star[k][l])) for l in range(n)]
        y_star.append(yi)
        h_star.append(hi)
    return [(obs[i], y_star[i], h_star[i], D[i]) for i in range(m)]


# -- one time step on lane vectors --------------------------------------------------------------
def _for_each_row(rows, update, carry, shapes):
    """``carry = update(row, carry)`` for each of a step's observation rows
    (:func:`_observation_rows`) in turn, ``carry`` a tuple of fields ``shapes``
    (:mod:`.chunk_scan` field shapes).

    Unrolled for ``n <=`` :data:`probssm.kalman.ops.lane_algebra.LOOP_ROWS`; otherwise a
    ``fori_loop`` whose body is one update, the rows turning through its carry (as in
    :func:`probssm.kalman.ops.lane_algebra.by_rows`) and symmetric fields carried as upper
    triangles: the update is traced and compiled once, not ``m`` times."""
    if shapes[0][0] <= ka.LOOP_ROWS or len(rows) == 1:
        for row in rows:
            carry = update(row, carry)
        return carry

    def body(_, state):
        queue, flat = state
        new = update(queue[0], ka.unpack(flat, shapes))
        return queue[1:] + queue[:1], ka.pack(new, shapes)

    init = ([tuple(row) for row in rows], ka.pack(carry, shapes))
    return ka.unpack(jax.lax.fori_loop(0, ka.trips(len(rows)), body, init)[1], shapes)


def _update(p, a, P, ys, n, m):
    """The scalar updates of one step from the prediction ``(a, P)``: filtered ``(a, P)`` and the
    log-likelihood term (0 where every entry is missing)."""

    def update(row, carry):
        obs, y, h, r = row
        a, P, (loglik,) = carry
        Ph = ka.matvec(P, h)
        f = ka.where(obs, lax.add(ka.dot(h, Ph), r), 1.0)
        v = ka.where(obs, lax.sub(y, ka.dot(h, a)), 0.0)
        w = ka.where(obs, ka.recip(f), 0.0)
        K = [lax.mul(x, w) for x in Ph]
        a = [lax.add(x, lax.mul(k, v)) for x, k in zip(a, K)]
        P = ka.sym([[lax.sub(P[l][j], lax.mul(K[l], Ph[j])) if j >= l else None for j in range(n)]
                    for l in range(n)])
        term = lax.add(lax.add(ka.const(_LOG_2PI, f), lax.log(f)), lax.mul(lax.mul(v, v), w))
        loglik = lax.add(loglik, ka.where(obs, lax.mul(ka.const(-0.5, f), term), 0.0))
        return a, P, [loglik]

    rows = _observation_rows(ys, p["H"], p["R"], p["tiny"], n, m)
    shapes = ((n,), ka.symmetric(n), (1,))
    a, P, (loglik,) = _for_each_row(rows, update, (a, P, [jnp.zeros_like(a[0])]), shapes)
    return a, P, loglik


def _predict(p, a, P):
    return ka.plus(ka.matvec(p["F"], a), p["u"]), ka.congruence(p["F"], P, plus=p["Q"])


def _keep(go, new, old):
    """``new`` where ``go`` else ``old``, over matching nested lists of lane vectors."""
    if isinstance(new, (list, tuple)):
        return type(new)(_keep(go, x, y) for x, y in zip(new, old))
    return ka.where(go, new, old)


def _lanes(block, chunks, chunk):
    """This program's first lane, and each lane's chunk index and first time step."""
    base = pl.program_id(0) * block
    lane = base + jnp.arange(block)
    return base, lane % chunks, (lane % chunks) * chunk


def _observations(y_ref, p, m, block, chunks, chunk, B, T):
    """``ys(k)``: step ``k``'s observations minus the offset ``d`` as ``m`` lane vectors (NaN past
    a series' end), read from ``y_ref`` ``(B T, m)`` in its own layout (row ``s T + t``).

    A lane reads its ``m`` values a step a chunk away from its neighbour's (a sector shared with
    its own next steps), which on the H100 costs the passes nothing against lane-minor rows and
    saves the transpose of ``y`` (an XLA launch). Outputs stay lane-minor: stored time-major, the fix-up's seven fields
    took 227 instead of 93 µs at ``T = 1e6`` (a warp's stores scatter over 32 rows).
    Lane arithmetic is done here, outside the loops: the interpreter knows the program id only
    there."""
    lane = pl.program_id(0) * block + jnp.arange(block, dtype=jnp.int32)
    s, start = lane // chunks, lane % chunks * chunk

    def ys(k):
        t = start + jnp.asarray(k, jnp.int32)
        valid = (s < B) & (t < T)
        rows = jnp.where(valid, s * T + t, B * T)
        values = ks.load_steps(y_ref, m, rows, valid, other=float("nan"))
        return [lax.sub(v, d) for v, d in zip(values, p["d"])]

    return ys


def _flat(M):
    return [x for row in M for x in row]


def _square(flat, n):
    return [flat[i * n:(i + 1) * n] for i in range(n)]


# -- pass 1: chunk summaries --------------------------------------------------------------------
def _summary_kernel(n, m, T, B, chunk, chunks, block, dtype):
    """The filtering element of every chunk, lane-minor rows ``A, b, C, eta, J``."""
    shapes = ks.filter_algebra(n).element_shapes

    def kernel(p_ref, y_ref, out_ref):
        p = _read(p_ref, n, m)
        F, Q, u = p["F"], p["Q"], p["u"]
        base, c, start = _lanes(block, chunks, chunk)
        observations = _observations(y_ref, p, m, block, chunks, chunk, B, T)
        first = c == 0
        zero = jnp.zeros(block, dtype)
        A = [[ka.where(first, zero, F[i][j]) for j in range(n)] for i in range(n)]
        b = [ka.where(first, p["m0"][i], u[i]) for i in range(n)]
        C = [[ka.where(first, p["P0"][i][j], Q[i][j]) for j in range(n)] for i in range(n)]
        eta = [zero] * n
        J = [[zero] * n for _ in range(n)]

        def update(row, element):
            """One scalar update of the chunk's element (module docstring)."""
            obs, y, h, r = row
            A, b, C, eta, J = element
            hA = [ka.dot(h, column) for column in ka.transpose(A)]
            Ch = ka.matvec(C, h)
            f = ka.where(obs, lax.add(ka.dot(h, Ch), r), 1.0)
            v = ka.where(obs, lax.sub(y, ka.dot(h, b)), 0.0)
            w = ka.where(obs, ka.recip(f), 0.0)
            K = [lax.mul(x, w) for x in Ch]
            A = [[lax.sub(A[l][j], lax.mul(K[l], hA[j])) for j in range(n)] for l in range(n)]
            b = [lax.add(x, lax.mul(k, v)) for x, k in zip(b, K)]
            C = ka.sym([[lax.sub(C[l][j], lax.mul(K[l], Ch[j])) if j >= l else None
                         for j in range(n)] for l in range(n)])
            vw = lax.mul(v, w)
            eta = [lax.add(x, lax.mul(a, vw)) for x, a in zip(eta, hA)]
            hAw = [lax.mul(x, w) for x in hA]
            J = ka.sym([[lax.add(J[l][j], lax.mul(hA[l], hAw[j])) if j >= l else None
                         for j in range(n)] for l in range(n)])
            return A, b, C, eta, J

        def step(k, flat):
            t = start + k
            rows = _observation_rows(observations(k), p["H"], p["R"], p["tiny"], n, m)
            A, b, C, eta, J = _for_each_row(rows, update, ka.unpack(flat, shapes), shapes)
            go = (k + 1 < chunk) & (t + 1 < T)
            b_next, C_next = _predict(p, b, C)
            moved = _keep(go, ka.pack((ka.matmul(F, A), b_next, C_next), shapes[:3]),
                          ka.pack((A, b, C), shapes[:3]))
            return moved + ka.pack((eta, J), shapes[3:])

        element = jax.lax.fori_loop(0, chunk, step, ka.pack((A, b, C, eta, J), shapes))
        ks.store_rows(out_ref, element, base, block)

    return kernel


# -- pass 3: fix-up -----------------------------------------------------------------------------
def _fixup_kernel(n, m, T, B, chunk, chunks, block, dtype, written):
    """The sequential filter through every chunk from its entering prediction: every step's
    fields ``written`` (:func:`_written`), or (``written`` empty) only the chunk's
    log-likelihood."""
    shapes = ks.filter_algebra(n).state_shapes

    def kernel(p_ref, state_ref, y_ref, *out_refs):
        p = _read(p_ref, n, m)
        base, c, start = _lanes(block, chunks, chunk)
        observations = _observations(y_ref, p, m, block, chunks, chunk, B, T)
        end_of_previous = ka.unpack(ks.load_rows(state_ref, ks.rows(shapes), base, block), shapes)
        a, P = _predict(p, *end_of_previous)
        first = c == 0
        zero = jnp.zeros(block, dtype)
        a = [ka.where(first, p["m0"][i], a[i]) for i in range(n)]
        P = [[ka.where(first, p["P0"][i][j], P[i][j]) for j in range(n)] for i in range(n)]

        def step(k, carry):
            *moments, total = carry
            a, P = ka.unpack(moments, shapes)
            t = start + k
            mean, cov, loglik = _update(p, a, P, observations(k), n, m)
            total = lax.add(total, ka.where(t < T, loglik, 0.0))
            if written:
                H = p["H"]
                y_mean = ka.plus(ka.matvec(H, a), p["d"])
                y_cov = ka.congruence(H, P, plus=p["R"])
                values = dict(mean=mean, cov=_flat(cov), predicted_mean=a,
                              predicted_cov=_flat(P), observation_mean=y_mean,
                              observation_cov=_flat(y_cov), log_likelihood_terms=[loglik])
                for ref, field in zip(out_refs, written):
                    ks.store_rows(ref, values[field], base, block, k)
            go = (k + 1 < chunk) & (t + 1 < T)
            moved = _keep(go, ka.pack(_predict(p, mean, cov), shapes), ka.pack((a, P), shapes))
            return moved + [total]

        total = jax.lax.fori_loop(0, chunk, step, ka.pack((a, P), shapes) + [zero])[-1]
        if not written:
            ks.store_rows(out_refs[0], [total], base, block)

    return kernel


# -- smoother passes ----------------------------------------------------------------------------
def _backward_summary_kernel(n, m, T, chunk, chunks, block, dtype):
    """The backward element of every chunk, :math:`x_{start} \\mid x_{start + L}, y \\sim
    N(E x + g, L)`, composed step by step from the filtered moments (for the chunk holding the
    last step, :math:`E = 0`: its element is the smoothed state at its start)."""
    eps = float(jnp.finfo(dtype).eps)
    shapes = ks.backward_algebra(n).element_shapes

    def kernel(p_ref, mean_ref, cov_ref, out_ref):
        p = _read(p_ref, n, m)
        base, _, start = _lanes(block, chunks, chunk)
        zero = jnp.zeros(block, dtype)

        def step(k, flat):
            t = start + k
            mean = ks.load_rows(mean_ref, n, base, block, k)
            cov = _square(ks.load_rows(cov_ref, n * n, base, block, k), n)
            element, _ = ka.rts_element(mean, cov, p["F"], p["Q"], p["u"], eps)
            element = _keep(t == T - 1, (ka.zeros(n, n, zero), mean, cov), element)
            composed = ka.backward_combine(element, ka.unpack(flat, shapes))
            return _keep(t < T, ka.pack(composed, shapes), flat)

        start_element = (ka.eye(n, zero), [zero] * n, ka.zeros(n, n, zero))
        composed = jax.lax.fori_loop(0, chunk, step, ka.pack(start_element, shapes))
        ks.store_rows(out_ref, composed, base, block)

    return kernel


# -- smoother pass: backward RTS through every chunk --------------------------------------------
def _smoother_outputs(n):
    """Rows of the smoother kernel's outputs: smoothed means, covariances, lag-one covariances;
    for ``n >`` :data:`probssm.kalman.ops.lane_algebra.LOOP_ROWS` the covariances and lag-one
    covariances in one array (``2 n^2`` rows, a power of two): one store less in the kernel,
    whose compile time grows with its stores (Triton's coalescing pass)."""
    if n > ka.LOOP_ROWS:
        return (n, 2 * n * n)
    return (n, n * n, n * n)


def _smoother_kernel(n, m, T, chunk, chunks, block, dtype):
    """From the smoothed state entering each chunk from the right, the RTS recursion backward
    through the chunk's filtered moments: smoothed mean, covariance and lag-one covariance
    (:func:`_smoother_outputs`)."""
    eps = float(jnp.finfo(dtype).eps)
    state_shapes = ks.backward_algebra(n).state_shapes

    def kernel(p_ref, right_ref, mean_ref, cov_ref, s_mean_ref, s_cov_ref, *lag_ref):
        p = _read(p_ref, n, m)
        base, _, start = _lanes(block, chunks, chunk)
        right = ks.load_rows(right_ref, ks.rows(state_shapes), base, block)

        def step(j, flat):
            state = ka.unpack(flat, state_shapes)
            k = chunk - 1 - j
            t = start + k
            mean = ks.load_rows(mean_ref, n, base, block, k)
            cov = _square(ks.load_rows(cov_ref, n * n, base, block, k), n)
            (E, g, L), _ = ka.rts_element(mean, cov, p["F"], p["Q"], p["u"], eps)
            s_mean, s_cov = ka.backward_apply(state, (E, g, L))
            last = t == T - 1
            s_mean, s_cov = _keep(last, (mean, cov), (s_mean, s_cov))
            ks.store_rows(s_mean_ref, s_mean, base, block, k)
            lag = _flat(ka.matmul(state[1], ka.transpose(E)))
            if lag_ref:
                ks.store_rows(s_cov_ref, _flat(s_cov), base, block, k)
                ks.store_rows(lag_ref[0], lag, base, block, k)
            else:
                ks.store_rows(s_cov_ref, _flat(s_cov) + lag, base, block, k)
            return _keep(t < T, ka.pack((s_mean, s_cov), state_shapes), flat)

        jax.lax.fori_loop(0, chunk, step, right)

    return kernel


# -- drivers ------------------------------------------------------------------------------------
def _geometry(T, B, chunk, block):
    chunk = max(1, min(default_chunk(T) if chunk is None else chunk, T))
    chunks = -(-T // chunk)
    lanes = B * chunks
    return chunk, chunks, lanes, ks.padded(lanes, block)


def _from_lane_minor(x, B, T, chunks, shape):
    """``(L, R, lanes)`` (``R >= r = prod(shape)`` rows) -> ``(B, T, *shape)``."""
    L, r = x.shape[0], math.prod(shape)
    x = jnp.transpose(x[:, :r, :B * chunks], (2, 0, 1)).reshape(B, chunks * L, r)
    return x[:, :T].reshape((B, T) + shape)


_STATE_FIELDS = ("mean", "cov", "predicted_mean", "predicted_cov", "observation_mean",
                 "observation_cov", "log_likelihood_terms")
_FILTERED_FIELDS = ("mean", "cov", "log_likelihood_terms")


def _state_shapes(n, m):
    return dict(zip(_STATE_FIELDS, ((n,), (n, n), (n,), (n, n), (m,), (m, m), ())))


def _written(n, predictions=True):
    """The fields the fix-up kernel writes: all of them, or the filtered moments and
    log-likelihood terms only, without ``predictions`` or for ``n >``
    :data:`probssm.kalman.ops.lane_algebra.LOOP_ROWS` (the predicted and observation moments then
    come from them in XLA, :func:`predictions_from_filtered`): every store adds to Triton's
    compile time, which at ``n = 8`` the fix-up sets."""
    if n > ka.LOOP_ROWS or not predictions:
        return _FILTERED_FIELDS
    return _STATE_FIELDS


def _forward(model, y, written, chunk, block, group, top, interpret):
    """Summary, chunk scan and fix-up writing the fields ``written`` (lane-minor), or only the
    chunks' log-likelihoods if there are none."""
    y = unfolded(y)
    B, T, m = y.shape
    n = model.state_dim
    dtype = y.dtype
    chunk, chunks, lanes, padded_lanes = _geometry(T, B, chunk, block)
    params = _pack(model)
    y = y.reshape(B * T, m)
    alg = ks.filter_algebra(n)
    (elements,) = ks.call(
        _summary_kernel(n, m, T, B, chunk, chunks, block, dtype), [params, y],
        [jax.ShapeDtypeStruct((ks.pow2(ks.rows(alg.element_shapes)), padded_lanes), dtype)],
        lanes, block, interpret)
    states = ks.chunk_scan(alg, elements, B, chunks, group=group, top=top, interpret=interpret)
    if written:
        shapes = _state_shapes(n, m)
        outs = [jax.ShapeDtypeStruct((chunk, ks.pow2(math.prod(shapes[f])), padded_lanes), dtype)
                for f in written]
    else:
        outs = [jax.ShapeDtypeStruct((1, padded_lanes), dtype)]
    result = ks.call(_fixup_kernel(n, m, T, B, chunk, chunks, block, dtype, written),
                     [params, states, y], outs, lanes, block, interpret)
    return result, (chunk, chunks, lanes, padded_lanes, params)


def _predicted_moments(model, mean, cov):
    """:math:`F m + u`, :math:`F P F^T + Q` over leading axes."""
    F = model.transition_matrix
    return (matvec(F, mean) + model.transition_offset,
            matmul(matmul(F, cov), F.T) + model.transition_cov)


def predictions_from_filtered(model: LGSSM, mean, cov):
    """The one-step predictions from the filtered moments ``mean`` ``(B, T, n)``, ``cov``
    ``(B, T, n, n)`` of a time-invariant model with a proper prior: ``predicted_mean``
    :math:`a_t = F m_{t-1} + u`, ``predicted_cov`` :math:`P_t = F P_{t-1|t-1} F^T + Q` (the
    prior at ``t = 0``), ``observation_mean`` :math:`H a_t + d` ``(B, T, m)`` and
    ``observation_cov`` :math:`H P_t H^T + R` ``(B, T, m, m)``."""
    B, n = mean.shape[0], model.state_dim
    H = model.observation_matrix
    prior_mean = jnp.broadcast_to(model.initial_mean, (B, 1, n)).astype(mean.dtype)
    prior_cov = jnp.broadcast_to(model.initial_cov, (B, 1, n, n)).astype(cov.dtype)
    a, P = _predicted_moments(model, mean[:, :-1], cov[:, :-1])
    a = jnp.concatenate([prior_mean, a], axis=1)
    P = symmetrize(jnp.concatenate([prior_cov, P], axis=1))
    return dict(predicted_mean=a, predicted_cov=P,
                observation_mean=matvec(H, a) + model.observation_offset,
                observation_cov=symmetrize(matmul(matmul(H, P), H.T) + model.observation_cov))


def _states_result(model, outs, B, T, chunks, written, predictions):
    """The filter's fields from the fix-up's outputs ``written`` (:func:`_written`); with
    ``predictions``, those the kernel did not write from the filtered moments
    (:func:`predictions_from_filtered`) and a zero ``predicted_diffuse_cov``."""
    shapes = _state_shapes(model.state_dim, model.observation_dim)
    out = {k: _from_lane_minor(x, B, T, chunks, shapes[k]) for k, x in zip(written, outs)}
    if predictions and "predicted_mean" not in out:
        out.update(predictions_from_filtered(model, out["mean"], out["cov"]))
    out["next_mean"], out["next_cov"] = _predicted_moments(model, out["mean"][:, -1],
                                                           out["cov"][:, -1])
    if predictions:
        out["predicted_diffuse_cov"] = jnp.zeros_like(out["predicted_cov"])
    return out


@partial(jax.jit, static_argnames=("write_states", "predictions", "chunk", "block", "group",
                                   "top", "interpret"))
def filter_batch(model: LGSSM, y, *, write_states=True, predictions=True, chunk=None,
                 block=DEFAULT_BLOCK, group=ks.DEFAULT_GROUP, top=ks.DEFAULT_TOP, interpret=None):
    """Kernel filter of ``y`` ``(B, T, m)`` under one time-invariant model.

    Returns, when ``write_states``, ``mean``, ``predicted_mean`` ``(B, T, n)``, ``cov``,
    ``predicted_cov``, ``predicted_diffuse_cov`` (zeros) ``(B, T, n, n)``, ``observation_mean``
    ``(B, T, m)``, ``observation_cov`` ``(B, T, m, m)``, ``log_likelihood_terms`` ``(B, T)``,
    ``next_mean`` ``(B, n)`` and ``next_cov`` ``(B, n, n)`` (the fields of
    :class:`probssm.kalman.FilterResult` but ``log_likelihood``; without ``predictions`` none
    of the ``predicted_*`` and ``observation_*`` ones, which the kernel then does not write);
    otherwise only ``log_likelihood`` ``(B,)``. ``chunk`` steps a lane (default :func:`default_chunk`),
    ``block`` lanes a program, ``group`` elements a group at every level of the chunk scan
    (:func:`probssm.kalman.ops.chunk_scan.levels`), ``top`` the largest level a series that the
    chunk scan scans in one launch (:func:`probssm.kalman.ops.chunk_scan.chunk_scan`; 0: folds
    up to one group a series).
    """
    if interpret is None:
        interpret = jax.default_backend() == "cpu"
    B, T, _ = y.shape
    written = _written(model.state_dim, predictions) if write_states else ()
    outs, (chunk, chunks, lanes, _, _) = _forward(model, y, written, chunk, block, group, top,
                                                  interpret)
    if write_states:
        return _states_result(model, outs, B, T, chunks, written, predictions)
    return dict(log_likelihood=outs[0][0, :lanes].reshape(B, chunks).sum(axis=1))


@partial(jax.jit, static_argnames=("chunk", "block", "group", "top", "interpret"))
def smooth_batch(model: LGSSM, y, *, chunk=None, block=DEFAULT_BLOCK,
                 group=ks.DEFAULT_GROUP, top=ks.DEFAULT_TOP, interpret=None):
    """Kernel smoother of ``y`` ``(B, T, m)`` under one time-invariant model.

    Returns the fields of :func:`filter_batch` and ``smoothed_mean`` ``(B, T, n)``,
    ``smoothed_cov`` ``(B, T, n, n)`` and ``lag_one_cov`` ``(B, T - 1, n, n)``
    (:math:`\\mathrm{Cov}(x_{t+1}, x_t \\mid y)`).
    """
    if interpret is None:
        interpret = jax.default_backend() == "cpu"
    B, T, m = y.shape
    n = model.state_dim
    dtype = y.dtype
    written = _written(n)
    states, (chunk, chunks, lanes, padded_lanes, params) = _forward(
        model, y, written, chunk, block, group, top, interpret)
    (backward,) = ks.call(
        _backward_summary_kernel(n, m, T, chunk, chunks, block, dtype),
        [params, states[0], states[1]],
        [jax.ShapeDtypeStruct((ks.pow2(ks.rows(ks.backward_algebra(n).element_shapes)),
                               padded_lanes), dtype)],
        lanes, block, interpret)
    right = ks.chunk_scan(ks.backward_algebra(n), backward, B, chunks, reverse=True, group=group,
                          top=top, interpret=interpret)
    s_mean, s_cov, *lag = ks.call(
        _smoother_kernel(n, m, T, chunk, chunks, block, dtype),
        [params, right, states[0], states[1]],
        [jax.ShapeDtypeStruct((chunk, ks.pow2(r), padded_lanes), dtype)
         for r in _smoother_outputs(n)],
        lanes, block, interpret)
    lag = lag[0] if lag else s_cov[:, n * n:]
    out = _states_result(model, states, B, T, chunks, written, True)
    out["smoothed_mean"] = _from_lane_minor(s_mean, B, T, chunks, (n,))
    out["smoothed_cov"] = _from_lane_minor(s_cov, B, T, chunks, (n, n))
    out["lag_one_cov"] = _from_lane_minor(lag, B, T, chunks, (n, n))[:, :T - 1]
    return out


# -- differentiable entry points ----------------------------------------------------------------
def _with_reverse_mode(vjp):
    """The identity on a kernel's outputs ``states``, whose gradient with respect to ``model``
    and ``y`` is ``vjp(model, y, states, cotangents)``.

    The kernels run outside it, on inputs with stopped gradients, so they are traced once: as a
    ``custom_vjp`` around the kernels, a program differentiated through an inner ``jit`` traced
    them twice, for the primal function and for its forward pass (2-3 s more at n = 8)."""
    @jax.custom_vjp
    def attach(model, y, states):
        del model, y
        return states

    def forward(model, y, states):
        return states, (model, y, states)

    def backward(residuals, cotangents):
        model, y, states = residuals
        g_model, g_y = vjp(model, y, states, cotangents)
        return g_model, g_y, jax.tree_util.tree_map(jnp.zeros_like, states)

    attach.defvjp(forward, backward)
    return attach


def _filtered_vjp(model, y, states, cotangents):
    """:func:`probssm.kalman.ops.adjoint.filter_vjp` of a filter written without predictions (their
    cotangents are zero)."""
    predictions = predictions_from_filtered(model, states["mean"], states["cov"])
    return adjoint.filter_vjp(model, y, {**states, **predictions}, cotangents)


_filter_reverse_mode = _with_reverse_mode(adjoint.filter_vjp)
_filtered_reverse_mode = _with_reverse_mode(_filtered_vjp)
_smoother_reverse_mode = _with_reverse_mode(adjoint.smoother_vjp)


def filter_states(model: LGSSM, y, predictions=True):
    """Differentiable kernel filter of ``y`` ``(B, T, m)``: the outputs of :func:`filter_batch`
    (without the ``predicted_*`` and ``observation_*`` fields unless ``predictions``).
    The gradient is the filter's reverse mode computed from these outputs
    (:func:`probssm.kalman.ops.adjoint.filter_vjp`: one backward scan, no recomputation)."""
    states = filter_batch(*jax.lax.stop_gradient((model, y)), predictions=predictions)
    if predictions:
        return _filter_reverse_mode(model, y, states)
    return _filtered_reverse_mode(model, y, states)


def smooth_states(model: LGSSM, y):
    """Differentiable kernel smoother of ``y`` ``(B, T, m)``: the outputs of
    :func:`smooth_batch`. The gradient is the smoother's reverse mode from these outputs
    (:func:`probssm.kalman.ops.adjoint.smoother_vjp`: the RTS pass's adjoint, then the filter's; no
    recomputation)."""
    states = smooth_batch(*jax.lax.stop_gradient((model, y)))
    return _smoother_reverse_mode(model, y, states)


@jax.custom_vjp
def log_likelihood_sums(model: LGSSM, y):
    """Differentiable kernel log-likelihood of each series of ``y`` ``(B, T, m)``: ``(B,)``.
    Writes no per-step states (reads ``y`` and a few chunk summaries only). The gradient is the
    exact score from the filtered moments (:func:`probssm.kalman.ops.adjoint.log_likelihood_vjp`)."""
    return filter_batch(model, y, write_states=False)["log_likelihood"]


def _log_likelihood_fwd(model, y):
    states = filter_batch(model, y)
    return states["log_likelihood_terms"].sum(axis=-1), (model, y, states)


def _log_likelihood_bwd(residuals, cotangent):
    return adjoint.log_likelihood_vjp(*residuals, cotangent)


log_likelihood_sums.defvjp(_log_likelihood_fwd, _log_likelihood_bwd)
