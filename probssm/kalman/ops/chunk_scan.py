"""Chunk-level scan of the fused kernels: a hierarchy of sequential folds, two Pallas kernels.

Input: one *element* per chunk of every series (``chunks`` per series, series after series), and
an element algebra (:mod:`.scan_elements`: ``combine(earlier, later)``, ``apply(state,
element)``). Output: for every chunk the *exclusive* prefix as a state, i.e. the first element of
the series applied to nothing up to the chunk's own element left out (the first chunk's state is
zero; its element ignores its entering state).

The elements are cut into groups of ``G`` consecutive ones (default :data:`DEFAULT_GROUP`), the
groups' elements into groups again, and so on up to one group a series (:func:`levels`):

1. **fold** (a lane per group, level by level upwards): the group's elements combined one after
   another, ``G - 1`` combinations in a ``fori_loop`` (the combination is traced and compiled
   once; for large elements ``G`` combinations from the identity element, :func:`_fold_kernel`);
2. **propagate** (a lane per group, level by level downwards, from the zero state at the top):
   from the state entering its group, each of the group's elements applied in turn, writing the
   state entering every element, i.e. the states entering the groups of the level below.

Depth about ``2 G log_G(chunks)`` element operations (46 for the 15 625 chunks of ``T = 1e6``
and ``G = 4``, against ``3 sqrt(chunks) = 375`` for a two-level hierarchy), work ``O(chunks)``,
two launches a level. With ``top`` (:func:`chunk_scan`; by default :func:`default_top`), the
folds stop at the first level of at most ``top`` elements a series, and one launch scans that
level by recursive doubling, a program holding whole series and meeting at a barrier between
rounds (:func:`_top_kernel`): at ``T = 1e6`` and ``top = 256``, 3 folds, one scan of
``log2 256 = 8`` rounds and 3 propagations instead of 6 folds and 7 propagations; for 1024
series of 32 chunks the chunks themselves, in one launch instead of five. The upper levels are
latency-bound, each launch a chain of dependent element operations whatever its width, so
fewer launches are faster (``benchmarks/README.md``).
Every level runs the *same* two kernels: a level's geometry (element count, group size,
direction) is an input read at run time and every level's arrays have the same shape, so the
Triton calls are identical and XLA compiles each kernel once (its kernel cache is keyed by the
call's configuration). ``reverse=True`` runs the scan from each series' last chunk to its first
(the smoother); the levels above the chunks are stored in scan order.

Arrays are *lane-minor*: a field of ``r`` rows over ``N`` lanes is ``(r, N)``, each element or
state is its fields' rows stacked (:func:`probssm.kalman.ops.lane_algebra.pack`), so lane
vectors load and store contiguously. A symmetric field (a covariance, an information matrix)
is its upper triangle (:func:`probssm.kalman.ops.lane_algebra.symmetric`), in the arrays and in
every loop's carry: a ``fori_loop`` carries each entry as its own value, so a
mirrored entry would cost a register and a select (at ``n = 8`` the filtering element is 152
rows instead of 208), which shows in the compile and run times of the larger states.

Memory access: :mod:`.tiles`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from . import lane_algebra as ka
from .lane_algebra import pack, unpack
from .launch import call, padded
from .scan_elements import identity
from .tiles import MAX_TILE_ROWS, gather_fields, load_rows, pow2, rows, scatter_rows, store_rows

DEFAULT_SCAN_BLOCK = 32
DEFAULT_GROUP = 4
DOUBLING_LANES = 256  # lanes (eight warps) of the top level's program under default_top


# The state dimension at which the top level's doubling was measured faster than folding: at
# n = 4 the log-likelihood gains 7-13 % and the smoother 3-5 % of device time; at n = 2 it is a
# wash that costs compile time; other sizes were not measured (benchmarks/README.md).
_DOUBLING_STATE_DIMS = (4,)


def default_top(alg):
    """``top`` of :func:`chunk_scan` when none is given: :data:`DOUBLING_LANES` for the state
    dimensions where the doubling was measured exact and faster than folding up to one group a
    series (``n = 4``, ``benchmarks/README.md``), 0 (folds only) for the others (elements of more
    than :data:`~probssm.kalman.ops.tiles.MAX_TILE_ROWS` rows are folded whatever ``top``)."""
    return DOUBLING_LANES if alg.state_shapes[0][0] in _DOUBLING_STATE_DIMS else 0


def levels(chunks, group=DEFAULT_GROUP):
    """The hierarchy of the scan over ``chunks`` elements a series with groups of ``group``:
    ``(count, groups, G)`` per level, bottom up, where a level of ``count`` elements a series is
    cut into ``groups = ceil(count / G)`` groups of ``G = min(group, count)``; the last level has
    one group a series."""
    if group < 2:
        raise ValueError(f"chunk scan: group must be at least 2, got {group}")
    out, count = [], chunks
    while True:
        G = min(group, count)
        out.append((count, -(-count // G), G))
        if out[-1][1] == 1:
            return out
        count = out[-1][1]


def _scan_lane(series, count, pos, reverse):
    """Lane of the element at scan position ``pos`` of a series (``reverse``: counted from its
    last element)."""
    return series * count + jnp.where(reverse == 1, count - 1 - pos, pos)


def _geometry(geom_ref, series, block):
    """A level's geometry (read at run time, so that every level runs the same kernel) and this
    program's lanes: ``count, G, reverse``, the lanes' series and group (clamped to the last
    one) and whether the lane holds a group."""
    count, groups, G, reverse = (geom_ref[i] for i in range(4))
    total = series * groups
    g_raw = pl.program_id(0) * block + jnp.arange(block, dtype=jnp.int32)
    g = jnp.minimum(g_raw, total - 1)
    return count, G, reverse, g // groups, g % groups, g_raw < total


def _fold_kernel(alg, series, block, eps, identity_lane=None):
    r"""A level's fold (module docstring): each lane combines its group's ``G`` elements in
    scan order, in a ``fori_loop`` (the combination is traced and compiled once), and stores the
    group element at its own lane. With ``identity_lane`` (elements of more than
    :data:`MAX_TILE_ROWS` rows, whose every gather and select is costly to compile) the
    accumulator starts from the identity element (:func:`identity`), a step past the group's
    last element gathers the identity element from that lane, and the kernel writes it to the
    same lane of its output for the next level: one gather in the loop and no select of the
    element's rows (the first element combined with the identity is exact for ``A, b, C``;
    :math:`\eta, J` are rebuilt from the split of ``J``, equal up to rounding). Otherwise the
    first element is loaded before the loop and a step past the last one is discarded by a
    select."""

    def kernel(geom_ref, elem_ref, out_ref):
        count, G, reverse, s, k, _ = _geometry(geom_ref, series, block)

        def load(j):
            pos = k * G + j
            lane = _scan_lane(s, count, jnp.minimum(pos, count - 1), reverse)
            if identity_lane is not None:
                lane = jnp.where(pos < count, lane, identity_lane)
            return unpack(gather_fields(elem_ref, alg.element_shapes, lane), alg.element_shapes)

        def step(j, acc):
            new = pack(alg.combine(unpack(acc, alg.element_shapes), load(j), eps),
                       alg.element_shapes)
            if identity_lane is not None:
                return new
            return [ka.where(k * G + j < count, x, y) for x, y in zip(new, acc)]

        base = pl.program_id(0) * block
        if identity_lane is None:
            acc = jax.lax.fori_loop(1, G, step, pack(load(0), alg.element_shapes))
        else:
            one = pack(identity(alg, jnp.zeros(block, elem_ref.dtype)), alg.element_shapes)
            acc = jax.lax.fori_loop(0, G, step, one)
            store_rows(out_ref, one, identity_lane, block)
        store_rows(out_ref, acc, base, block)

    return kernel


def _propagate_kernel(alg, series, block, eps, trash):
    """A level's propagation (module docstring): from the state entering its group (lane ``g``
    of ``enter_ref``), each lane applies the group's elements in turn, storing the state
    entering each at that element's lane."""
    S = rows(alg.state_shapes)

    def kernel(geom_ref, elem_ref, enter_ref, out_ref):
        count, G, reverse, s, k, live = _geometry(geom_ref, series, block)
        state = load_rows(enter_ref, S, pl.program_id(0) * block, block)

        def step(j, state):
            pos = k * G + j
            valid = pos < count
            lane = _scan_lane(s, count, jnp.minimum(pos, count - 1), reverse)
            scatter_rows(out_ref, state, lane, valid & live, trash)
            element = unpack(gather_fields(elem_ref, alg.element_shapes, lane), alg.element_shapes)
            new = pack(alg.apply(unpack(state, alg.state_shapes), element, eps), alg.state_shapes)
            return [ka.where(valid, x, y) for x, y in zip(new, state)]

        jax.lax.fori_loop(0, G, step, state)

    return kernel


def _top_kernel(alg, series, count, reverse, block, eps, trash, interpret):
    """The scan of the top level (:func:`chunk_scan` with ``top``): each program holds the
    ``count`` elements of ``block // P`` whole series (``P = pow2(count)`` lanes a series) and
    scans them in ``log2 P`` rounds of recursive doubling (Hillis & Steele 1986): in
    round ``k`` every lane publishes its running prefix, the CTA meets at a barrier, and a lane
    at position ``p >= 2^k`` combines the prefix of lane ``p - 2^k`` before its own. The rounds
    alternate between the two halves of the scratch output ``buf_ref``, so a round's stores
    never overwrite what a slower lane of the round before is still reading. At the end lane
    ``p`` holds the prefix of positions ``0..p``; applied to the zero state, it is the state
    entering position ``p + 1``, stored there (the last position stores the zero state at
    position 0)."""
    P = pow2(count)
    per_program, rounds = block // P, P.bit_length() - 1
    shapes, state_shapes = alg.element_shapes, alg.state_shapes

    def kernel(elem_ref, out_ref, buf_ref):
        from jax.experimental.pallas import triton as plgpu

        program = pl.program_id(0)
        base = program * block
        j = jnp.arange(block, dtype=jnp.int32)
        s, pos = program * per_program + j // P, j % P
        live = (s < series) & (pos < count)
        s = jnp.minimum(s, series - 1)
        acc = gather_fields(elem_ref, shapes, _scan_lane(s, count, jnp.minimum(pos, count - 1),
                                                         reverse))
        width = buf_ref.shape[-1] // 2

        def round_(k, acc):
            k = jnp.asarray(k, jnp.int32)
            half = k % 2 * width + base
            store_rows(buf_ref, acc, half, block)
            if not interpret:  # the interpreter runs a program's lanes as one array operation
                plgpu.debug_barrier()
            d = jnp.left_shift(jnp.int32(1), k)
            partner = unpack(gather_fields(buf_ref, shapes, half + jnp.maximum(j - d, 0)), shapes)
            new = pack(alg.combine(partner, unpack(acc, shapes), eps), shapes)
            return [ka.where(pos >= d, x, y) for x, y in zip(new, acc)]

        acc = jax.lax.fori_loop(0, rounds, round_, acc)
        zero = jnp.zeros(block, elem_ref.dtype)
        nothing = [zero] * rows(state_shapes)
        state = pack(alg.apply(unpack(nothing, state_shapes), unpack(acc, shapes), eps),
                     state_shapes)
        last = pos == count - 1
        state = [ka.where(last, zero, x) for x in state]
        target = _scan_lane(s, count, jnp.where(last, 0, pos + 1), reverse)
        scatter_rows(out_ref, state, target, live, trash)

    return kernel


def _with_identity(alg, elements, block):
    """``elements`` ``(R, N)`` with the identity element (:func:`identity`) appended in
    ``block`` lanes from lane ``N``."""
    column = jnp.stack(pack(identity(alg, jnp.zeros((1,), elements.dtype)), alg.element_shapes))
    column = jnp.pad(column, ((0, elements.shape[0] - column.shape[0]), (0, 0)))
    return jnp.concatenate([elements, jnp.tile(column, (1, block))], axis=1)


def _top_level(hierarchy, top):
    """The level scanned by :func:`_top_kernel`: the lowest whose count a series is at most
    ``top`` (``None`` without ``top``: every level folded, then propagated from the zero
    state). ``top``: 0, or a power of two of at least 2 (lanes of a program)."""
    if not top:
        return None
    if top < 2 or top & (top - 1):
        raise ValueError(f"chunk scan: top must be 0 or a power of two >= 2, got {top}")
    return next((level for level, (count, _, _) in enumerate(hierarchy) if count <= top), None)


def chunk_scan(alg, elements, series, chunks, *, reverse=False, group=DEFAULT_GROUP,
               block=DEFAULT_SCAN_BLOCK, top=None, interpret=False):
    """Exclusive chunk-level scan (module docstring).

    ``elements``: ``(R, N)`` with ``R >= rows(alg.element_shapes)`` rows (padded here to
    :func:`pow2` of them if fewer) and ``N >= series * chunks``, lane ``s * chunks + c`` holding
    chunk ``c`` of series ``s``. ``group``: elements a group at every level (at least 2).
    ``top`` (0 or a power of two): the folds stop at the first level of at most ``top``
    elements a series, which one launch scans by recursive doubling, ``top`` lanes a program
    (:func:`_top_kernel`), before the propagations down; 0 folds up to one group a series, and
    so do elements of more than :data:`MAX_TILE_ROWS` rows whatever ``top``; ``None``:
    :func:`default_top`.
    Returns the states ``(pow2(rows(alg.state_shapes)), N + max(block, top))`` (at least), lane
    ``s * chunks + c`` holding the prefix of the chunks before ``c`` in scan order (after ``c``
    with ``reverse``) in its first ``rows(alg.state_shapes)`` rows; the other lanes and rows
    hold nothing of use.
    """
    top = default_top(alg) if top is None else top
    dtype = elements.dtype
    eps = float(jnp.finfo(dtype).eps)
    E = pow2(rows(alg.element_shapes))
    if elements.shape[0] < E:
        elements = jnp.pad(elements, ((0, E - elements.shape[0]), (0, 0)))
    N = padded(elements.shape[1], block)
    if elements.shape[1] < N:
        elements = jnp.pad(elements, ((0, 0), (0, N - elements.shape[1])))
    identity_lane = None
    if rows(alg.element_shapes) > MAX_TILE_ROWS:
        elements, identity_lane = _with_identity(alg, elements, block), N
    hierarchy = levels(chunks, group)
    # Large elements are folded at every level: at n = 8 the top kernel's Triton compile did
    # not finish in minutes (benchmarks/probes/triton_compile_proxy.py).
    top_level = None if identity_lane is not None else _top_level(hierarchy, top)
    # Every level has the same arrays, grid and kernels (its geometry is an input), so XLA
    # compiles each kernel once for all levels (identical Triton calls share one compilation),
    # and each kernel is traced and lowered once (a jitted function called at every level).
    lanes = series * hierarchy[0][1]
    trash = elements.shape[1]
    states_shape = jax.ShapeDtypeStruct(
        (pow2(rows(alg.state_shapes)), trash + max(block, top)), dtype)
    fold = jax.jit(lambda geometry, below: call(
        _fold_kernel(alg, series, block, eps, identity_lane), [geometry, below],
        [jax.ShapeDtypeStruct(elements.shape, dtype)], lanes, block, interpret)[0])
    propagate = jax.jit(lambda geometry, level_elements, entering: call(
        _propagate_kernel(alg, series, block, eps, trash),
        [geometry, level_elements, entering], [states_shape], lanes, block, interpret)[0])

    def geometry(level, count, groups, G):
        return jnp.array([count, groups, G, int(reverse and level == 0)], jnp.int32)

    per_level = [elements]
    for level in range(len(hierarchy) - 1 if top_level is None else top_level):
        per_level.append(fold(geometry(level, *hierarchy[level]), per_level[-1]))
    if top_level is None:
        states = jnp.zeros(states_shape.shape, dtype)  # entering the top level: nothing yet
        below = len(hierarchy)
    else:
        count = hierarchy[top_level][0]
        top_lanes = padded(series * pow2(count), top)
        buffer = jax.ShapeDtypeStruct((E, 2 * top_lanes), dtype)
        states = call(
            _top_kernel(alg, series, count, reverse and top_level == 0, top, eps, trash,
                        interpret),
            [per_level[top_level]], [states_shape, buffer], top_lanes, top, interpret,
            num_warps=min(max(top // 32, 1), 8))[0]
        below = top_level
    for level in reversed(range(below)):
        states = propagate(geometry(level, *hierarchy[level]), per_level[level], states)
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
