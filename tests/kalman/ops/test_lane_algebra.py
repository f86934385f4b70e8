"""The lane layout of probssm.kalman.ops.lane_algebra: fields stacked as rows and back."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from probssm.kalman.ops import lane_algebra, tiles


_FIELD_SHAPES = st.one_of(
    st.integers(1, 8).map(lambda n: (n,)),
    st.tuples(st.integers(1, 8), st.integers(1, 8)),
    st.integers(1, 8).map(lane_algebra.symmetric))


@given(st.lists(_FIELD_SHAPES, min_size=1, max_size=5))
def test_stacked_rows_round_trip(shapes):
    """For any fields: ``unpack`` cuts ``rows(shapes)`` stacked rows into vectors, matrices
    and symmetric matrices (upper triangle row by row, mirrored), and ``pack`` restores the
    rows exactly; a symmetric field's rows are ``np.triu_indices`` of the matrix."""
    flat = list(range(tiles.rows(shapes)))
    fields = lane_algebra.unpack(flat, shapes)
    assert lane_algebra.pack(fields, shapes) == flat
    pos = 0
    for field, shape in zip(fields, shapes):
        if shape[0] == "symmetric":
            n = shape[1]
            M = np.asarray(field)
            np.testing.assert_array_equal(M, M.T)
            np.testing.assert_array_equal(M[np.triu_indices(n)],
                                          np.arange(pos, pos + n * (n + 1) // 2))
        else:
            np.testing.assert_array_equal(np.ravel(field),
                                          np.arange(pos, pos + int(np.prod(shape))))
        pos += lane_algebra.field_rows(shape)
