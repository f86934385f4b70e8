"""probssm.gp.inference against dense GP algebra on irregular, unsorted time stamps with repeats
and missing values."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probssm.gp import (Constant, Matern12, Matern32, Matern52, Matern72, WhiteNoise, inference)

from . import dense

T, T_NEW = 14, 5

# Kernel structures (each compiles its own programs); hypothesis varies their values.
STRUCTURES = {
    "matern12": lambda a, b: Matern12(a, variance=b),
    "matern72": lambda a, b: Matern72(a, variance=b),
    "sum_with_white": lambda a, b: Matern52(a, variance=b) + Matern32(3 * a) + WhiteNoise(0.1 * b),
    "product_with_constant": lambda a, b: 2.0 * (Matern32(a, variance=b) * Matern12(2 * a)) + Constant(0.5),
}

positive = st.floats(0.3, 3.0)


def _data(seed):
    """Unsorted times in [0, 10) with two repeated stamps, y with two NaNs, new times inside
    and outside the data."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, 10, T)
    t[3], t[7] = t[5], t[5]
    y = np.sin(t) + 0.3 * rng.standard_normal(T)
    y[[2, 9]] = np.nan
    t_new = np.array([-2.0, t[0], 4.44, 10.5, 13.0])
    return t, y, t_new


@pytest.mark.parametrize("structure", sorted(STRUCTURES))
@settings(max_examples=6, deadline=None)
@given(lengthscale=positive, variance=positive, noise=st.floats(0.01, 1.0), seed=st.integers(0, 2**16))
def test_likelihood_and_posterior_equal_dense_algebra(structure, lengthscale, variance, noise, seed):
    kernel = STRUCTURES[structure](lengthscale, variance)
    t, y, t_new = _data(seed)
    expected = dense.log_marginal_likelihood(kernel, t, y, noise)
    np.testing.assert_allclose(inference.log_marginal_likelihood(kernel, t, y, noise), expected, rtol=1e-9)
    mean, cov = dense.posterior(kernel, t, y, np.concatenate([t, t_new]), noise)
    post = inference.posterior(kernel, t, y, np.concatenate([t, t_new]), noise)
    np.testing.assert_allclose(post.mean, mean, atol=1e-8 * (1 + np.abs(mean).max()))
    np.testing.assert_allclose(post.variance, np.diag(cov), atol=1e-8 * variance)
    joint_mean, joint_cov = inference.posterior_joint(kernel, t, y, t_new, noise)
    np.testing.assert_allclose(joint_mean, mean[T:], atol=1e-8 * (1 + np.abs(mean).max()))
    np.testing.assert_allclose(joint_cov, cov[T:, T:], atol=1e-8 * variance)


@pytest.mark.parametrize("method", ["parallel", "kernel"])
def test_methods_agree_with_sequential(method):
    kernel = Matern52(1.3) + Matern12(0.4, variance=0.5) + WhiteNoise(0.2)
    t, y, t_new = _data(1)
    sequential = inference.posterior(kernel, t, y, t_new, 0.1, method="sequential")
    other = inference.posterior(kernel, t, y, t_new, 0.1, method=method)
    np.testing.assert_allclose(other.mean, sequential.mean, atol=1e-10)
    np.testing.assert_allclose(other.variance, sequential.variance, atol=1e-10)
    np.testing.assert_allclose(inference.log_marginal_likelihood(kernel, t, y, 0.1, method=method),
                               inference.log_marginal_likelihood(kernel, t, y, 0.1, method="sequential"),
                               rtol=1e-11)


def test_short_gaps_keep_the_process_noise_factorable():
    """Over a gap of 5e-3 lengthscales P - A P A^T rounded to an indefinite matrix (an
    eigenvalue of -9e-18) and the square-root parallel filter returned NaN."""
    t = np.sort(np.random.default_rng(0).uniform(0, 120, 200))
    y = np.sin(t / 7)
    values = [inference.log_marginal_likelihood(Matern52(24.0), t, y, 0.1, method=m)
              for m in ("sequential", "parallel")]
    np.testing.assert_allclose(values[1], values[0], rtol=1e-12)
    np.testing.assert_allclose(values[0], dense.log_marginal_likelihood(Matern52(24.0), t, y, 0.1), rtol=1e-9)


def _dense_lml_jax(kernel, t, y, noise):
    K = kernel(t) + noise * jnp.eye(t.shape[0])
    L = jnp.linalg.cholesky(K)
    alpha = jax.scipy.linalg.cho_solve((L, True), y)
    return -0.5 * y @ alpha - jnp.log(jnp.diag(L)).sum() - 0.5 * y.shape[0] * jnp.log(2 * jnp.pi)


def test_gradient_equals_the_dense_gradient():
    kernel = Matern52(1.3, variance=0.7) * Constant(1.5) + Matern32(0.4) + WhiteNoise(0.2)
    t, y, _ = _data(2)
    observed = ~np.isnan(y)
    grad = jax.grad(inference.log_marginal_likelihood, argnums=(0, 3))(kernel, t, y, 0.1)
    expected = jax.grad(_dense_lml_jax, argnums=(0, 3))(kernel, t[observed], y[observed], 0.1)
    for got, want in zip(jax.tree_util.tree_leaves(grad), jax.tree_util.tree_leaves(expected)):
        np.testing.assert_allclose(got, want, rtol=1e-8)


def test_several_outputs_and_per_point_noise():
    kernel = Matern32(1.1) + WhiteNoise(0.05)
    t, y, t_new = _data(3)
    noise = np.linspace(0.05, 0.5, T)
    ys = np.stack([y, 2 * y + 1], axis=1)
    ys[4, 1] = np.nan
    lml = inference.log_marginal_likelihood(kernel, t, ys, noise)
    post = inference.posterior(kernel, t, ys, t_new, noise)
    for j in range(2):
        np.testing.assert_allclose(lml[j], dense.log_marginal_likelihood(kernel, t, ys[:, j], noise), rtol=1e-10)
        mean, cov = dense.posterior(kernel, t, ys[:, j], t_new, noise)
        np.testing.assert_allclose(post.mean[:, j], mean, atol=1e-9)
        np.testing.assert_allclose(post.variance[:, j], np.diag(cov), atol=1e-9)


def test_joint_samples_have_the_posterior_moments():
    kernel = Matern32(1.1, variance=2.0)
    t, y, t_new = _data(4)
    n = 20000
    draws = np.asarray(inference.sample_posterior(kernel, t, y, jax.random.PRNGKey(0), n, t_new, 0.1))
    mean, cov = dense.posterior(kernel, t, y, t_new, 0.1)
    sd = np.sqrt(np.diag(cov))
    assert draws.shape == (n, T_NEW)
    # Monte Carlo: 5 standard errors for the means, the covariances within 5 % of sd_i sd_j.
    np.testing.assert_array_less(np.abs(draws.mean(0) - mean), 5 * sd / np.sqrt(n))
    np.testing.assert_allclose(np.cov(draws.T), cov, atol=0.05 * np.outer(sd, sd).max())


def test_inputs_are_not_modified():
    t, y, t_new = _data(5)
    copies = t.copy(), y.copy(), t_new.copy()
    inference.posterior(Matern12(1.0), t, y, t_new, 0.1)
    for before, after in zip(copies, (t, y, t_new)):
        np.testing.assert_array_equal(before, after)


@pytest.mark.parametrize("t, y, noise, error, match", [
    (np.array([0.0, np.nan, 2.0]), np.ones(3), 0.1, ValueError, "position 1"),
    (np.array([0.0, np.inf, 2.0]), np.ones(3), 0.1, ValueError, "finite"),
    (np.array(["a", "b", "c"]), np.ones(3), 0.1, TypeError, "real numbers"),
    (np.arange(3.0), np.ones(4), 0.1, ValueError, "3 time stamps but y has 4"),
    (np.arange(3.0), np.array([1.0, np.inf, 0.0]), 0.1, ValueError, "infinite value at index"),
    (np.arange(3.0), np.ones(3), -0.1, ValueError, "non-negative"),
    (np.arange(3.0), np.ones(3), np.ones(4), ValueError, r"shape \(3,\)"),
    (np.zeros((3, 2)), np.ones(3), 0.1, ValueError, "one-dimensional"),
])
def test_bad_input_raises_clearly(t, y, noise, error, match):
    with pytest.raises(error, match=match):
        inference.log_marginal_likelihood(Matern12(1.0), t, y, noise)


def test_kernels_without_state_and_bad_hyperparameters_raise():
    with pytest.raises(ValueError, match="no state"):
        inference.log_marginal_likelihood(WhiteNoise(1.0), np.arange(3.0), np.ones(3))
    with pytest.raises(ValueError, match="Product: term 1"):
        Matern12(1.0) * WhiteNoise(1.0)
    for bad in (0.0, -1.0, np.nan, np.inf):
        with pytest.raises(ValueError, match="lengthscale must be positive"):
            Matern32(bad)
    with pytest.raises(TypeError, match="not a probssm.gp kernel|expected a probssm.gp kernel"):
        inference.log_marginal_likelihood("rbf", np.arange(3.0), np.ones(3))
