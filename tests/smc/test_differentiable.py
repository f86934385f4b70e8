"""The stop-gradient particle filter's score estimate against the exact Kalman score and finite
differences of a high-particle estimate; the plain filter's gradient is biased."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from probssm import kalman, smc
from probssm.ssm import AdditiveGaussianSSM

Q = np.array([[0.5]])
R = np.array([[0.5]])
RUNS = 20


def _f(x, t, p):
    return p["a"] * x


def _h(x, t, p):
    return x


def _model(p):
    return AdditiveGaussianSSM(_f, _h, Q, R * jnp.exp(p["log_r"]), np.zeros(1), np.eye(1), params=p)


def _exact_ll(p, y):
    return kalman.filter(kalman.LGSSM(p["a"][None, None], Q, np.eye(1), R * jnp.exp(p["log_r"]),
                                      np.zeros(1), np.eye(1)), y).log_likelihood


@pytest.fixture(scope="module")
def problem():
    p0 = {"a": jnp.asarray(0.8), "log_r": jnp.asarray(0.0)}
    _, y = _model(p0).sample(jax.random.PRNGKey(0), 50)
    return p0, np.asarray(y)


@pytest.fixture(scope="module")
def gradients(problem):
    p0, y = problem
    keys = jax.random.split(jax.random.PRNGKey(1), RUNS)
    out = {}
    for differentiable in (True, False):
        def ll(p, k, differentiable=differentiable):
            return smc.filter(_model(p), y, k, 500, differentiable=differentiable, errors="ignore").log_likelihood
        g = jax.jit(jax.vmap(jax.grad(ll), in_axes=(None, 0)))(p0, keys)
        out[differentiable] = np.stack([np.asarray(g["a"]), np.asarray(g["log_r"])], axis=1)   # (RUNS, 2)
    return out


def _finite_differences(p0, y, n=100_000, h=0.1):
    """Central differences of one high-particle estimate with common random numbers."""
    key = jax.random.PRNGKey(9)
    f = jax.jit(lambda a, lr: smc.filter(_model({"a": a, "log_r": lr}), y, key, n).log_likelihood)
    a, lr = p0["a"], p0["log_r"]
    return np.array([(f(a + h, lr) - f(a - h, lr)) / (2 * h), (f(a, lr + h) - f(a, lr - h)) / (2 * h)])


def test_gradient_agrees_with_exact_score_and_finite_differences(gradients, problem):
    p0, y = problem
    g = gradients[True]
    exact = jax.grad(_exact_ll)(p0, y)
    exact = np.array([float(exact["a"]), float(exact["log_r"])])
    fd = _finite_differences(p0, y)
    np.testing.assert_allclose(fd, exact, rtol=0.1)          # the high-particle reference is sound
    mean, se = g.mean(0), g.std(0, ddof=1) / np.sqrt(RUNS)
    assert np.all(np.sign(mean) == np.sign(fd)), (mean, fd)
    # within 3.5 MCSE of the reference (0.05 % two-sided per component)
    assert np.all(np.abs(mean - fd) < 3.5 * se + 0.02 * np.abs(fd)), (mean, fd, se)
    assert np.all(np.abs(mean - exact) < 3.5 * se), (mean, exact, se)


def test_gradient_through_plain_resampling_is_biased(gradients, problem):
    # documented: without stop-gradient resampling the gradient misses the resampling term
    p0, y = problem
    exact = jax.grad(_exact_ll)(p0, y)
    g = gradients[False]
    mean, se = g.mean(0), g.std(0, ddof=1) / np.sqrt(RUNS)
    assert abs(mean[0] - float(exact["a"])) > 5 * se[0], (mean, exact, se)


def test_gradient_ascent_on_a_noisy_quadratic():
    # Adam with Polyak averaging on -(theta - c)^2 plus gradient noise: the average lands on c
    c = jnp.array([1.5, -0.5])

    def objective(theta, key):
        noise = 0.3 * jax.random.normal(key, (2,))
        return -jnp.sum((theta - c) ** 2) + noise @ theta

    res = smc.gradient_ascent(objective, jnp.zeros(2), jax.random.PRNGKey(0), num_steps=400, learning_rate=0.05)
    np.testing.assert_allclose(res.theta, c, atol=0.05)
    assert res.trace.shape == (400, 2) and res.objective.shape == (400,)
    with pytest.raises(ValueError, match=r"theta0: expected shape \(k,\)"):
        smc.gradient_ascent(objective, jnp.zeros((2, 2)), jax.random.PRNGKey(0))
