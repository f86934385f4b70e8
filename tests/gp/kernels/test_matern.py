"""Matérn kernels, the constant and white noise: state-space forms against closed forms."""

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import linalg
from sklearn.gaussian_process import kernels as sk

from probssm.gp import Constant, Matern12, Matern32, Matern52, Matern72, WhiteNoise

from .state_space import implied_covariance, implied_noise

MATERNS = {Matern12: 0.5, Matern32: 1.5, Matern52: 2.5, Matern72: 3.5}
TIMES = np.array([3.1, 0.0, 0.4, 0.4, 2.2, 7.9, 5.0, 5.05])


@pytest.mark.parametrize("cls", sorted(MATERNS, key=lambda c: c.__name__))
@settings(max_examples=8, deadline=None)
@given(lengthscale=st.floats(0.05, 20.0), variance=st.floats(0.01, 100.0))
def test_state_space_form_implies_the_closed_form(cls, lengthscale, variance):
    kernel = cls(lengthscale, variance=variance)
    np.testing.assert_allclose(implied_covariance(kernel, TIMES), np.asarray(kernel(TIMES)),
                               atol=1e-11 * variance)
    noise = implied_noise(kernel, TIMES)
    assert np.all(np.linalg.eigvalsh(noise) > -1e-12 * variance)


@pytest.mark.parametrize("cls", sorted(MATERNS, key=lambda c: c.__name__))
def test_closed_form_equals_scikit_learn_and_sde_is_consistent(cls):
    kernel = cls(1.7, variance=2.5)
    reference = 2.5 * sk.Matern(1.7, nu=MATERNS[cls])
    np.testing.assert_allclose(kernel(TIMES), reference(TIMES[:, None]), rtol=1e-12, atol=1e-14)
    sde = kernel.sde()
    F, L, Qc, P = (np.asarray(a) for a in (sde.feedback, sde.noise_effect, sde.spectral_density, sde.stationary_cov))
    np.testing.assert_allclose(F @ P + P @ F.T + L @ Qc @ L.T, 0.0, atol=1e-12)
    A, _ = kernel.transition(0.0, 0.37)
    np.testing.assert_allclose(A, linalg.expm(F * 0.37), atol=1e-13)


def test_sums_and_products_imply_their_closed_forms():
    for kernel in (Matern32(1.0) + Matern12(0.3, variance=2.0) + Constant(0.4),
                   Matern52(2.0) * Matern32(0.7, variance=0.5),
                   3.0 * (Matern12(1.0) + Matern32(2.0)) + WhiteNoise(0.1)):
        K = np.asarray(kernel(TIMES)) - float(kernel.white_noise_variance) * np.eye(len(TIMES))
        np.testing.assert_allclose(implied_covariance(kernel, TIMES), K, atol=1e-11)
        np.testing.assert_allclose(np.asarray(kernel(TIMES)), np.asarray(kernel(TIMES)).T)


def test_gradients_are_finite_at_zero_gaps_and_match_finite_differences():
    def loss(log_lengthscale, gap):
        A, Q = (Matern52(jax.numpy.exp(log_lengthscale)) * Constant(2.0)).transition(0.0, gap)
        return (A.sum() + Q.sum()) ** 2

    for gap in (0.0, 0.3):
        grad = jax.grad(loss)(0.2, gap)
        h = 1e-6
        numeric = (loss(0.2 + h, gap) - loss(0.2 - h, gap)) / (2 * h)
        assert np.isfinite(grad)
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)


def test_repr_reads_like_the_formula_and_config_round_trips():
    kernel = 2.0 * Matern52(3.0) + Matern12(1.0) * Constant(0.5) + WhiteNoise(0.1)
    assert repr(kernel) == ("Constant(variance=2) * Matern52(variance=1, lengthscale=3) + "
                            "Matern12(variance=1, lengthscale=1) * Constant(variance=0.5) + WhiteNoise(variance=0.1)")
    assert kernel.hyperparameters["k1__k2__lengthscale"] == 3.0
    leaves, treedef = jax.tree_util.tree_flatten(kernel)
    assert jax.tree_util.tree_unflatten(treedef, leaves) == kernel
    assert (Matern12(1.0) + Matern32(1.0)) + Matern52(1.0) == Matern12(1.0) + (Matern32(1.0) + Matern52(1.0))


def test_white_noise_is_on_the_diagonal_of_k_t_t_only():
    white = WhiteNoise(0.3)
    np.testing.assert_allclose(white(TIMES), 0.3 * np.eye(len(TIMES)))
    np.testing.assert_allclose(white(TIMES, TIMES), 0.0)
    assert white.state_dim == 0 and (Matern12(1.0) + white).state_dim == 1
