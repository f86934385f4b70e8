"""Periodic and QuasiPeriodic: the truncation bound holds over the supported lengthscales, the
Bessel weights are right and differentiable, the product with Matérn is exact."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special
from sklearn.gaussian_process import kernels as sk

from probssm.gp import Matern32, Matern52, Periodic, QuasiPeriodic
from probssm.gp.kernels.periodic import MIN_LENGTHSCALE, harmonic_weights, truncation_error

from .state_space import implied_covariance, implied_noise
from .test_cosine import compiled, gradient_check


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def times(seed, period, n=12):
    """Unsorted times over three periods with one repeated time stamp."""
    t = period * np.random.default_rng(seed).uniform(0.0, 3.0, n)
    t[1] = t[8]
    return t


def relative_error(kernel, t):
    return np.abs(implied_covariance(compiled(kernel), t) - np.asarray(kernel(t))).max() / float(kernel.variance)


@pytest.mark.parametrize("lengthscale", [MIN_LENGTHSCALE, 0.3, 1.0, 10.0, 1e4])
def test_weights_are_the_scaled_bessel_functions(lengthscale):
    x = lengthscale**-2.0
    weights = np.asarray(harmonic_weights(lengthscale, 120))
    expected = special.ive(np.arange(121), x) * np.r_[1.0, np.full(120, 2.0)]
    np.testing.assert_allclose(weights, expected, rtol=1e-12, atol=1e-15)
    assert weights.sum() == pytest.approx(1.0, abs=1e-13)  # e^{-x} (I_0 + 2 sum I_j) = 1


def test_order_follows_tolerance_and_lengthscale():
    orders = {(ell, tol): Periodic(lengthscale=ell, tolerance=tol).order
              for ell in (0.1, 0.3, 1.0, 10.0) for tol in (1e-3, 1e-6, 1e-12)}
    assert orders[1.0, 1e-6] == 7 and orders[0.1, 1e-6] == 49
    for ell in (0.1, 0.3, 1.0, 10.0):
        assert orders[ell, 1e-3] < orders[ell, 1e-6] < orders[ell, 1e-12]
        for tol in (1e-3, 1e-6, 1e-12):
            J = orders[ell, tol]
            assert truncation_error(ell, J) <= tol < truncation_error(ell, J - 1)
    for tol in (1e-3, 1e-6, 1e-12):
        assert orders[0.1, tol] > orders[0.3, tol] > orders[1.0, tol] > orders[10.0, tol]


@pytest.mark.parametrize("lengthscale", [MIN_LENGTHSCALE, 1.0, 1e4])
def test_documented_bound(lengthscale):
    kernel = Periodic(2.0, lengthscale=lengthscale, variance=3.0)
    error = relative_error(kernel, times(0, 2.0))
    # The bound is attained at tau = 0, which every covariance matrix has on its diagonal.
    assert error == pytest.approx(kernel.truncation_error, rel=1e-6, abs=1e-15)
    assert error <= kernel.tolerance


@settings(max_examples=12, deadline=None)
@given(lengthscale=st.floats(0.5, 20.0), period=st.floats(0.5, 50.0), variance=st.floats(1e-3, 1e3),
       seed=st.integers(0, 2**16))
def test_bound_law(lengthscale, period, variance, seed):
    # A fixed order: one compiled program for every example.
    kernel = Periodic(period, lengthscale=lengthscale, variance=variance, order=10)
    error = relative_error(kernel, times(seed, period))
    assert error <= truncation_error(lengthscale, 10) + 1e-12


def test_state_space_form():
    kernel = Periodic(3.0, lengthscale=0.7, variance=2.0, order=5)
    F, L, Qc, H, P = compiled(kernel).sde()
    assert F.shape == P.shape == (11, 11) and H.shape == (11,)
    np.testing.assert_allclose(F @ P + P @ F.T + L @ Qc @ L.T, 0.0, atol=1e-14)
    assert float(H @ P @ H) == pytest.approx(2.0 * (1 - truncation_error(0.7, 5)), rel=1e-14)
    assert np.all(implied_noise(compiled(kernel), times(1, 3.0)) == 0.0)
    constant = Periodic(lengthscale=2.0, order=0)  # harmonic 0 alone: a random constant
    assert constant.state_dim == 1
    assert float(compiled(constant).marginal_cov(0.0)[0, 0]) == pytest.approx(special.ive(0, 0.25), rel=1e-14)


def test_quasi_periodic():
    kernel = QuasiPeriodic(12.0)
    assert repr(kernel) == ("QuasiPeriodic(variance=1, period=12, lengthscale=1, decay=120, "
                            "matern=Matern32, order=7)")
    assert kernel.hyperparameters == {"variance": 1.0, "period": 12.0, "lengthscale": 1.0, "decay": 120.0}
    assert kernel.state_dim == 30
    t = times(2, 12.0)
    implied = implied_covariance(compiled(kernel), t)
    assert np.abs(implied - np.asarray(kernel(t))).max() <= kernel.tolerance
    # Periodic * Matern32: the product's state-space form is exact, given the periodic factor's.
    periodic, matern = Periodic(12.0), Matern32(120.0)
    np.testing.assert_allclose(implied, implied_covariance(compiled(periodic), t) * np.asarray(matern(t)), atol=1e-10)
    np.testing.assert_allclose(kernel(t), (periodic * matern)(t), rtol=1e-15)
    rougher = QuasiPeriodic(12.0, lengthscale=2.0, variance=0.5, decay=30.0, matern=2.5)
    np.testing.assert_allclose(rougher(t), (Periodic(12.0, lengthscale=2.0, variance=0.5) * Matern52(30.0))(t),
                               rtol=1e-15)


def test_closed_form_matches_scikit_learn():
    X = np.random.default_rng(3).uniform(-5.0, 5.0, (9, 1))
    np.testing.assert_allclose(Periodic(1.7, lengthscale=0.6, variance=2.0)(X),
                               (sk.ConstantKernel(2.0) * sk.ExpSineSquared(0.6, 1.7))(X), rtol=1e-12, atol=1e-15)


def test_gradients():
    gradient_check(Periodic(2.0, lengthscale=0.8, variance=1.5, order=10))
    gradient_check(QuasiPeriodic(3.0, lengthscale=1.2, decay=7.0, order=4))


@pytest.mark.parametrize("make, name", [
    (lambda: Periodic(0.0), "period"), (lambda: Periodic(np.nan), "period"),
    (lambda: Periodic(lengthscale=0.0), "lengthscale"), (lambda: Periodic(lengthscale=0.05), "lengthscale"),
    (lambda: Periodic(variance=-2.0), "variance"), (lambda: Periodic(tolerance=1e-13), "tolerance"),
    (lambda: Periodic(tolerance=1.0), "tolerance"), (lambda: Periodic(order=-1), "order"),
    (lambda: QuasiPeriodic(decay=0.0), "decay"), (lambda: QuasiPeriodic(matern=1.0), "matern"),
    (lambda: QuasiPeriodic(lengthscale=np.nan), "lengthscale"),
])
def test_bad_settings(make, name):
    with pytest.raises(ValueError, match=name):
        make()


def test_dtype_follows_inputs():
    with jax.enable_x64(False):
        kernel = compiled(Periodic(2.0, order=3))
        A, Q = kernel.transition(np.float32(0.0), np.float32(0.5))
        assert A.dtype == Q.dtype == kernel.marginal_cov(np.float32(0.0)).dtype == jnp.float32
