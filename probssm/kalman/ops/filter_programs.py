"""The Pallas programs of the kernel filter and smoother (:mod:`.filter_kernel` launches them).

The series is cut into chunks of ``L`` steps; every chunk of every series is one *lane*, and a
program handles a block of lanes (the grid maps batches and chunks alike). Arrays between the
passes are lane-minor (``(L, rows, lanes)``; :mod:`.tiles`), so every load and store of a warp
is contiguous. The observations are read in their own layout (:func:`_observations`).

Filter:

1. **Chunk summaries** (:func:`summary_kernel`): each lane runs the exact sequential filter
   through its chunk, with the state mean kept as an affine function :math:`A x + b` of the
   unknown state :math:`x` entering the chunk. At the end :math:`(A, b, C)` give
   :math:`p(x_{end} \\mid x_{enter}, y_{chunk}) = N(A x_{enter} + b, C)` and the accumulated
   :math:`(\\eta, J)` the likelihood :math:`p(y_{chunk} \\mid x_{enter}) \\propto
   N_I(x_{enter}; \\eta, J)`: the filtering element of Särkkä & García-Fernández (2021) for the
   whole chunk, built with scalar (univariate) updates only, no matrix inverse. The first chunk
   starts from the prior instead (``A = 0``).
2. **Chunk scan** (:func:`probssm.kalman.ops.chunk_scan.chunk_scan`): the filtered state at the
   end of every chunk.
3. **Fix-up** (:func:`fixup_kernel`): each lane reruns the sequential filter through its chunk
   from its entering prediction and writes every step's predicted and filtered moments,
   observation moments and log-likelihood term once (or only some of them, or only the chunk's
   log-likelihood).

Smoother: after the filter, :func:`backward_summary_kernel` composes each chunk's backward
element :math:`x_{start} \\mid x_{next\\ chunk's\\ start}, y \\sim N(E x + g, L)` from the
Rauch-Tung-Striebel elements of its steps
(:func:`probssm.kalman.ops.scan_elements.rts_element`, computed from the filtered moments); a
reverse chunk scan of these affine elements gives the smoothed state entering every chunk from
the right, and :func:`smoother_kernel` runs the RTS recursion backward through each chunk from
it, writing the smoothed means, covariances and lag-one cross-covariances once.

Each step's observations are decorrelated inside the kernels (:math:`R_t = L D L^T` of the
observed entries, as in :mod:`probssm.kalman.sequential`), so every update is a scalar one and
a NaN entry, in a whole or a partly missing row, is skipped.

Compile time: most of Triton's compile time went to its coalescing pass, which walks the whole
def-use slice of the kernel once for every load and store (and every ``ref[...] = v`` is a load
and a store), i.e. (memory operations) x (kernel size) or worse. Every field, element or step's
rows therefore move as one tile (:mod:`.tiles`; arrays between kernels have their rows padded
to a power of two), and loop bodies are kept small. XLA compiles the kernels of a program one
after another (its IR emission runs each kernel's Triton pipeline and LLVM's NVPTX back end in
turn), so a program's compile time is the sum over its kernels; at ``n = 8`` most of it is
LLVM's, and it shrinks with the values live across loop iterations: symmetric fields are
carried as upper triangles (:func:`probssm.kalman.ops.lane_algebra.symmetric`) and above
:data:`probssm.kalman.ops.lane_algebra.LOOP_ROWS` a step's observation rows are one loop body
(:func:`_for_each_row`).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.experimental import pallas as pl

from . import lane_algebra as ka
from . import scan_elements as elements
from . import tiles
from ..model import LGSSM

_LOG_2PI = math.log(2.0 * math.pi)


# -- parameters as one flat vector, read as scalars inside the kernels --------------------------
def _layout(n, m):
    sizes = dict(F=n * n, Q=n * n, H=m * n, R=m * m, u=n, d=m, m0=n, P0=n * n, tiny=1)
    offsets, pos = {}, 0
    for k, s in sizes.items():
        offsets[k] = pos
        pos += s
    return offsets, pos


# The model's fields by their short names in the kernels.
FIELD_KEYS = dict(transition_matrix="F", transition_cov="Q", transition_offset="u",
                  observation_matrix="H", observation_cov="R", observation_offset="d")
# The order of the time-varying fields in a step's row (:func:`pack_varying`).
VARYING_ORDER = ("F", "Q", "u", "H", "R", "d")
_SYMMETRIC = ("Q", "R")


def varying_keys(model: LGSSM):
    """The short names of ``model``'s time-varying fields, in :data:`VARYING_ORDER`: the kernels'
    static flag (empty for a time-invariant model, whose programs it leaves unchanged)."""
    keys = {FIELD_KEYS[name] for name in model.time_varying}
    return tuple(k for k in VARYING_ORDER if k in keys)


def _core_shape(key, n, m):
    return dict(F=(n, n), Q=(n, n), u=(n,), H=(m, n), R=(m, m), d=(m,))[key]


def _varying_layout(n, m, varying):
    """Columns of each time-varying field in a step's row: ``{key: (offset, size)}`` (covariances
    as upper triangles, :func:`probssm.kalman.ops.lane_algebra.upper`), and the row width."""
    layout, pos = {}, 0
    for k in varying:
        shape = _core_shape(k, n, m)
        size = shape[0] * (shape[0] + 1) // 2 if k in _SYMMETRIC else math.prod(shape)
        layout[k] = (pos, size)
        pos += size
    return layout, pos


def pack_parameters(model: LGSSM):
    """The model's time-invariant fields as one flat vector (read as scalars inside the kernels);
    the time-varying fields (:func:`pack_varying`) hold zeros of their core shape there."""
    R = model.observation_cov
    m = R.shape[-1]
    tiny = 100 * m * jnp.finfo(R.dtype).eps  # times the scale of R, as in ``_linalg.ldl``

    def static(name):
        x = getattr(model, name)
        if name in model.time_varying:
            return jnp.zeros(x.shape[1:], x.dtype).ravel()
        return x.ravel()

    return jnp.concatenate([
        static("transition_matrix"), static("transition_cov"),
        static("observation_matrix"), static("observation_cov"), static("transition_offset"),
        static("observation_offset"), model.initial_mean, model.initial_cov.ravel(),
        jnp.full((1,), tiny, R.dtype),
    ])


def pack_varying(model: LGSSM, varying):
    """The time-varying fields ``varying`` (:func:`varying_keys`) as one time-major array
    ``(T, width)``: row ``t`` holds :math:`F_t, Q_t, b_t, H_t, R_t, d_t` (those that vary, in
    that order; :math:`Q_t`, :math:`R_t` as upper triangles), which a lane reads with one load
    at step ``t`` (:func:`_step_parameters`)."""
    names = {k: name for name, k in FIELD_KEYS.items()}
    columns = []
    for k in varying:
        x = getattr(model, names[k])
        if k in _SYMMETRIC:  # static slices (one fusion with the concatenation), no gather
            x = jnp.stack([x[:, i, j] for i, j in zip(*np.triu_indices(x.shape[-1]))], axis=1)
        columns.append(x.reshape(x.shape[0], -1))
    return jnp.concatenate(columns, axis=1)


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
    (:mod:`.lane_algebra` field shapes).

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
    its own next steps), which costs the passes nothing measurable against lane-minor rows and
    saves the transpose of ``y`` (an XLA launch). Outputs stay lane-minor: stored time-major,
    a warp's stores scatter over 32 rows and the fix-up slows down several-fold
    (``benchmarks/README.md``).
    Lane arithmetic is done here, outside the loops: the interpreter knows the program id only
    there."""
    lane = pl.program_id(0) * block + jnp.arange(block, dtype=jnp.int32)
    s, start = lane // chunks, lane % chunks * chunk

    def ys(k, offset=p["d"]):
        t = start + jnp.asarray(k, jnp.int32)
        valid = (s < B) & (t < T)
        rows = jnp.where(valid, s * T + t, B * T)
        values = tiles.load_steps(y_ref, m, rows, valid, other=float("nan"))
        return [lax.sub(v, d) for v, d in zip(values, offset)]

    return ys


def _step_parameters(v_ref, p, n, m, varying, block, chunks, chunk, T):
    """``params(k)``: the parameters ``p`` (:func:`_read`) with the time-varying fields
    ``varying`` of step ``start + k`` of each lane, read from the time-major rows ``v_ref``
    ``(T, width)`` (:func:`pack_varying`) as one ``(block, width)`` tile a step, as
    :func:`_observations` reads ``y``. The step is clamped to ``0 .. T - 1`` (steps before the
    series, ``k = -1`` in the first chunk, and past its end are read but never used). Without
    time-varying fields, ``params(k)`` is ``p``."""
    if not varying:
        return lambda k: p
    layout, width = _varying_layout(n, m, varying)
    lane = pl.program_id(0) * block + jnp.arange(block, dtype=jnp.int32)
    start = lane % chunks * chunk
    everywhere = jnp.ones((block,), jnp.bool_)

    def params(k):
        t = jnp.clip(start + jnp.asarray(k, jnp.int32), 0, T - 1)
        row = tiles.load_steps(v_ref, width, t, everywhere)
        out = dict(p)
        for key, (offset, size) in layout.items():
            values = row[offset:offset + size]
            shape = _core_shape(key, n, m)
            if key in _SYMMETRIC:
                out[key] = ka.from_upper(values, shape[0])
            elif len(shape) == 1:
                out[key] = values
            else:
                out[key] = [values[i * shape[1]:(i + 1) * shape[1]] for i in range(shape[0])]
        return out

    return params


def _split_refs(refs, varying):
    """``(v_ref, rest)``: the time-varying rows' ref (``None`` without time-varying fields)
    leading a kernel's refs after the parameters."""
    return (refs[0], refs[1:]) if varying else (None, refs)


def _flat(M):
    return [x for row in M for x in row]


def _square(flat, n):
    return [flat[i * n:(i + 1) * n] for i in range(n)]


# -- pass 1: chunk summaries --------------------------------------------------------------------
def summary_kernel(n, m, T, B, chunk, chunks, block, dtype, varying=()):
    """The filtering element of every chunk, lane-minor rows ``A, b, C, eta, J``. With
    time-varying fields ``varying`` (:func:`varying_keys`), step ``t`` updates with
    :math:`H_t, R_t, d_t` and predicts with :math:`F_t, Q_t, b_t`, and a chunk ``c > 0``
    starts from the transition of step ``start - 1`` into it."""
    shapes = elements.filter_algebra(n).element_shapes

    def kernel(p_ref, *refs):
        v_ref, (y_ref, out_ref) = _split_refs(refs, varying)
        p = _read(p_ref, n, m)
        params = _step_parameters(v_ref, p, n, m, varying, block, chunks, chunk, T)
        entering = params(-1)  # the transition into the chunk, of step start - 1
        F, Q, u = entering["F"], entering["Q"], entering["u"]
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
            pt = params(k)
            rows = _observation_rows(observations(k, pt["d"]), pt["H"], pt["R"], p["tiny"], n,
                                     m)
            A, b, C, eta, J = _for_each_row(rows, update, ka.unpack(flat, shapes), shapes)
            go = (k + 1 < chunk) & (t + 1 < T)
            b_next, C_next = _predict(pt, b, C)
            moved = _keep(go, ka.pack((ka.matmul(pt["F"], A), b_next, C_next), shapes[:3]),
                          ka.pack((A, b, C), shapes[:3]))
            return moved + ka.pack((eta, J), shapes[3:])

        element = jax.lax.fori_loop(0, chunk, step, ka.pack((A, b, C, eta, J), shapes))
        tiles.store_rows(out_ref, element, base, block)

    return kernel


# -- pass 3: fix-up -----------------------------------------------------------------------------
def fixup_kernel(n, m, T, B, chunk, chunks, block, dtype, written, varying=()):
    """The sequential filter through every chunk from its entering prediction: every step's
    fields ``written`` (names of :class:`~.states.FilterStates` fields, in the order of
    ``out_refs``), or (``written`` empty) only the chunk's log-likelihood. Time-varying fields
    ``varying`` as in :func:`summary_kernel`."""
    shapes = elements.filter_algebra(n).state_shapes

    def kernel(p_ref, *refs):
        v_ref, (state_ref, y_ref, *out_refs) = _split_refs(refs, varying)
        p = _read(p_ref, n, m)
        params = _step_parameters(v_ref, p, n, m, varying, block, chunks, chunk, T)
        base, c, start = _lanes(block, chunks, chunk)
        observations = _observations(y_ref, p, m, block, chunks, chunk, B, T)
        end_of_previous = ka.unpack(tiles.load_rows(state_ref, tiles.rows(shapes), base, block),
                                    shapes)
        a, P = _predict(params(-1), *end_of_previous)
        first = c == 0
        zero = jnp.zeros(block, dtype)
        a = [ka.where(first, p["m0"][i], a[i]) for i in range(n)]
        P = [[ka.where(first, p["P0"][i][j], P[i][j]) for j in range(n)] for i in range(n)]

        def step(k, carry):
            *moments, total = carry
            a, P = ka.unpack(moments, shapes)
            t = start + k
            pt = params(k)
            mean, cov, loglik = _update(pt, a, P, observations(k, pt["d"]), n, m)
            total = lax.add(total, ka.where(t < T, loglik, 0.0))
            if written:
                H = pt["H"]
                y_mean = ka.plus(ka.matvec(H, a), pt["d"])
                y_cov = ka.congruence(H, P, plus=pt["R"])
                values = dict(mean=mean, cov=_flat(cov), predicted_mean=a,
                              predicted_cov=_flat(P), observation_mean=y_mean,
                              observation_cov=_flat(y_cov), log_likelihood_terms=[loglik])
                for ref, field in zip(out_refs, written):
                    tiles.store_rows(ref, values[field], base, block, k)
            go = (k + 1 < chunk) & (t + 1 < T)
            moved = _keep(go, ka.pack(_predict(pt, mean, cov), shapes), ka.pack((a, P), shapes))
            return moved + [total]

        total = jax.lax.fori_loop(0, chunk, step, ka.pack((a, P), shapes) + [zero])[-1]
        if not written:
            tiles.store_rows(out_refs[0], [total], base, block)

    return kernel


# -- smoother passes ----------------------------------------------------------------------------
def backward_summary_kernel(n, m, T, chunk, chunks, block, dtype, varying=()):
    """The backward element of every chunk, :math:`x_{start} \\mid x_{start + L}, y \\sim
    N(E x + g, L)`, composed step by step from the filtered moments (for the chunk holding the
    last step, :math:`E = 0`: its element is the smoothed state at its start); step ``t``'s
    element from :math:`F_t, Q_t, b_t` (``varying`` as in :func:`summary_kernel`)."""
    eps = float(jnp.finfo(dtype).eps)
    shapes = elements.backward_algebra(n).element_shapes

    def kernel(p_ref, *refs):
        v_ref, (mean_ref, cov_ref, out_ref) = _split_refs(refs, varying)
        p = _read(p_ref, n, m)
        params = _step_parameters(v_ref, p, n, m, varying, block, chunks, chunk, T)
        base, _, start = _lanes(block, chunks, chunk)
        zero = jnp.zeros(block, dtype)

        def step(k, flat):
            t = start + k
            mean = tiles.load_rows(mean_ref, n, base, block, k)
            cov = _square(tiles.load_rows(cov_ref, n * n, base, block, k), n)
            pt = params(k)
            element, _ = elements.rts_element(mean, cov, pt["F"], pt["Q"], pt["u"], eps)
            element = _keep(t == T - 1, (ka.zeros(n, n, zero), mean, cov), element)
            composed = elements.backward_combine(element, ka.unpack(flat, shapes))
            return _keep(t < T, ka.pack(composed, shapes), flat)

        start_element = (ka.eye(n, zero), [zero] * n, ka.zeros(n, n, zero))
        composed = jax.lax.fori_loop(0, chunk, step, ka.pack(start_element, shapes))
        tiles.store_rows(out_ref, composed, base, block)

    return kernel


# -- smoother pass: backward RTS through every chunk --------------------------------------------
def smoother_outputs(n):
    """Rows of the smoother kernel's outputs: smoothed means, covariances, lag-one covariances;
    for ``n >`` :data:`probssm.kalman.ops.lane_algebra.LOOP_ROWS` the covariances and lag-one
    covariances in one array (``2 n^2`` rows, a power of two): one store less in the kernel,
    whose compile time grows with its stores (Triton's coalescing pass)."""
    if n > ka.LOOP_ROWS:
        return (n, 2 * n * n)
    return (n, n * n, n * n)


def smoother_kernel(n, m, T, chunk, chunks, block, dtype, varying=()):
    """From the smoothed state entering each chunk from the right, the RTS recursion backward
    through the chunk's filtered moments: smoothed mean, covariance and lag-one covariance
    (:func:`smoother_outputs`); step ``t`` with :math:`F_t, Q_t, b_t` (``varying`` as in
    :func:`summary_kernel`)."""
    eps = float(jnp.finfo(dtype).eps)
    state_shapes = elements.backward_algebra(n).state_shapes

    def kernel(p_ref, *refs):
        v_ref, (right_ref, mean_ref, cov_ref, s_mean_ref, s_cov_ref, *lag_ref) = _split_refs(
            refs, varying)
        p = _read(p_ref, n, m)
        params = _step_parameters(v_ref, p, n, m, varying, block, chunks, chunk, T)
        base, _, start = _lanes(block, chunks, chunk)
        right = tiles.load_rows(right_ref, tiles.rows(state_shapes), base, block)

        def step(j, flat):
            state = ka.unpack(flat, state_shapes)
            k = chunk - 1 - j
            t = start + k
            mean = tiles.load_rows(mean_ref, n, base, block, k)
            cov = _square(tiles.load_rows(cov_ref, n * n, base, block, k), n)
            pt = params(k)
            (E, g, L), _ = elements.rts_element(mean, cov, pt["F"], pt["Q"], pt["u"], eps)
            s_mean, s_cov = elements.backward_apply(state, (E, g, L))
            last = t == T - 1
            s_mean, s_cov = _keep(last, (mean, cov), (s_mean, s_cov))
            tiles.store_rows(s_mean_ref, s_mean, base, block, k)
            lag = _flat(ka.matmul(state[1], ka.transpose(E)))
            if lag_ref:
                tiles.store_rows(s_cov_ref, _flat(s_cov), base, block, k)
                tiles.store_rows(lag_ref[0], lag, base, block, k)
            else:
                tiles.store_rows(s_cov_ref, _flat(s_cov) + lag, base, block, k)
            return _keep(t < T, ka.pack((s_mean, s_cov), state_shapes), flat)

        jax.lax.fori_loop(0, chunk, step, right)

    return kernel
