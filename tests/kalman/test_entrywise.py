"""The entry-by-entry small-matrix algebra (probssm.kalman._entrywise) and the size dispatch of
probssm.kalman._linalg, against NumPy/SciPy's LAPACK results."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from hypothesis import given, settings
from hypothesis import strategies as st

from probssm.kalman import _entrywise, _linalg

SETTINGS = settings(max_examples=10, deadline=None)


@pytest.fixture(autouse=True, scope="module")
def _float64():
    with jax.enable_x64(True):
        yield


def spd(rng, k, batch=()):
    a = rng.normal(size=batch + (k, k + 2))
    return a @ np.swapaxes(a, -1, -2) + 0.1 * np.eye(k)


@SETTINGS
@given(k=st.integers(1, 6), seed=st.integers(0, 2**31 - 1))
def test_cholesky_equals_lapack(k, seed):
    a = spd(np.random.default_rng(seed), k, batch=(3,))
    expected = np.linalg.cholesky(a)
    entries = _entrywise.lower_from_entries(_entrywise.cholesky_entries(jnp.asarray(a)))
    np.testing.assert_allclose(entries, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(_linalg.cholesky(jnp.asarray(a)), expected, rtol=1e-12, atol=1e-12)


@SETTINGS
@given(n=st.integers(1, 6), extra=st.integers(0, 4), seed=st.integers(0, 2**31 - 1))
def test_tria_is_a_lower_square_factor(n, extra, seed):
    """L L^T = a a^T with L lower triangular; |diag L| equals that of the R factor of a^T's QR."""
    a = np.random.default_rng(seed).normal(size=(2, n, n + extra))
    for L in (_entrywise.tria(jnp.asarray(a)), _linalg.tria(jnp.asarray(a))):
        L = np.asarray(L)
        np.testing.assert_array_equal(np.triu(L, 1), 0.0)
        np.testing.assert_allclose(L @ np.swapaxes(L, -1, -2), a @ np.swapaxes(a, -1, -2), rtol=1e-12, atol=1e-12)
        r = np.linalg.qr(np.swapaxes(a, -1, -2), mode="r")
        np.testing.assert_allclose(np.abs(np.diagonal(L, axis1=-2, axis2=-1)),
                                   np.abs(np.diagonal(r, axis1=-2, axis2=-1)), rtol=1e-10, atol=1e-12)


def test_tria_of_rank_deficient_rows():
    """A zero row (a state known exactly, a decoupled observation) gives an exactly zero pivot
    and finite gradients (sum L^2 = trace(a a^T), so its gradient is 2 a); a row repeating an
    earlier one gives a pivot at round-off level."""
    a = jnp.asarray([[1.0, 2.0, 0.5, 0.0], [0.0, 0.0, 0.0, 0.0], [0.3, -1.0, 2.0, 1.0]])
    L = np.asarray(_entrywise.tria(a))
    np.testing.assert_allclose(L @ L.T, np.asarray(a @ a.T), atol=1e-12)
    assert L[1, 1] == 0.0 and np.all(L[2:, 1] == 0.0)
    grad = jax.grad(lambda x: jnp.sum(_entrywise.tria(x) ** 2))(a)
    np.testing.assert_allclose(grad, 2 * a, atol=1e-12)
    repeated = jnp.concatenate([a, a[:1]], axis=0)
    L = np.asarray(_entrywise.tria(repeated))
    np.testing.assert_allclose(L @ L.T, np.asarray(repeated @ repeated.T), atol=1e-12)
    assert abs(L[3, 3]) < 1e-7


@SETTINGS
@given(k=st.integers(1, 6), cols=st.integers(1, 3), seed=st.integers(0, 2**31 - 1))
def test_triangular_solves_equal_scipy(k, cols, seed):
    rng = np.random.default_rng(seed)
    L = np.linalg.cholesky(spd(rng, k))
    b = rng.normal(size=(k, cols))
    np.testing.assert_allclose(_linalg.solve_lower(jnp.asarray(L), jnp.asarray(b)),
                               scipy.linalg.solve_triangular(L, b, lower=True), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(_linalg.solve_lower_transposed(jnp.asarray(L), jnp.asarray(b)),
                               scipy.linalg.solve_triangular(L, b, lower=True, trans=1), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(_linalg.solve_lower(jnp.asarray(L), jnp.asarray(b[:, 0])),
                               scipy.linalg.solve_triangular(L, b[:, 0], lower=True), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("unrolled", [True, False])
def test_forced_path_equals_the_size_choice(unrolled):
    rng = np.random.default_rng(1)
    a = jnp.asarray(spd(rng, 3))
    b = jnp.asarray(rng.normal(size=(3, 2)))
    np.testing.assert_allclose(_linalg.cholesky(a, unrolled=unrolled), _linalg.cholesky(a), atol=1e-13)
    L = _linalg.cholesky(a)
    np.testing.assert_allclose(_linalg.solve_lower(L, b, unrolled=unrolled), _linalg.solve_lower(L, b), atol=1e-12)
    t = _linalg.tria(jnp.asarray(rng.normal(size=(3, 5))), unrolled=unrolled)
    assert t.shape == (3, 3)


def test_cholesky_of_an_indefinite_matrix_is_nan_as_lapack():
    a = jnp.asarray([[1.0, 2.0], [2.0, 1.0]])
    assert np.isnan(np.asarray(_linalg.cholesky(a))).any()
    assert np.isnan(np.asarray(jnp.linalg.cholesky(a))).any()
