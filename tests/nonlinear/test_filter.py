"""The Gaussian filters against independent references: probssm.kalman on linear-Gaussian
models (every rule is exact there), filterpy's extended and unscented filters on a nonlinear
model, finite differences for the log-likelihood's gradient."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probssm import kalman, nonlinear
from probssm._compile import jit as compile_jit
from probssm.nonlinear import Cubature, Extended, GaussHermite, Unscented

from .models import (
    PENDULUM,
    linear_lgssm,
    linear_ssm,
    pendulum_data,
    pendulum_F_np,
    pendulum_f_np,
    pendulum_H_np,
    pendulum_h_np,
    pendulum_ssm,
    random_linear,
    rel,
    with_missing,
)

ALL_RULES = [Extended(), Unscented(alpha=0.5, beta=2.0, kappa=1.0), Cubature(), GaussHermite(3)]
T_LINEAR, T_PENDULUM = 30, 40


@pytest.fixture(scope="module")
def linear():
    rng = np.random.default_rng(0)
    fields = random_linear(rng, 2, 2, T_LINEAR)
    y = with_missing(rng, rng.normal(size=(3, T_LINEAR, 2)))
    lgssm = linear_lgssm(fields)
    return linear_ssm(fields), lgssm, y, kalman.filter(lgssm, y, method="sequential")


@pytest.mark.parametrize("rule", ALL_RULES, ids=repr)
def test_every_rule_is_the_kalman_filter_on_a_linear_model(linear, rule):
    model, _, y, ref = linear
    assert np.isnan(y).all(axis=-1).any() and (np.isnan(y).any(axis=-1) & ~np.isnan(y).all(axis=-1)).any()
    res = nonlinear.filter(model, y, rule=rule)
    assert res.mean.shape == (3, T_LINEAR, 2) and res.cov.shape == (3, T_LINEAR, 2, 2)
    assert res.log_likelihood.shape == (3,)
    for field in ("mean", "cov", "predicted_mean", "predicted_cov", "log_likelihood", "next_mean",
                  "next_cov"):
        assert rel(getattr(res, field), getattr(ref, field)) < 1e-10, field
    # the linearised model is the model itself, and its Kalman filter is this filter
    again = kalman.filter(res.linearised, y, method="sequential")
    assert rel(again.mean, res.mean) < 1e-10
    assert rel(again.log_likelihood, res.log_likelihood) < 1e-10


def singular_prior(rng, fields, prior):
    """``P0`` of full rank, rank one, or zero (a known initial state)."""
    if prior == "rank1":
        v = rng.normal(size=2)
        fields["P0"] = np.outer(v, v)
    elif prior == "zero":
        fields["P0"] = np.zeros((2, 2))
    return fields


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), rule=st.sampled_from(ALL_RULES),
       prior=st.sampled_from(["full", "rank1", "zero"]))
def test_every_rule_is_the_kalman_filter_on_any_stable_linear_model(seed, rule, prior):
    """Random time-varying models, priors (also singular: sigma points that do not move),
    data and missing entries of the shapes above (so the compiled filters are reused): the law
    holds for all of them."""
    rng = np.random.default_rng(seed)
    fields = singular_prior(rng, random_linear(rng, 2, 2, T_LINEAR), prior)
    y = with_missing(rng, 3 * rng.normal(size=(3, T_LINEAR, 2)), rng.uniform(0, 0.5), rng.uniform(0, 0.5))
    res = nonlinear.filter(linear_ssm(fields), y, rule=rule)
    ref = kalman.filter(linear_lgssm(fields), y, method="sequential")
    for field in ("mean", "cov", "log_likelihood", "next_cov"):
        assert rel(getattr(res, field), getattr(ref, field)) < 1e-10, field


def test_float32_filter_is_close_to_float64(pendulum_float32):
    res32, res64 = pendulum_float32
    assert res32.mean.dtype == np.float32 and res32.log_likelihood.dtype == np.float32
    assert np.all(np.isfinite(res32.cov))
    assert rel(res32.mean, res64.mean) < 1e-4 and rel(res32.cov, res64.cov) < 1e-3
    assert abs(float(res32.log_likelihood) - float(res64.log_likelihood)) < 1e-4 * abs(float(res64.log_likelihood))


# ---------------------------------------------------------------------------------------------
# filterpy


@pytest.fixture(scope="module")
def pendulum():
    _, y = pendulum_data(1, T_PENDULUM)
    y[7] = np.nan  # a missing row (filterpy skips the update: z=None)
    y[20] = np.nan
    return pendulum_ssm(), y


@pytest.fixture(scope="module")
def pendulum_float32(pendulum):
    model, y = pendulum
    as32 = pendulum_ssm(g=np.float32(PENDULUM["g"]), Q=PENDULUM["Q"].astype(np.float32),
                        R=PENDULUM["R"].astype(np.float32))
    as32 = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), as32)
    return (nonlinear.filter(as32, y.astype(np.float32), rule="cubature"),
            nonlinear.filter(model, y, rule="cubature"))


def _filterpy_ekf(y):
    from filterpy.kalman import ExtendedKalmanFilter

    class EKF(ExtendedKalmanFilter):
        def predict_x(self, u=0):
            self.x = pendulum_f_np(self.x, self.t, PENDULUM["g"])

    ekf = EKF(dim_x=2, dim_z=2)
    ekf.x, ekf.P = PENDULUM["m0"].copy(), PENDULUM["P0"].copy()
    ekf.Q, ekf.R = PENDULUM["Q"], PENDULUM["R"]
    means, covs, loglik = [], [], 0.0
    for t in range(len(y)):
        if t > 0:  # filterpy predicts first; probssm's x_0 is the state at the first observation
            ekf.t, ekf.F = t - 1, pendulum_F_np(ekf.x, t - 1, PENDULUM["g"])
            ekf.predict()
        if not np.isnan(y[t]).all():
            ekf.update(y[t], pendulum_H_np, pendulum_h_np, args=(t,), hx_args=(t,))
            loglik += ekf.log_likelihood
        means.append(ekf.x.copy())
        covs.append(ekf.P.copy())
    return np.array(means), np.array(covs), loglik


class _Points:
    """filterpy's sigma-point interface for a rule given by unit points and weights."""

    def __init__(self, xi, wm, wc):
        self.xi, self.Wm, self.Wc = xi, wm, wc

    def num_sigmas(self):
        return len(self.xi)

    def sigma_points(self, x, P):
        return x + self.xi @ np.linalg.cholesky(P).T


def _filterpy_ukf(y, points):
    from filterpy.kalman import UnscentedKalmanFilter

    ukf = UnscentedKalmanFilter(
        dim_x=2, dim_z=2, dt=1.0, points=points,
        fx=lambda x, dt, t: pendulum_f_np(x, t, PENDULUM["g"]),
        hx=lambda x, t: pendulum_h_np(x, t))
    ukf.x, ukf.P = PENDULUM["m0"].copy(), PENDULUM["P0"].copy()
    ukf.Q, ukf.R = PENDULUM["Q"], PENDULUM["R"]
    ukf.sigmas_f = points.sigma_points(ukf.x, ukf.P)  # update reads the predicted points
    means, covs, loglik = [], [], 0.0
    for t in range(len(y)):
        if t > 0:
            ukf.predict(t=t - 1)
        if not np.isnan(y[t]).all():
            ukf.update(y[t], t=t)
            loglik += ukf.log_likelihood
        means.append(ukf.x.copy())
        covs.append(ukf.P.copy())
    return np.array(means), np.array(covs), loglik


def _assert_same(res, ref):
    mean, cov, loglik = ref
    assert rel(res.mean, mean) < 1e-9
    assert rel(res.cov, cov) < 1e-9
    assert abs(float(res.log_likelihood) - loglik) < 1e-9 * abs(loglik)


def test_extended_filter_equals_filterpy(pendulum):
    pytest.importorskip("filterpy")
    model, y = pendulum
    _assert_same(nonlinear.filter(model, y, rule="extended"), _filterpy_ekf(y))


@pytest.mark.parametrize("alpha, beta, kappa", [(1.0, 0.0, 0.0), (0.5, 2.0, 1.0), (0.1, 2.0, 0.0)])
def test_unscented_filter_equals_filterpy(pendulum, alpha, beta, kappa):
    pytest.importorskip("filterpy")
    from filterpy.kalman import MerweScaledSigmaPoints

    model, y = pendulum
    res = nonlinear.filter(model, y, rule=Unscented(alpha, beta, kappa))
    _assert_same(res, _filterpy_ukf(y, MerweScaledSigmaPoints(2, alpha, beta, kappa)))


@pytest.mark.parametrize("rule", [Cubature(), GaussHermite(4)], ids=repr)
def test_cubature_and_gauss_hermite_filters_equal_filterpy_with_their_points(pendulum, rule):
    """filterpy's unscented filter takes any sigma points: given the rule's, it is that rule's
    filter (the points are placed by NumPy's Cholesky factor here)."""
    pytest.importorskip("filterpy")
    model, y = pendulum
    _assert_same(nonlinear.filter(model, y, rule=rule), _filterpy_ukf(y, _Points(*rule.unit_points(2))))


def test_filters_differ_on_a_nonlinear_model(pendulum):
    """The comparisons above can fail: the rules give different numbers where the model is
    nonlinear."""
    model, y = pendulum
    ekf = nonlinear.filter(model, y, rule="extended")
    ukf = nonlinear.filter(model, y, rule="cubature")
    assert rel(ekf.mean, ukf.mean) > 1e-4
    assert abs(float(ekf.log_likelihood) - float(ukf.log_likelihood)) > 1e-3


# ---------------------------------------------------------------------------------------------
# gradients


@pytest.mark.parametrize("rule", ["extended", "unscented", "cubature", GaussHermite(3)], ids=repr)
def test_log_likelihood_gradient_matches_finite_differences(pendulum, rule):
    _, y = pendulum
    y = y[:20]

    @compile_jit  # jax.jit with the library's faster CPU compile options (top level only)
    def value_and_grad(theta):
        def loglik(theta):
            model = pendulum_ssm(g=theta[0], Q=jnp.exp(theta[1]) * PENDULUM["Q"],
                                 R=jnp.exp(theta[2]) * PENDULUM["R"])
            return nonlinear.filter(model, y, rule=rule).log_likelihood
        return jax.value_and_grad(loglik)(theta)

    theta = jnp.array([9.0, 0.3, -0.2])
    value, grad = value_and_grad(theta)
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    step = 1e-5
    numeric = []
    for i in range(3):
        e = step * np.eye(3)[i]
        numeric.append((value_and_grad(theta + e)[0] - value_and_grad(theta - e)[0]) / (2 * step))
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-6)
