"""probssm.ssm: simulation against exact moments, the generic (NumPyro distributions) and the
additive-Gaussian forms of one model, a Poisson emission through posterior linearisation, and
the models as pytrees under jit / vmap."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
import scipy.stats

from probssm import nonlinear
from probssm.nonlinear import Extended, GaussHermite, Unscented
from probssm.ssm import AdditiveGaussianSSM, StateSpaceModel, conditional_moments


@pytest.fixture(autouse=True, scope="module")
def float64():
    with jax.enable_x64(True):
        yield


F = np.array([[0.9, 0.3], [-0.2, 0.7]])
B = np.array([0.1, -0.2])
H = np.array([[1.0, -0.5]])
Q = np.array([[0.3, 0.1], [0.1, 0.2]])
R = np.array([[0.25]])
M0, P0 = np.array([1.0, -1.0]), np.array([[0.5, 0.2], [0.2, 0.4]])


def _f(x, t):
    return jnp.asarray(F) @ x + jnp.asarray(B) * jnp.cos(t)


def _h(x, t):
    return jnp.asarray(H) @ x


def _exact_moments(T):
    """Means and covariances of x_t, y_t, and Cov(x_{t+1}, x_t), t < T."""
    m, P = M0, P0
    out = {"mx": [], "Px": [], "my": [], "Py": [], "lag": []}
    for t in range(T):
        out["mx"].append(m), out["Px"].append(P)
        out["my"].append(H @ m), out["Py"].append(H @ P @ H.T + R)
        out["lag"].append(F @ P)
        m, P = F @ m + B * np.cos(t), F @ P @ F.T + Q
    return {k: np.array(v) for k, v in out.items()}


def test_sampling_moments_equal_the_exact_ones():
    T, N = 6, 20000
    model = AdditiveGaussianSSM(_f, _h, Q, R, M0, P0)
    xs, ys = model.sample(jax.random.key(0), T, sample_shape=(N // 4, 4))
    assert xs.shape == (N // 4, 4, T, 2) and ys.shape == (N // 4, 4, T, 1)
    xs, ys = np.asarray(xs).reshape(N, T, 2), np.asarray(ys).reshape(N, T, 1)
    ref = _exact_moments(T)
    for t in range(T):
        sd = np.sqrt(np.diagonal(ref["Px"][t]) / N)
        assert np.all(np.abs(xs[:, t].mean(0) - ref["mx"][t]) < 5 * sd)
        assert np.abs(ys[:, t].mean(0) - ref["my"][t]) < 5 * np.sqrt(ref["Py"][t, 0, 0] / N)
        # covariances: the standard error of a sample covariance entry is about scale * sqrt(2/N)
        tol = 5 * math.sqrt(2 / N) * np.max(np.diagonal(ref["Px"][t]))
        np.testing.assert_allclose(np.cov(xs[:, t].T), ref["Px"][t], atol=tol)
        np.testing.assert_allclose(np.var(ys[:, t, 0]), ref["Py"][t, 0, 0], atol=5 * math.sqrt(2 / N) * ref["Py"][t, 0, 0])
        if t + 1 < T:
            lag = np.cov(xs[:, t + 1].T, xs[:, t].T)[:2, 2:]
            np.testing.assert_allclose(lag, ref["lag"][t], atol=tol)


# ---------------------------------------------------------------------------------------------
# the generic form over NumPyro distributions


def _pendulum_f(x, t, p):
    return jnp.stack([x[0] + 0.1 * x[1], x[1] - p["g"] * 0.1 * jnp.sin(x[0])])


def _pendulum_h(x, t, p):
    return jnp.stack([jnp.sin(x[0]), 0.2 * x[1] ** 2 + 0.01 * t])


PQ = np.array([[0.01, 0.005], [0.005, 0.05]])
PR = np.array([[0.04, 0.01], [0.01, 0.09]])
PM0, PP0 = np.array([1.0, 0.2]), np.array([[0.1, 0.02], [0.02, 0.2]])


def _generic_pendulum(params):
    return StateSpaceModel(
        initial=lambda p: dist.MultivariateNormal(jnp.asarray(PM0), jnp.asarray(PP0)),
        transition=lambda x, t, p: dist.MultivariateNormal(_pendulum_f(x, t, p), jnp.asarray(PQ)),
        emission=lambda x, t, p: dist.MultivariateNormal(_pendulum_h(x, t, p), jnp.asarray(PR)),
        params=params)


@pytest.fixture(scope="module")
def pendulum_pair():
    params = {"g": jnp.asarray(9.81)}
    additive = AdditiveGaussianSSM(_pendulum_f, _pendulum_h, PQ, PR, PM0, PP0, params=params)
    generic = _generic_pendulum(params)
    _, y = additive.sample(jax.random.key(3), 25)
    y = np.array(y)
    y[4] = np.nan
    y[9, 1] = np.nan
    return additive, generic, y


@pytest.mark.parametrize("rule", [Extended(), Unscented(0.5, 2.0, 1.0)], ids=repr)
def test_generic_and_additive_forms_give_the_same_filter(pendulum_pair, rule):
    additive, generic, y = pendulum_pair
    assert generic.state_dim == 2 and generic.observation_dim == 2
    a = nonlinear.filter(additive, y, rule=rule)
    g = nonlinear.filter(generic, y, rule=rule)
    for field in ("mean", "cov", "log_likelihood"):
        np.testing.assert_allclose(getattr(g, field), getattr(a, field), rtol=1e-12, atol=1e-12)


def test_conditional_moments_of_numpyro_distributions():
    mean, cov = conditional_moments(dist.MultivariateNormal(jnp.zeros(2), jnp.asarray(PR)))
    np.testing.assert_allclose(cov, PR)
    mean, cov = conditional_moments(dist.Normal(jnp.array([1.0, 2.0]), jnp.array([0.5, 3.0])).to_event(1))
    np.testing.assert_allclose(mean, [1.0, 2.0])
    np.testing.assert_allclose(cov, np.diag([0.25, 9.0]))
    mean, cov = conditional_moments(dist.Poisson(3.0))
    assert mean.shape == (1,) and cov.shape == (1, 1) and float(cov[0, 0]) == 3.0


# ---------------------------------------------------------------------------------------------
# a Poisson emission: posterior linearisation


A_AR, Q_AR, MU0, S0 = 0.8, 0.1, 0.5, 0.4


def _poisson_model():
    return StateSpaceModel(
        initial=lambda: dist.MultivariateNormal(jnp.array([MU0]), jnp.array([[S0 ** 2]])),
        transition=lambda x, t: dist.MultivariateNormal(A_AR * x, jnp.array([[Q_AR]])),
        emission=lambda x, t: dist.Poisson(jnp.exp(x[0])))


def test_poisson_emission_filter_is_posterior_linearisation():
    """The first update of the Gauss-Hermite filter is the Gaussian conditioning on the
    log-normal moments of y_0: E y = e = exp(mu + s^2/2), Var y = e + (e^{s^2} - 1) e^2,
    Cov(x, y) = s^2 e."""
    model = _poisson_model()
    assert model.state_dim == 1 and model.observation_dim == 1
    y = np.array([[3.0], [np.nan], [0.0], [5.0], [2.0], [1.0]])
    res = nonlinear.filter(model, y, rule=GaussHermite(20))
    e = math.exp(MU0 + S0 ** 2 / 2)
    S = e + math.expm1(S0 ** 2) * e ** 2
    C = S0 ** 2 * e
    np.testing.assert_allclose(res.mean[0, 0], MU0 + C / S * (3.0 - e), rtol=1e-10)
    np.testing.assert_allclose(res.cov[0, 0, 0], S0 ** 2 - C ** 2 / S, rtol=1e-10)
    # the missing step is a prediction only
    np.testing.assert_allclose(res.mean[1, 0], A_AR * res.mean[0, 0], rtol=1e-12)
    np.testing.assert_allclose(res.cov[1, 0, 0], A_AR ** 2 * res.cov[0, 0, 0] + Q_AR, rtol=1e-12)
    assert np.all(np.isfinite(res.mean)) and np.isfinite(float(res.log_likelihood))
    # the extended rule uses the variance at the mean: y ~ N(e^x, e^mu) linearised at mu
    ext = nonlinear.filter(model, y, rule="extended")
    g = math.exp(MU0)
    np.testing.assert_allclose(ext.mean[0, 0], MU0 + S0 ** 2 * g / (g * g * S0 ** 2 + g) * (3.0 - g),
                               rtol=1e-12)
    # and the iterated posterior-linearisation smoother runs and converges
    sm = nonlinear.smooth(model, y, rule=GaussHermite(5), iterated=True)
    assert bool(sm.converged) and np.all(np.isfinite(sm.mean))


def test_poisson_model_samples_and_log_density():
    model = _poisson_model()
    T, N = 3, 4000
    xs, ys = model.sample(jax.random.key(2), T, sample_shape=(N,))
    assert xs.shape == (N, T, 1) and ys.shape == (N, T, 1)
    m, v = MU0, S0 ** 2
    for t in range(T):
        expected = math.exp(m + v / 2)
        variance = expected + math.expm1(v) * expected ** 2
        assert abs(float(np.mean(ys[:, t, 0])) - expected) < 5 * math.sqrt(variance / N)
        m, v = A_AR * m, A_AR ** 2 * v + Q_AR
    x = jnp.array([0.3])
    np.testing.assert_allclose(model.emission_log_prob(x, jnp.array([4.0]), 0),
                               scipy.stats.poisson(math.exp(0.3)).logpmf(4), rtol=1e-12)
    assert float(model.emission_log_prob(x, jnp.array([np.nan]), 0)) == 0.0


def test_additive_emission_log_prob_drops_missing_entries():
    model = AdditiveGaussianSSM(_pendulum_f, _pendulum_h, PQ, PR, PM0, PP0, params={"g": 9.81})
    log_prob = jax.jit(lambda y: model.emission_log_prob(jnp.array([0.4, -0.3]), y, 3))
    mean = np.array([np.sin(0.4), 0.2 * 0.09 + 0.03])
    np.testing.assert_allclose(log_prob(np.array([0.5, np.nan])),
                               scipy.stats.norm(mean[0], math.sqrt(PR[0, 0])).logpdf(0.5), rtol=1e-12)
    y = np.array([0.5, 0.1])
    np.testing.assert_allclose(log_prob(y), scipy.stats.multivariate_normal(mean, PR).logpdf(y), rtol=1e-12)
    assert float(log_prob(np.array([np.nan, np.nan]))) == 0.0


# ---------------------------------------------------------------------------------------------
# pytrees


def test_models_are_pytrees_under_jit_and_vmap(pendulum_pair):
    additive, _, y = pendulum_pair
    leaves = jax.tree_util.tree_leaves(additive)
    assert len(leaves) == 5  # params["g"], Q, R, m0, P0

    @jax.jit
    def loglik(g):
        return nonlinear.filter(additive.replace({"g": g}), y, rule="extended").log_likelihood

    gs = jnp.array([9.0, 9.81, 10.5])
    batched = jax.vmap(loglik)(gs)
    for g, value in zip(gs, batched):
        model = AdditiveGaussianSSM(_pendulum_f, _pendulum_h, PQ, PR, PM0, PP0, params={"g": g})
        np.testing.assert_allclose(value, nonlinear.filter(model, y, rule="extended").log_likelihood,
                                   rtol=1e-12)
