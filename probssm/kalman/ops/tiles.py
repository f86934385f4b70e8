"""Tiled memory access of the Pallas kernels: the rows of a field or element move as *one* tile.

Arrays are *lane-minor*: a field of ``r`` rows over ``N`` lanes is ``(r, N)``, each element or
state its fields' rows stacked (:func:`probssm.kalman.ops.lane_algebra.pack`).

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

import jax
import jax.numpy as jnp

from .lane_algebra import field_rows

MAX_TILE_ROWS = 64


def rows(shapes):
    """Number of rows of the stacked fields."""
    return sum(map(field_rows, shapes))


def pow2(count):
    """The smallest power of two :math:`\\ge` ``count`` (Triton's tensor shapes are powers of
    two)."""
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


def split_columns(tile, count):
    """The first ``count`` columns of a ``(block, R)`` tile as lane vectors ``(block,)``."""
    block, R = tile.shape
    if R == 1:
        return [tile.reshape(block)]
    parts = jax.lax.split(tile, [1] * R, axis=1)
    return [jax.lax.reshape(part, (block,)) for part in parts][:count]


def _tile(ref, lead, count, lanes, first=0):
    """Indexer of the ``(pow2(count), block)`` tile of rows ``first..first+pow2(count)-1`` and
    columns ``lanes`` of ``ref`` ``(*lead, R, N)``.

    ``lanes`` is clamped to ``0..N-1`` (a no-op on valid lanes): the clamp tells LLVM that the
    int32 offsets ``row * N + lane`` do not overflow, so every row's address becomes one
    constant offset from the lanes' address; without it LLVM's straight-line strength
    reduction spends seconds on a gathered ``n = 8`` element's addresses. It
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


def _step_tile(ref, count, rows, valid):
    """Indexer and mask of the ``(block, pow2(count))`` tile of columns ``0..count-1`` at the rows
    ``rows`` of a time-major ``ref`` ``(N, count)``; where ``valid`` is false the row should be
    out of bounds (``N``), an address no lane uses."""
    columns = jnp.arange(pow2(count), dtype=jnp.int32)
    mask = valid[:, None]
    if pow2(count) > count:  # only then: a mask constant along a row keeps the access vectorised
        mask = mask & (columns < count)[None, :]
    return (jnp.asarray(rows, jnp.int32)[:, None], columns[None, :]), mask


def load_steps(ref, count, rows, valid, other=0.0):
    """Columns ``0..count-1`` of the rows ``rows`` (an index vector ``(block,)``) of a time-major
    ``ref`` ``(N, count)`` (a step's observations of every lane, as one ``(block,
    pow2(count))`` tile; ``other`` where ``valid`` is false): a list of ``count`` lane
    vectors."""
    from jax.experimental.pallas import triton as plgpu

    index, mask = _step_tile(ref, count, rows, valid)
    return split_columns(plgpu.load(ref.at[index], mask=mask, other=other), count)


def gather_rows(ref, count, lanes):
    """Rows ``0..count-1`` of the lanes ``lanes`` (an index vector ``(block,)``) of ``ref``
    ``(R, N)``, one load."""
    return split_rows(ref[_tile(ref, (), count, lanes)], count)


def gather_fields(ref, shapes, lanes):
    """The fields ``shapes`` stacked in the rows of ``ref`` ``(R, N)`` at the lanes ``lanes``: a
    list of all rows' lane vectors, as :func:`gather_rows` of all rows. One load if they fill at
    most :data:`MAX_TILE_ROWS` rows, else one load per power of two in the binary expansion of
    the row count (a filtering element's 152 rows at ``n = 8``: 128 + 16 + 8), with no padding
    rows: LLVM's straight-line strength reduction, run by the GPU backend, takes time
    superlinear in the addresses of a tile (seconds for the fold's padded 256-row tiles at
    ``n = 8``)."""
    total = rows(shapes)
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
