"""The chunk scan's Pallas kernels (probssm.kalman.ops.chunk_scan: folds, propagations and the
top level's recursive doubling) against its sequential reference, on the CPU through the Pallas
interpreter."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from kalman.ops.arrays import max_rel, psd

from probssm.kalman.ops import chunk_scan, scan_elements, tiles


def _stacked_rows(fields, shapes):
    """Fields ``(N, *shape)`` as the kernels' lane-minor rows ``(R, N)`` (a symmetric field's
    upper triangle, row by row)."""
    rows = []
    for f, shape in zip(fields, shapes):
        if shape[0] == "symmetric":
            i, j = np.triu_indices(shape[1])
            rows.append(f[:, i, j].T)
        else:
            rows.append(f.reshape(len(f), -1).T)
    return np.concatenate(rows)


def _scan_inputs(rng, n, N):
    """``N`` random elements of each algebra as the kernels' lane-minor rows: ``(algebra,
    elements)`` for the filtering and the backward algebra (under ``jax.enable_x64``)."""
    filtering = [0.5 * rng.normal(size=(N, n, n)), rng.normal(size=(N, n)), psd(rng, (N,), n),
                 rng.normal(size=(N, n)), psd(rng, (N,), n, 0.3)]
    backward = [0.5 * rng.normal(size=(N, n, n)), rng.normal(size=(N, n)), psd(rng, (N,), n)]
    return [(alg, jnp.asarray(_stacked_rows(fields, alg.element_shapes)))
            for alg, fields in ((scan_elements.filter_algebra(n), filtering),
                                (scan_elements.backward_algebra(n), backward))]


@pytest.mark.parametrize("reverse,group", [(False, 3), (True, 3), (False, 2), (True, 2), (True, 7)])
def test_chunk_scan_kernels_equal_the_reference(reverse, group):
    """The scan kernels (folds up the levels, propagations down) against the sequential
    reference, for both element algebras and several series: 7 -> 3 -> 1 groups (partial last
    groups), 7 -> 4 -> 2 -> 1 (three levels) and one group a series (no fold)."""
    rng = np.random.default_rng(12 + reverse)
    n, series, chunks, N = 3, 2, 7, 16
    with jax.enable_x64(True):
        for alg, elements in _scan_inputs(rng, n, N):
            ref = chunk_scan.chunk_scan_reference(alg, elements, series, chunks, reverse=reverse)
            out = chunk_scan.chunk_scan(alg, elements, series, chunks, reverse=reverse,
                                        group=group, block=2, top=0, interpret=True)
            lanes = series * chunks
            first = np.arange(lanes) % chunks == (chunks - 1 if reverse else 0)
            # The first chunk's state is "nothing yet"; the algebras ignore it. The states come
            # back with their rows padded to a power of two.
            assert out.shape[0] == tiles.pow2(ref.shape[0])
            assert max_rel(out[:ref.shape[0], :lanes][:, ~first], ref[:, ~first]) < 1e-12


@pytest.mark.parametrize("reverse", [False, True])
def test_deep_chunk_scan_equals_the_reference(reverse):
    """Five levels with partial groups at every level (21 -> 11 -> 6 -> 3 -> 2 -> 1 chunks a
    series in groups of 2), three series, the filtering algebra."""
    rng = np.random.default_rng(21 + reverse)
    n, series, chunks = 2, 3, 21
    N = series * chunks
    assert len(chunk_scan.levels(chunks, 2)) == 5
    with jax.enable_x64(True):
        fields = [0.5 * rng.normal(size=(N, n, n)), rng.normal(size=(N, n)), psd(rng, (N,), n),
                  rng.normal(size=(N, n)), psd(rng, (N,), n, 0.3)]
        alg = scan_elements.filter_algebra(n)
        elements = jnp.asarray(_stacked_rows(fields, alg.element_shapes))
        ref = chunk_scan.chunk_scan_reference(alg, elements, series, chunks, reverse=reverse)
        out = chunk_scan.chunk_scan(alg, elements, series, chunks, reverse=reverse, group=2,
                                    block=4, top=0, interpret=True)
    first = np.arange(N) % chunks == (chunks - 1 if reverse else 0)
    assert max_rel(out[:ref.shape[0], :N][:, ~first], ref[:, ~first]) < 1e-12


@pytest.mark.parametrize("top,reverse", [(4, False), (8, True), (32, False), (32, True),
                                         (64, False), (64, True)])
def test_top_level_scan_equals_the_reference(top, reverse):
    """Folds up to the first level of at most ``top`` elements a series, recursive doubling
    there, propagations down (21 -> 11 -> 6 -> 3 -> 2 -> 1 chunks a series in groups of 2):
    the doubling at the fourth level (``top = 4``), the third (8) or the chunks themselves (32:
    one series a program; 64: two series a program, the second program half empty), both
    algebras, three series."""
    rng = np.random.default_rng(31 + top + reverse)
    n, series, chunks = 2, 3, 21
    N = series * chunks
    hierarchy = chunk_scan.levels(chunks, 2)
    assert chunk_scan._top_level(hierarchy, top) == {4: 3, 8: 2, 32: 0, 64: 0}[top]
    with jax.enable_x64(True):
        for alg, elements in _scan_inputs(rng, n, N):
            ref = chunk_scan.chunk_scan_reference(alg, elements, series, chunks, reverse=reverse)
            out = chunk_scan.chunk_scan(alg, elements, series, chunks, reverse=reverse, group=2,
                                        block=4, top=top, interpret=True)
            first = np.arange(N) % chunks == (chunks - 1 if reverse else 0)
            assert max_rel(out[:ref.shape[0], :N][:, ~first], ref[:, ~first]) < 1e-12
            # The first chunk's state is the zero state ("nothing yet"), written by the scan.
            np.testing.assert_array_equal(out[:ref.shape[0], :N][:, first], 0.0)


def test_top_must_be_a_power_of_two():
    with pytest.raises(ValueError, match="top must be 0 or a power of two"):
        chunk_scan._top_level(chunk_scan.levels(21, 2), 12)


def test_chunk_scan_levels():
    """The hierarchy: counts shrink by the group size up to one group a series; a group below
    2 is refused."""
    assert chunk_scan.levels(7813, 8) == [(7813, 977, 8), (977, 123, 8), (123, 16, 8),
                                           (16, 2, 8), (2, 1, 2)]
    assert chunk_scan.levels(1, 8) == [(1, 1, 1)]
    with pytest.raises(ValueError, match="group must be at least 2"):
        chunk_scan.levels(10, 1)


@given(st.integers(1, 10**6), st.integers(2, 64))
def test_chunk_scan_levels_cover_every_element(chunks, group):
    """For any count and group size: each level's groups hold all of its elements
    (``G (groups - 1) < count <= G groups``), the next level counts those groups, the last
    level is one group, and the depth is about ``2 G log_G(chunks)`` (at most one level more
    than the ceiling of the logarithm)."""
    hierarchy = chunk_scan.levels(chunks, group)
    assert hierarchy[0][0] == chunks and hierarchy[-1][1] == 1
    for (count, groups, G), above in zip(hierarchy, hierarchy[1:] + [None]):
        assert G == min(group, count) and G * (groups - 1) < count <= G * groups
        if above is not None:
            assert above[0] == groups
    assert len(hierarchy) <= max(1, int(np.ceil(np.log(chunks) / np.log(group) - 1e-9)) + 1)


def test_default_top_level():
    """The default top level (:func:`~probssm.kalman.ops.chunk_scan.default_top`): recursive
    doubling in programs of 256 lanes at ``n = 4``, where it was measured faster, folds only
    for other state sizes; the default scan equals the reference (both algebras, both
    directions, two series of 21 chunks: the doubling at the chunks)."""
    assert [chunk_scan.default_top(scan_elements.filter_algebra(n)) for n in (1, 2, 3, 4, 5, 8)] == [
        0, 0, 0, 256, 0, 0]
    assert chunk_scan.default_top(scan_elements.backward_algebra(4)) == 256
    assert chunk_scan.default_top(scan_elements.backward_algebra(6)) == 0
    rng = np.random.default_rng(41)
    n, series, chunks = 4, 2, 21
    N = series * chunks
    with jax.enable_x64(True):
        for reverse in (False, True):
            for alg, elements in _scan_inputs(rng, n, N):
                ref = chunk_scan.chunk_scan_reference(alg, elements, series, chunks,
                                                      reverse=reverse)
                out = chunk_scan.chunk_scan(alg, elements, series, chunks, reverse=reverse,
                                            interpret=True)
                first = np.arange(N) % chunks == (chunks - 1 if reverse else 0)
                assert max_rel(out[:ref.shape[0], :N][:, ~first], ref[:, ~first]) < 1e-12
