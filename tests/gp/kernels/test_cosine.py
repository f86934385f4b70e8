"""Cosine: the state-space form reproduces the closed form exactly, alone and with Matérn."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probssm.gp import Cosine, Matern32, Matern52

from .state_space import implied_covariance, implied_noise


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def irregular_times(seed, n=10, span=10.0):
    """Unsorted random times with one repeated time stamp (a zero gap)."""
    t = np.random.default_rng(seed).uniform(0.0, span, n)
    t[3] = t[7]
    return t


_sde = jax.jit(lambda kernel: kernel.sde())
_transition = jax.jit(lambda kernel, t, dt: kernel.transition(t, dt))
_marginal_cov = jax.jit(lambda kernel, t: kernel.marginal_cov(t))


class compiled:
    """``kernel`` with ``sde``, ``transition`` and ``marginal_cov`` compiled once per kernel
    structure (hyperparameters are arguments), for :func:`implied_covariance`: eager dispatch
    compiled every operation anew for every state dimension and dominated the tests' time.
    Shared by the kernel tests of this folder."""

    def __init__(self, kernel):
        self.kernel = kernel

    def sde(self):
        return _sde(self.kernel)

    def measurement(self):
        return self.kernel.measurement()

    def transition(self, t, dt):
        return _transition(self.kernel, t, dt)

    def marginal_cov(self, t):
        return _marginal_cov(self.kernel, t)


def gradient_check(kernel, t=1.3, dt=0.7):
    """jax.grad of a scalar function of P(t), transition(t, 0) and transition(t, dt) with
    respect to every hyperparameter: finite, and equal to a central finite difference."""
    leaves, tree = jax.tree_util.tree_flatten(kernel)
    leaves = [jnp.asarray(x, jnp.float64) for x in leaves]
    n = kernel.state_dim
    weights = jnp.sin(jnp.arange(1.0, n * n + 1)).reshape(n, n)

    def scalar(values):
        k = jax.tree_util.tree_unflatten(tree, values)
        total = jnp.sum(weights * k.marginal_cov(t))
        for gap in (0.0, dt):
            A, Q = k.transition(t, gap)
            total = total + jnp.sum(weights * A) + jnp.sum(weights.T * Q)
        return total

    # One program for the gradient and the finite differences' values.
    value_and_grad = jax.jit(jax.value_and_grad(scalar))
    _, grads = value_and_grad(leaves)
    for i, grad in enumerate(grads):
        assert np.isfinite(grad), (kernel, i)
        h = 1e-6 * float(leaves[i])
        up, down = list(leaves), list(leaves)
        up[i], down[i] = leaves[i] + h, leaves[i] - h
        fd = (value_and_grad(up)[0] - value_and_grad(down)[0]) / (2 * h)
        np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8, err_msg=f"{kernel!r} leaf {i}")


def test_implied_covariance_is_the_closed_form():
    kernel = Cosine(2.5, variance=1.7)
    t = irregular_times(0)
    K = np.asarray(kernel(t))
    np.testing.assert_allclose(implied_covariance(compiled(kernel), t), K, atol=1e-10 * 1.7)
    np.testing.assert_allclose(K, 1.7 * np.cos(2 * np.pi * np.subtract.outer(t, t) / 2.5), atol=1e-14)


@settings(max_examples=10, deadline=None)
@given(period=st.floats(0.1, 100.0), variance=st.floats(1e-3, 1e3), seed=st.integers(0, 2**16))
def test_implied_covariance_law(period, variance, seed):
    kernel = Cosine(period, variance=variance)
    t = irregular_times(seed, n=8, span=20.0)
    np.testing.assert_allclose(implied_covariance(compiled(kernel), t), np.asarray(kernel(t)), atol=1e-10 * variance)


def test_sde_and_noise():
    kernel = Cosine(3.0, variance=2.0)
    F, L, Qc, H, P = kernel.sde()
    np.testing.assert_allclose(F @ P + P @ F.T + L @ Qc @ L.T, 0.0, atol=1e-14)
    assert float(H @ P @ H) == pytest.approx(2.0)
    Q = implied_noise(compiled(kernel), irregular_times(1))
    assert np.all(Q == 0.0)  # an undamped oscillator has no process noise
    A, _ = kernel.transition(0.0, 0.75)  # a quarter period: a quarter turn
    np.testing.assert_allclose(A, [[0.0, -1.0], [1.0, 0.0]], atol=1e-15)


def test_sum_and_product_with_matern():
    t = irregular_times(2)
    for kernel in (Cosine(2.0) + Matern32(1.5, variance=0.5), Cosine(4.0, variance=3.0) * Matern52(2.0)):
        K = np.asarray(kernel(t))
        np.testing.assert_allclose(implied_covariance(compiled(kernel), t), K, atol=1e-10 * np.abs(K).max())
    closed = np.asarray(Cosine(4.0, variance=3.0)(t)) * np.asarray(Matern52(2.0)(t))
    np.testing.assert_allclose(np.asarray((Cosine(4.0, variance=3.0) * Matern52(2.0))(t)), closed, atol=1e-14)


def test_gradients():
    gradient_check(Cosine(2.5, variance=1.7))
    gradient_check(Cosine(3.0) * Matern32(1.2))


@pytest.mark.parametrize("name, kwargs", [
    ("period", {"period": 0.0}), ("period", {"period": -1.0}), ("period", {"period": np.nan}),
    ("variance", {"variance": 0.0}), ("variance", {"variance": np.nan}),
])
def test_bad_hyperparameters(name, kwargs):
    with pytest.raises(ValueError, match=name):
        Cosine(**kwargs)


def test_dtype_follows_inputs():
    with jax.enable_x64(False):
        A, Q = Cosine(2.0).transition(np.float32(1.0), np.float32(0.5))
        assert A.dtype == Q.dtype == jnp.float32
    A, _ = Cosine(2.0).transition(1.0, 0.5)
    assert A.dtype == jnp.float64
