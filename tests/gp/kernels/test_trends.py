"""Linear, Wiener and integrated Wiener: exact non-stationary state-space forms."""

import math

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, linalg
from sklearn.gaussian_process import kernels as sk

from probssm.gp import Constant, Cosine, IntegratedWiener, Linear, Matern12, Matern52, Wiener

from .state_space import implied_covariance, implied_noise
from .test_cosine import compiled, gradient_check


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def times_after(origin, seed, n=10, span=10.0):
    """Random times after ``origin`` with one repeated time stamp."""
    t = origin + np.random.default_rng(seed).uniform(0.0, span, n)
    t[2] = t[6]
    return t


def assert_implied(kernel, t):
    K = np.asarray(kernel(t))
    np.testing.assert_allclose(implied_covariance(compiled(kernel), t), K, atol=1e-10 * np.abs(K).max())


@pytest.mark.parametrize("kernel", [
    Linear(0.7, offset=1.0), Wiener(2.0, origin=-1.0), IntegratedWiener(1.5, origin=-1.0),
    IntegratedWiener(0.3, order=2, origin=-1.0), IntegratedWiener(order=3, origin=-1.0),
], ids=repr)
def test_implied_covariance_is_the_closed_form(kernel):
    assert not kernel.stationary and kernel.sde().stationary_cov is None
    assert_implied(kernel, times_after(-1.0, 0))
    Q = implied_noise(compiled(kernel), times_after(-1.0, 0))
    np.testing.assert_array_equal(Q, np.swapaxes(Q, 1, 2))
    assert np.linalg.eigvalsh(Q).min() >= -1e-12 * np.abs(Q).max()


@settings(max_examples=10, deadline=None)
@given(variance=st.floats(1e-3, 1e3), start=st.floats(0.0, 50.0), seed=st.integers(0, 2**16))
def test_integrated_wiener_law(variance, start, seed):
    # The origin is static (a new program for each); the law is tested through the times.
    kernel = IntegratedWiener(variance, origin=-1.0)
    assert_implied(kernel, times_after(-1.0 + start, seed, n=8))


def test_closed_forms():
    s, t = np.array([[0.5, 2.0, 3.5]]).T, np.array([[1.0, 3.0]])
    m, d = np.minimum(s, t), np.abs(s - t)
    np.testing.assert_allclose(Linear(2.0, offset=0.5).evaluate(s, t), 2.0 * (s - 0.5) * (t - 0.5), rtol=1e-15)
    np.testing.assert_allclose(Wiener(2.0).evaluate(s, t), 2.0 * m, rtol=1e-15)
    np.testing.assert_allclose(IntegratedWiener(2.0).evaluate(s, t), 2.0 * (m**3 / 3 + d * m**2 / 2), rtol=1e-14)
    for q in (2, 3):  # the finite sum against the integral it stands for
        for a, b in [(0.5, 1.0), (2.0, 3.0), (3.5, 1.0)]:
            integral = integrate.quad(lambda u, a=a, b=b, q=q: (a - u) ** q * (b - u) ** q, 0.0, min(a, b),
                                      epsabs=0, epsrel=1e-13)[0]
            assert float(IntegratedWiener(order=q).evaluate(a, b)) == pytest.approx(integral / math.factorial(q) ** 2,
                                                                                    rel=1e-13)


@pytest.mark.parametrize("order", [0, 1, 3])
def test_transition_is_the_exact_discretisation(order):
    """A and Q against Van Loan's matrix exponential of the SDE, and Q = P(t + dt) - A P(t) A^T."""
    kernel = IntegratedWiener(1.7, order=order, origin=0.5)
    F, L, Qc, _, _ = kernel.sde()
    n, dt = kernel.state_dim, 0.8
    block = np.block([[-F, L @ Qc @ L.T], [np.zeros((n, n)), F.T]]) * dt
    E = linalg.expm(block)
    A, Q = kernel.transition(2.0, dt)
    np.testing.assert_allclose(A, E[n:, n:].T, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(Q, E[n:, n:].T @ E[:n, n:], rtol=1e-12, atol=1e-15)
    P0, P1 = kernel.marginal_cov(2.0), kernel.marginal_cov(2.8)
    np.testing.assert_allclose(Q, P1 - A @ P0 @ A.T, rtol=1e-10, atol=1e-12)


def test_no_cancellation_far_from_the_origin():
    _, Q = Wiener(2.0).transition(1e9, 1e-3)
    assert float(Q[0, 0]) == 2.0 * 1e-3  # sigma^2 dt itself, not P(t + dt) - P(t)
    _, Q = IntegratedWiener(order=1).transition(1e9, 1e-3)
    np.testing.assert_allclose(Q, [[1e-9 / 3, 1e-6 / 2], [1e-6 / 2, 1e-3]], rtol=1e-15)


def test_sums_and_products():
    t = times_after(0.0, 3)
    for kernel in (Linear(0.5) + Matern52(1.5), Wiener(2.0) * Cosine(3.0), IntegratedWiener(origin=-0.5) * Matern12(2.0),
                   Constant(0.3) + Linear(1.0, offset=2.0) + Wiener(0.1)):
        assert_implied(kernel, t)
    product = (Wiener(2.0) * Cosine(3.0))(t)
    np.testing.assert_allclose(product, np.asarray(Wiener(2.0)(t)) * np.asarray(Cosine(3.0)(t)), atol=1e-15)


def test_against_scikit_learn():
    X = np.random.default_rng(4).uniform(-5.0, 5.0, (9, 1))
    np.testing.assert_allclose(Linear(1.0)(X), sk.DotProduct(sigma_0=0.0)(X), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose((2.5 * Linear(1.0))(X), (sk.ConstantKernel(2.5) * sk.DotProduct(sigma_0=0.0))(X),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(Constant(2.5)(X), sk.ConstantKernel(2.5)(X), rtol=1e-12)


def test_times_before_the_origin():
    kernel = Wiener(origin=1.0)
    for call in (lambda: kernel(np.array([2.0, 0.5])), lambda: kernel.marginal_cov(0.5),
                 lambda: kernel.transition(0.5, 1.0), lambda: IntegratedWiener(origin=1.0)(np.array([0.0]))):
        with pytest.raises(ValueError, match="before the origin"):
            call()
    # Traced, the process is zero before the origin, and a step across it carries only the
    # noise after it: still the covariance of one process.
    _, Q = jax.jit(IntegratedWiener(2.0, origin=1.0).transition)(0.5, 1.5)
    np.testing.assert_allclose(Q, IntegratedWiener(2.0, origin=1.0).marginal_cov(2.0), rtol=1e-15)
    K = jax.jit(kernel.evaluate)(np.array([0.5, 2.0]), np.array([[3.0], [0.0]]))
    np.testing.assert_array_equal(K, [[0.0, 1.0], [0.0, 0.0]])


def test_gradients():
    gradient_check(Linear(0.7, offset=1.0))
    gradient_check(IntegratedWiener(1.5, order=2, origin=-1.0))
    gradient_check(Wiener(2.0) * Cosine(3.0))


@pytest.mark.parametrize("make, name", [
    (lambda: Linear(0.0), "variance"), (lambda: Linear(np.nan), "variance"), (lambda: Linear(offset=np.nan), "offset"),
    (lambda: Wiener(-1.0), "variance"), (lambda: Wiener(origin=np.inf), "origin"),
    (lambda: IntegratedWiener(order=-1), "order"), (lambda: IntegratedWiener(order=1.5), "order"),
])
def test_bad_settings(make, name):
    with pytest.raises(ValueError, match=name):
        make()


def test_repr():
    assert repr(Linear(2.0, offset=1.5)) == "Linear(variance=2, offset=1.5)"
    assert repr(Wiener(origin=3.0)) == "Wiener(variance=1, origin=3)"
    assert repr(IntegratedWiener(order=2)) == "IntegratedWiener(variance=1, order=2, origin=0)"
