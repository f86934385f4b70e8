"""SquaredExponential: the documented sup-norm bound holds at every lengthscale, the order
follows the tolerance, and the SDE is consistent."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import linalg
from sklearn.gaussian_process import kernels as sk

from probssm.gp import Matern32, SquaredExponential
from probssm.gp.kernels.squared_exponential import MAX_ORDER, approximation_error, order_for

from .state_space import implied_covariance, implied_noise
from .test_cosine import compiled, gradient_check


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


# Two orders only: each new state dimension compiles a new matrix exponential (about 1 s).
ORDER = 6
EDGE = approximation_error(MAX_ORDER)  # the smallest supported tolerance


def times(seed, lengthscale, n=12):
    """Unsorted times over four lengthscales, dense where the error is largest (0.6..0.95
    lengthscales apart), with one repeated time stamp."""
    t = lengthscale * np.random.default_rng(seed).uniform(0.0, 4.0, n)
    t[4] = t[9]
    return t


def relative_error(kernel, t):
    return np.abs(implied_covariance(compiled(kernel), t) - np.asarray(kernel(t))).max() / float(kernel.variance)


def test_order_follows_the_tolerance():
    errors = [approximation_error(n) for n in range(1, MAX_ORDER + 1)]
    assert all(b < a / 1.9 for a, b in itertools.pairwise(errors))  # halves with every order
    tolerances = [1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6]
    orders = [order_for(tol) for tol in tolerances]
    assert orders == [3, 5, 8, 11, 15, 18]
    for tol, n in zip(tolerances, orders):
        assert approximation_error(n) <= tol < approximation_error(n - 1)
    assert SquaredExponential().order == 8
    assert SquaredExponential(tolerance=EDGE).order == MAX_ORDER


@pytest.mark.parametrize("lengthscale, tolerance", [
    (1e-3, approximation_error(ORDER)), (1.0, approximation_error(ORDER)), (1e3, approximation_error(ORDER)),
    (2.0, EDGE),
])
def test_documented_bound(lengthscale, tolerance):
    kernel = SquaredExponential(lengthscale, variance=2.5, tolerance=tolerance)
    # The bound is a supremum: it holds, and these times come within 30 % of it.
    error = relative_error(kernel, times(0, lengthscale))
    assert 0.7 * kernel.approximation_error < error <= kernel.approximation_error <= tolerance


@settings(max_examples=12, deadline=None)
@given(log_lengthscale=st.floats(-4.0, 4.0), variance=st.floats(1e-3, 1e3), seed=st.integers(0, 2**16))
def test_bound_for_every_lengthscale(log_lengthscale, variance, seed):
    kernel = SquaredExponential(10.0**log_lengthscale, variance=variance, tolerance=approximation_error(ORDER))
    # The bound is attained (a supremum), so the state-space covariance's round-off (~1e-9 of
    # it, from the products of the 6 x 6 transition) may just cross it.
    assert relative_error(kernel, times(seed, kernel.lengthscale)) <= approximation_error(ORDER) * (1 + 1e-6)


def test_sde_is_consistent():
    kernel = SquaredExponential(0.3, variance=2.0, tolerance=EDGE)
    F, L, Qc, H, P = kernel.sde()
    np.testing.assert_allclose(F @ P + P @ F.T + L @ Qc @ L.T, 0.0, atol=1e-9 * np.abs(F @ P).max())
    np.testing.assert_allclose(np.diag(P), 2.0, rtol=1e-15)  # k_N(0) = sigma^2 exactly
    assert float(H @ P @ H) == 2.0
    np.testing.assert_allclose(F * 0.3, SquaredExponential(1.0, tolerance=EDGE).sde().feedback, rtol=1e-15)
    Q = implied_noise(compiled(kernel), times(1, 0.3))
    np.testing.assert_array_equal(Q, np.swapaxes(Q, 1, 2))
    assert np.linalg.eigvalsh(Q).min() >= -1e-12 * 2.0


def test_product_with_matern():
    """A product assembles the SE's state-space form exactly (the approximation stays the
    SE's own); sums are block-diagonal, tested once for all kernels in test_trends."""
    se, matern = SquaredExponential(1.5, variance=0.7, tolerance=approximation_error(ORDER)), Matern32(2.0)
    t = times(2, 1.5)
    np.testing.assert_allclose(implied_covariance(compiled(se * matern), t),
                               implied_covariance(compiled(se), t) * np.asarray(matern(t)), atol=1e-10)


def test_closed_form_matches_scikit_learn():
    X = np.random.default_rng(3).uniform(-3.0, 3.0, (9, 1))
    np.testing.assert_allclose(SquaredExponential(0.8, variance=1.7)(X),
                               (sk.ConstantKernel(1.7) * sk.RBF(0.8))(X), rtol=1e-12, atol=1e-15)


def test_gradients():
    gradient_check(SquaredExponential(1.3, variance=0.8, tolerance=approximation_error(ORDER)))


def test_pytree_and_repr():
    kernel = SquaredExponential(2.0, tolerance=approximation_error(ORDER))
    assert repr(kernel) == f"SquaredExponential(variance=1, lengthscale=2, order={ORDER})"
    leaves, tree = jax.tree_util.tree_flatten(kernel)
    assert leaves == [1.0, 2.0]
    assert jax.tree_util.tree_unflatten(tree, leaves) == kernel
    A, _ = compiled(kernel).transition(np.float64(0.0), np.float64(0.5))  # the hyperparameters traced
    np.testing.assert_allclose(A, linalg.expm(np.asarray(kernel.sde().feedback) * 0.5), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("kwargs, name", [
    ({"lengthscale": 0.0}, "lengthscale"), ({"lengthscale": np.nan}, "lengthscale"),
    ({"variance": -1.0}, "variance"), ({"tolerance": 1e-8}, "tolerance"), ({"tolerance": 0.0}, "tolerance"),
    ({"order": 0}, "order"), ({"order": MAX_ORDER + 1}, "order"),
])
def test_bad_settings(kwargs, name):
    with pytest.raises(ValueError, match=name):
        SquaredExponential(**kwargs)


def test_dtype_follows_inputs():
    with jax.enable_x64(False):
        assert all(x.dtype == jnp.float32 for x in SquaredExponential(order=4).sde())
