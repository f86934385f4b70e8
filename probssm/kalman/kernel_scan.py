"""Chunk-level scan of the fused kernels: a two-level sequential hierarchy in three Pallas kernels.

Input: one *element* per chunk of every series (``chunks`` per series, series after series), and
an element algebra (:mod:`.kernel_algebra`: ``combine(earlier, later)``, ``apply(state,
element)``). Output: for every chunk the *exclusive* prefix as a state, i.e. the first element of
the series applied to nothing up to the chunk's own element left out (the first chunk's state is
zero; its element ignores its entering state).

With groups of ``G`` consecutive chunks (``K = ceil(chunks / G)`` groups per series):

1. **fold** (a lane per group): the group's elements combined one after another, ``G - 1``
   combinations in a ``fori_loop`` (the combination is traced and compiled once; for large
   elements ``G`` combinations from the identity element, :func:`_fold_kernel`);
2. **series scan** (a lane per series): the ``K`` group elements applied one after another to the
   state, writing the state entering every group;
3. **propagate** (a lane per group): from its entering state, each of the group's ``G`` elements
   applied in turn, writing the state entering every chunk.

Depth ``2G + K`` element operations (about ``3 sqrt(chunks)`` for ``G ~ sqrt(chunks)``), work
``O(chunks)``, three launches whatever the number of chunks, against ``log2(chunks)`` levels of
many small XLA kernels for a Hillis-Steele scan. ``reverse=True`` runs the scan from each
series' last chunk to its first (the smoother).

Arrays are *lane-minor*: a field of ``r`` rows over ``N`` lanes is ``(r, N)``, each element or
state is its fields' rows stacked, so lane vectors load and store contiguously.

Memory access (:func:`load_rows`, :func:`store_rows`, :func:`gather_rows`,
:func:`scatter_rows`): the rows of a field or element move as *one* ``(R, block)`` tile (``R`` the
row count rounded up to a power of two, arrays padded to it), split into lane vectors by a tree of
``split`` operations and joined by a tree of ``join`` operations, all in registers. Triton's
coalescing pass walks the whole def-use slice of every memory operation, so its compile time
grows with (memory operations) x (kernel size); one tile per field instead of one access per row
cuts the kernels' compile time several-fold. Elements of more than :data:`MAX_TILE_ROWS` rows
(``n > 4``) are gathered in a few power-of-two tiles without padding (:func:`gather_fields`):
the GPU backend's address arithmetic (LLVM's straight-line strength reduction) is superlinear
in a tile's addresses.
"""

from __future__ import annotations

import contextlib
import gc
import math
from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from . import kernel_algebra as ka

DEFAULT_SCAN_BLOCK = 32
MAX_TILE_ROWS = 64


@dataclass(frozen=True)
class Algebra:
    """An element algebra: field shapes (``()`` is not used; ``(n,)`` vectors, ``(n, n)``
    matrices) of elements and states, the two operations on lists of lane vectors, and the
    identity element (first field the identity matrix, the others zero): combined after an
    element or applied to a state it leaves it unchanged exactly (every product with it is a
    sum of products with exact zeros and ones, and no factor of its zero likelihood is
    absorbed)."""

    element_shapes: tuple
    state_shapes: tuple
    combine: Callable
    apply: Callable


def filter_algebra(n):
    """Filtering elements :math:`(A, b, C, \\eta, J)` on filtered states :math:`(m, P)`."""
    mat, vec = (n, n), (n,)
    return Algebra((mat, vec, mat, vec, mat), (vec, mat), ka.filter_combine, ka.filter_apply)


def identity(alg, like):
    """The identity element of ``alg`` (:class:`Algebra`) with entries shaped like ``like``."""
    zero = jnp.zeros_like(like)

    def field(shape):
        return [zero] * shape[0] if len(shape) == 1 else ka.zeros(*shape, like)

    return (ka.eye(alg.element_shapes[0][0], like),) + tuple(map(field, alg.element_shapes[1:]))


def backward_algebra(n):
    """Backward elements :math:`(E, g, L)` on smoothed states :math:`(m, P)`."""
    mat, vec = (n, n), (n,)
    return Algebra((mat, vec, mat), (vec, mat), ka.backward_combine, ka.backward_apply)


def rows(shapes):
    """Number of rows of the stacked fields."""
    return sum(math.prod(s) for s in shapes)


def unpack(flat, shapes):
    """Stacked rows (a list of lane vectors) -> tuple of vectors / matrices (lists)."""
    out, pos = [], 0
    for s in shapes:
        if len(s) == 1:
            out.append(list(flat[pos:pos + s[0]]))
        else:
            out.append([list(flat[pos + i * s[1]:pos + (i + 1) * s[1]]) for i in range(s[0])])
        pos += math.prod(s)
    return tuple(out)


def pack(fields, shapes):
    """Inverse of :func:`unpack`."""
    flat = []
    for f, s in zip(fields, shapes):
        flat.extend(f if len(s) == 1 else [x for row in f for x in row])
    return flat


def pow2(count):
    """The smallest power of two :math:`\\ge` ``count`` (Triton's tensor shapes are powers of two)."""
    return 1 << max(0, (count - 1).bit_length())


def split_rows(tile, count):
    """The first ``count`` rows of an ``(R, block)`` tile as lane vectors ``(block,)``."""
    R, block = tile.shape
    if R == 1:
        return [tile.reshape(block)]
    return [jax.lax.reshape(part, (block,)) for part in jax.lax.split(tile, [1] * R)][:count]


def _bit_reverse(i, bits):
    return int(format(i, f"0{bits}b")[::-1], 2) if bits else 0


def join_rows(values):
    """Lane vectors ``(block,)`` as the rows of one ``(pow2(len(values)), block)`` tile (zero
    rows after them). A tree of two-way ``stack`` operations along a new last axis gives
    ``(block, 2, ..., 2)`` with the first pairing in the leading bit, so the leaves go in
    bit-reversed order."""
    R = pow2(len(values))
    bits = R.bit_length() - 1
    zero = jnp.zeros_like(values[0])
    padded_values = list(values) + [zero] * (R - len(values))
    level = [padded_values[_bit_reverse(i, bits)] for i in range(R)]
    while len(level) > 1:
        level = [jax.lax.stack([level[i], level[i + 1]], axis=level[i].ndim)
                 for i in range(0, len(level), 2)]
    return level[0].reshape(values[0].shape[0], R).T


def _tile(ref, lead, count, lanes, first=0):
    """Indexer of the ``(pow2(count), block)`` tile of rows ``first..first+pow2(count)-1`` and
    columns ``lanes`` of ``ref`` ``(*lead, R, N)``.

    ``lanes`` is clamped to ``0..N-1`` (a no-op on valid lanes): the clamp tells LLVM that the
    int32 offsets ``row * N + lane`` do not overflow, so every row's address becomes one
    constant offset from the lanes' address; without it LLVM's straight-line strength
    reduction spends over a second per kernel on a gathered ``n = 8`` element's addresses. It
    also hides that the lanes are contiguous (:func:`_contiguous`). Every index is int32 (the
    interpreter wants one integer type; Python ints and ``fori_loop`` counters are int64 under
    x64)."""
    lead = tuple(jnp.asarray(i, jnp.int32) for i in lead)
    rows = first + jnp.arange(pow2(count), dtype=jnp.int32)[:, None]
    lanes = jnp.clip(jnp.asarray(lanes, jnp.int32), 0, ref.shape[-1] - 1)
    return (*lead, rows, lanes[None, :])


def _contiguous(base, block):
    """Lanes ``base..base+block-1``, an index vector that Triton cannot prove contiguous once
    :func:`_tile` clamps it: with a provably contiguous one Triton loads several lanes to a
    thread and then converts them, through shared memory, to the one lane a thread of the
    arithmetic; unproven, it lays the tile out one lane per thread (the last axis first among
    equals), as the arithmetic on lane vectors is."""
    return jnp.asarray(base, jnp.int32) + jnp.arange(block, dtype=jnp.int32)


def load_rows(ref, count, base, block, *lead):
    """Rows ``0..count-1`` of lanes ``base..base+block-1`` of ``ref`` (``(*lead, R, N)``,
    ``R >= pow2(count)``), one load: a list of ``count`` lane vectors."""
    return split_rows(ref[_tile(ref, lead, count, _contiguous(base, block))], count)


def store_rows(ref, values, base, block, *lead):
    """Inverse of :func:`load_rows`: one store of the lane vectors ``values`` (and zero rows up
    to the next power of two)."""
    from jax.experimental.pallas import triton as plgpu

    lanes = _contiguous(base, block)
    plgpu.store(ref.at[_tile(ref, lead, len(values), lanes)], join_rows(values))


def gather_rows(ref, count, lanes):
    """Rows ``0..count-1`` of the lanes ``lanes`` (an index vector ``(block,)``) of ``ref``
    ``(R, N)``, one load."""
    return split_rows(ref[_tile(ref, (), count, lanes)], count)


def gather_fields(ref, shapes, lanes):
    """The fields ``shapes`` stacked in the rows of ``ref`` ``(R, N)`` at the lanes ``lanes``: a
    list of all rows' lane vectors, as :func:`gather_rows` of all rows. One load if they fill at
    most :data:`MAX_TILE_ROWS` rows, else one load per power of two in the binary expansion of
    the row count (208 rows: 128 + 64 + 16), with no padding rows: LLVM's straight-line strength
    reduction, run by the GPU backend, takes time superlinear in the addresses of a tile (8.3 s
    for the fold's two 256-row tiles at ``n = 8``)."""
    total = sum(math.prod(s) for s in shapes)
    if total <= MAX_TILE_ROWS:
        return gather_rows(ref, total, lanes)
    sizes = [1 << b for b in reversed(range(total.bit_length())) if total >> b & 1]
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    return [x for a, c in zip(starts, sizes)
            for x in split_rows(ref[_tile(ref, (), c, lanes, a)], c)]


def scatter_rows(ref, values, lanes, live, trash):
    """Store lane ``i``'s values at column ``lanes[i]`` of ``ref`` where ``live``, else at its
    own column ``trash + i`` of the ``block`` spare columns at the end of ``ref``: no two lanes
    of a store share an address, so no mask is needed (a masked-off duplicate of a live address
    would write back a stale value in the interpreter). One store."""
    from jax.experimental.pallas import triton as plgpu

    columns = jnp.where(live, lanes, trash + jnp.arange(lanes.shape[0]))
    plgpu.store(ref.at[_tile(ref, (), len(values), columns)], join_rows(values))


def geometry(series, chunks, group=None):
    """Group size ``G`` (default ``ceil(sqrt(chunks))``) and groups per series ``K``."""
    G = max(1, math.ceil(math.sqrt(chunks))) if group is None else max(1, min(group, chunks))
    return G, -(-chunks // G)


def _chunk_lane(series, pos, chunks, reverse):
    return series * chunks + (chunks - 1 - pos if reverse else pos)


def _fold_kernel(alg, chunks, K, G, total, block, reverse, eps, identity_lane=None):
    r"""The fold (module docstring). With ``identity_lane`` (elements of more than
    :data:`MAX_TILE_ROWS` rows, whose every gather and select is costly to compile) the
    accumulator starts from the identity element (:func:`identity`) and a step past the
    group's last chunk gathers the identity element from that lane of ``elem_ref``: one gather
    in the kernel and no select of the element's rows, the first element combined with the
    identity (exact for ``A, b, C``; :math:`\eta, J` rebuilt from the split of ``J``, equal up
    to rounding). Otherwise the first element is loaded before the loop and a step past the
    last chunk is discarded by a select."""

    def kernel(elem_ref, out_ref):
        base = pl.program_id(0) * block
        g = jnp.minimum(base + jnp.arange(block), total - 1)
        series, k = g // K, g % K

        def load(j):
            pos = k * G + j
            lane = _chunk_lane(series, jnp.minimum(pos, chunks - 1), chunks, reverse)
            if identity_lane is not None:
                lane = jnp.where(pos < chunks, lane, identity_lane)
            return unpack(gather_fields(elem_ref, alg.element_shapes, lane), alg.element_shapes)

        def step(j, acc):
            new = pack(alg.combine(unpack(acc, alg.element_shapes), load(j), eps),
                       alg.element_shapes)
            if identity_lane is not None:
                return new
            valid = k * G + j < chunks
            return [ka.where(valid, x, y) for x, y in zip(new, acc)]

        if identity_lane is None:
            acc = jax.lax.fori_loop(1, G, step, pack(load(0), alg.element_shapes))
        else:
            start = pack(identity(alg, jnp.zeros(block, elem_ref.dtype)), alg.element_shapes)
            acc = jax.lax.fori_loop(0, G, step, start)
        store_rows(out_ref, acc, base, block)

    return kernel


def _series_kernel(alg, K, series_total, block, eps, trash):
    S = rows(alg.state_shapes)

    def kernel(group_ref, out_ref):
        s_raw = pl.program_id(0) * block + jnp.arange(block)
        s = jnp.minimum(s_raw, series_total - 1)
        live = s_raw < series_total

        def step(k, state):
            lane = s * K + k
            scatter_rows(out_ref, state, lane, live, trash)
            element = unpack(gather_fields(group_ref, alg.element_shapes, lane), alg.element_shapes)
            new = alg.apply(unpack(state, alg.state_shapes), element, eps)
            return pack(new, alg.state_shapes)

        zero = jnp.zeros(block, group_ref.dtype)
        jax.lax.fori_loop(0, K, step, [zero] * S)

    return kernel


def _propagate_kernel(alg, chunks, K, G, total, block, reverse, eps, trash):
    S = rows(alg.state_shapes)

    def kernel(elem_ref, enter_ref, out_ref):
        base = pl.program_id(0) * block
        g_raw = base + jnp.arange(block)
        g = jnp.minimum(g_raw, total - 1)
        series, k = g // K, g % K
        state = load_rows(enter_ref, S, base, block)

        def step(j, state):
            pos = k * G + j
            valid = pos < chunks
            lane = _chunk_lane(series, jnp.minimum(pos, chunks - 1), chunks, reverse)
            scatter_rows(out_ref, state, lane, valid & (g_raw < total), trash)
            element = unpack(gather_fields(elem_ref, alg.element_shapes, lane), alg.element_shapes)
            new = pack(alg.apply(unpack(state, alg.state_shapes), element, eps), alg.state_shapes)
            return [ka.where(valid, x, y) for x, y in zip(new, state)]

        jax.lax.fori_loop(0, G, step, state)

    return kernel


def call(kernel, inputs, out_shapes, lanes, block, interpret, num_warps=1):
    """One Pallas launch over ``ceil(lanes / block)`` programs with raw (``ANY``) refs; the
    kernel runs under :func:`probssm.kalman.kernel_algebra.opaque_zero` with a zero read from
    an extra int32 input."""
    kwargs = {}
    if not interpret:
        from jax.experimental.pallas import triton as plgpu

        from ._mlir_dialects import register

        register()  # else lowering retries a failing import per Triton value (module docstring)
        kwargs["compiler_params"] = plgpu.CompilerParams(num_warps=num_warps, num_stages=1)
    spec = pl.BlockSpec(memory_space=pl.ANY)

    def with_zero(zero_ref, *refs):
        with ka.opaque_zero(zero_ref[0]):
            kernel(*refs)

    with _collector_paused():
        return pl.pallas_call(
            with_zero, out_shape=out_shapes, grid=(-(-lanes // block),),
            in_specs=[spec] * (len(inputs) + 1), out_specs=[spec] * len(out_shapes),
            interpret=interpret, **kwargs,
        )(jnp.zeros((1,), jnp.int32), *inputs)


@contextlib.contextmanager
def _collector_paused():
    """Python's cyclic garbage collector off while a kernel is traced: tracing creates some
    10^5 objects that all stay alive (the kernel's jaxpr), which the collector would rescan
    again and again for nothing (a tenth of the tracing time of the ``n = 8`` programs on the
    H100 machine)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _with_identity(alg, elements):
    """``elements`` ``(R, N)`` with the identity element (:func:`identity`) appended as lane
    ``N``."""
    column = jnp.stack(pack(identity(alg, jnp.zeros((1,), elements.dtype)), alg.element_shapes))
    column = jnp.pad(column, ((0, elements.shape[0] - column.shape[0]), (0, 0)))
    return jnp.concatenate([elements, column], axis=1)


def padded(lanes, block):
    """``lanes`` rounded up to a whole number of blocks."""
    return -(-lanes // block) * block


def chunk_scan(alg, elements, series, chunks, *, reverse=False, group=None,
               block=DEFAULT_SCAN_BLOCK, interpret=False):
    """Exclusive chunk-level scan (module docstring).

    ``elements``: ``(R, N)`` with ``R >= rows(alg.element_shapes)`` rows (padded here to
    :func:`pow2` of them if fewer) and ``N >= series * chunks``, lane ``s * chunks + c`` holding
    chunk ``c`` of series ``s``. Returns the states ``(pow2(rows(alg.state_shapes)), N + block)``,
    lane ``s * chunks + c`` holding the prefix of the chunks before ``c`` in scan order (after
    ``c`` with ``reverse``) in its first ``rows(alg.state_shapes)`` rows; the other lanes and
    rows hold nothing of use.
    """
    dtype = elements.dtype
    eps = float(jnp.finfo(dtype).eps)
    E = pow2(rows(alg.element_shapes))
    if elements.shape[0] < E:
        elements = jnp.pad(elements, ((0, E - elements.shape[0]), (0, 0)))
    S = pow2(rows(alg.state_shapes))
    G, K = geometry(series, chunks, group)
    groups = series * K
    gp = padded(groups, block)
    fold_elements, identity_lane = elements, None
    if rows(alg.element_shapes) > MAX_TILE_ROWS:
        fold_elements, identity_lane = _with_identity(alg, elements), elements.shape[1]
    (group_elements,) = call(
        _fold_kernel(alg, chunks, K, G, groups, block, reverse, eps, identity_lane),
        [fold_elements], [jax.ShapeDtypeStruct((elements.shape[0], gp), dtype)], groups, block,
        interpret)
    (group_states,) = call(
        _series_kernel(alg, K, series, block, eps, trash=gp), [group_elements],
        [jax.ShapeDtypeStruct((S, gp + block), dtype)], series, block, interpret)
    N = elements.shape[1]
    (states,) = call(
        _propagate_kernel(alg, chunks, K, G, groups, block, reverse, eps, trash=N),
        [elements, group_states], [jax.ShapeDtypeStruct((S, N + block), dtype)],
        groups, block, interpret)
    return states


def chunk_scan_reference(alg, elements, series, chunks, *, reverse=False):
    """The same exclusive scan in plain JAX, one chunk after another (``lax.scan``, vectorised
    over series): the reference the kernels are tested against. Returns the states of the
    ``series * chunks`` lanes only, ``(rows(alg.state_shapes), series * chunks)``."""
    E, S = rows(alg.element_shapes), rows(alg.state_shapes)
    eps = float(jnp.finfo(elements.dtype).eps)
    per_series = elements[:E, :series * chunks].reshape(E, series, chunks)
    order = per_series[:, :, ::-1] if reverse else per_series

    def step(state, element):
        new = alg.apply(unpack(list(state), alg.state_shapes),
                        unpack(list(element), alg.element_shapes), eps)
        return jnp.stack(pack(new, alg.state_shapes)), state

    init = jnp.zeros((S, series), elements.dtype)
    _, states = jax.lax.scan(step, init, jnp.moveaxis(order, 2, 0))
    states = jnp.moveaxis(states, 0, 2)
    states = states[:, :, ::-1] if reverse else states
    return states.reshape(S, series * chunks)
