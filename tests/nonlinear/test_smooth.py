"""The smoothers against independent references: probssm.kalman on linear-Gaussian models,
filterpy's unscented RTS smoother and a NumPy extended RTS smoother on a nonlinear model, a
direct scipy minimisation of the negative log posterior for the iterated extended smoother
(the MAP path), and sequential against parallel-in-time for the iterated smoothers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
from hypothesis import given, settings
from hypothesis import strategies as st

from probssm import kalman, nonlinear
from probssm.nonlinear import Cubature, Extended, Unscented
from probssm.nonlinear.filtering import linearised_model
from probssm.nonlinear.inference import _linearise_path

from .models import (
    PENDULUM,
    linear_lgssm,
    linear_ssm,
    pendulum_data,
    pendulum_f,
    pendulum_F_np,
    pendulum_f_np,
    pendulum_h,
    pendulum_ssm,
    random_linear,
    rel,
    with_missing,
)
from .test_filter import (
    T_LINEAR,
    T_PENDULUM,
    _filterpy_ekf,
    _filterpy_ukf,
    singular_prior,
)

# ---------------------------------------------------------------------------------------------
# linear-Gaussian models: every smoother is the Kalman smoother


@pytest.fixture(scope="module")
def linear():
    rng = np.random.default_rng(0)  # the filter tests' model and data (same compiled filters)
    fields = random_linear(rng, 2, 2, T_LINEAR)
    y = with_missing(rng, rng.normal(size=(3, T_LINEAR, 2)))
    lgssm = linear_lgssm(fields)
    return linear_ssm(fields), y, kalman.smooth(lgssm, y, method="sequential")


@pytest.mark.parametrize("rule", [Extended(), Unscented(alpha=0.5, beta=2.0, kappa=1.0)], ids=repr)
def test_rts_smoother_is_the_kalman_smoother_on_a_linear_model(linear, rule):
    """The smoothing pass is rule-independent (kalman.smooth of the linearised model); the
    filters of the other rules are compared with the Kalman filter in test_filter."""
    model, y, ref = linear
    res = nonlinear.smooth(model, y, rule=rule)
    for field in ("mean", "cov", "log_likelihood"):
        assert rel(getattr(res, field), getattr(ref, field)) < 1e-10, field
    assert np.all(np.asarray(res.iterations) == 0) and np.all(np.asarray(res.converged))


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), rule=st.sampled_from([Extended(), Unscented(alpha=0.5, beta=2.0, kappa=1.0)]),
       prior=st.sampled_from(["full", "rank1", "zero"]))
def test_rts_smoother_is_the_kalman_smoother_on_any_stable_linear_model(seed, rule, prior):
    rng = np.random.default_rng(seed)
    fields = singular_prior(rng, random_linear(rng, 2, 2, T_LINEAR), prior)
    y = with_missing(rng, 3 * rng.normal(size=(3, T_LINEAR, 2)), rng.uniform(0, 0.5), rng.uniform(0, 0.5))
    res = nonlinear.smooth(linear_ssm(fields), y, rule=rule)
    ref = kalman.smooth(linear_lgssm(fields), y, method="sequential")
    for field in ("mean", "cov", "log_likelihood"):
        assert rel(getattr(res, field), getattr(ref, field)) < 1e-10, field


@pytest.mark.parametrize("rule", ["extended", "cubature"])
def test_iterated_smoothers_stop_after_one_pass_on_a_linear_model(linear, rule):
    model, y, ref = linear
    res = nonlinear.smooth(model, y, rule=rule, iterated=True)
    assert res.iterations.shape == (3,)
    assert np.all(np.asarray(res.iterations) == 1) and np.all(np.asarray(res.converged))
    for field in ("mean", "cov", "log_likelihood"):
        assert rel(getattr(res, field), getattr(ref, field)) < 1e-10, field


# ---------------------------------------------------------------------------------------------
# a nonlinear model


@pytest.fixture(scope="module")
def pendulum():
    _, y = pendulum_data(1, T_PENDULUM)
    y[7] = np.nan
    y[20] = np.nan
    return pendulum_ssm(), y


def _numpy_extended_rts(means, covs):
    """The extended RTS smoother (Särkkä 2013, algorithm 9.1) on filtered moments."""
    xs, ps = means.copy(), covs.copy()
    for k in range(len(xs) - 2, -1, -1):
        F = pendulum_F_np(means[k], k, PENDULUM["g"])
        x_pred = pendulum_f_np(means[k], k, PENDULUM["g"])
        P_pred = F @ covs[k] @ F.T + PENDULUM["Q"]
        G = np.linalg.solve(P_pred, F @ covs[k]).T
        xs[k] = means[k] + G @ (xs[k + 1] - x_pred)
        ps[k] = covs[k] + G @ (ps[k + 1] - P_pred) @ G.T
    return xs, ps


def test_extended_rts_smoother_equals_the_numpy_one_on_filterpy_filtering(pendulum):
    pytest.importorskip("filterpy")
    model, y = pendulum
    means, covs, _ = _filterpy_ekf(y)
    mean, cov = _numpy_extended_rts(means, covs)
    res = nonlinear.smooth(model, y, rule="extended")
    assert rel(res.mean, mean) < 1e-9 and rel(res.cov, cov) < 1e-9


@pytest.mark.parametrize("alpha, beta, kappa", [(0.5, 2.0, 1.0)])
def test_unscented_rts_smoother_equals_filterpy(pendulum, alpha, beta, kappa):
    pytest.importorskip("filterpy")
    from filterpy.kalman import MerweScaledSigmaPoints, UnscentedKalmanFilter

    model, y = pendulum
    points = MerweScaledSigmaPoints(2, alpha, beta, kappa)
    means, covs, _ = _filterpy_ukf(y, points)
    # filterpy's smoother calls fx(x, dt) with its dts: pass the time step as dt
    ukf = UnscentedKalmanFilter(2, 2, 1.0, hx=None, points=points,
                                fx=lambda x, dt: pendulum_f_np(x, int(dt), PENDULUM["g"]))
    ukf.Q = PENDULUM["Q"]
    mean, cov, _ = ukf.rts_smoother(means, covs, dts=np.arange(len(y)))
    res = nonlinear.smooth(model, y, rule=Unscented(alpha, beta, kappa))
    assert rel(res.mean, mean) < 1e-9 and rel(res.cov, cov) < 1e-9


# ---------------------------------------------------------------------------------------------
# the iterated extended smoother reaches the MAP path


@pytest.fixture(scope="module")
def map_problem():
    """The pendulum with whole and partial missing rows, and its MAP path by scipy's trust-region
    Newton method on the negative log posterior (written here in full, with exact Hessians)."""
    rng = np.random.default_rng(5)
    _, y = pendulum_data(2, T_PENDULUM)
    y = with_missing(rng, y, 0.1, 0.1)
    m0, P0, Q, R, g = (PENDULUM[k] for k in ("m0", "P0", "Q", "R", "g"))
    T = len(y)
    t = np.arange(T)
    full = ~np.isnan(y).any(axis=1)
    partial = [(s, ~np.isnan(y[s])) for s in range(T) if np.isnan(y[s]).any() and not np.isnan(y[s]).all()]
    Qi, Ri, P0i = np.linalg.inv(Q), np.linalg.inv(R), np.linalg.inv(P0)
    y_full = np.where(full[:, None], y, 0.0)

    def negative_log_posterior(z):
        x = z.reshape(T, 2)
        e0 = x[0] - m0
        value = 0.5 * e0 @ P0i @ e0
        pred = jax.vmap(lambda x_, s: pendulum_f(x_, s, {"g": g}))(x[:-1], t[:-1])
        e = x[1:] - pred
        value += 0.5 * jnp.sum((e @ Qi) * e)
        obs = jax.vmap(lambda x_, s: pendulum_h(x_, s, None))(x, t)
        r = (y_full - obs) * full[:, None]
        value += 0.5 * jnp.sum((r @ Ri) * r)
        for s, keep in partial:  # the observed entries' marginal
            r_s = (y[s] - pendulum_h(x[s], s, None))[keep]
            value += 0.5 * r_s @ np.linalg.inv(R[np.ix_(keep, keep)]) @ r_s
        return value

    fun = jax.jit(jax.value_and_grad(negative_log_posterior))
    hess = jax.jit(jax.hessian(negative_log_posterior))
    model = pendulum_ssm()
    start = nonlinear.smooth(model, y, rule="extended").mean  # the (non-iterated) EKS
    opt = scipy.optimize.minimize(lambda z: [np.asarray(v) for v in fun(z)],
                                  np.asarray(start).ravel(), jac=True, hess=lambda z: np.asarray(hess(z)),
                                  method="trust-exact", options={"gtol": 1e-11})
    # the gradient stalls at round-off (Hessian entries up to ~3e4): a Newton step of ~1e-12
    assert opt.success or np.max(np.abs(opt.jac)) < 1e-7, opt.message
    return model, y, opt.x.reshape(T, 2), np.asarray(start)


# Every iterated smoother here runs with these options: one compiled program a rule and method.
ITERATED = dict(iterated=True, tol=1e-12, max_iter=50)


@pytest.fixture(scope="module")
def iterated_sequential(map_problem):
    model, y, _, _ = map_problem
    return {rule: nonlinear.smooth(model, y, rule=rule, method="sequential", **ITERATED)
            for rule in ("extended", "cubature")}


def test_iterated_extended_smoother_reaches_the_map_path(map_problem, iterated_sequential):
    _, y, map_path, start = map_problem
    assert np.isnan(y).all(axis=1).any() and (np.isnan(y).any(axis=1) & ~np.isnan(y).all(axis=1)).any()
    assert rel(start, map_path) > 1e-3  # the non-iterated smoother is not there yet
    res = iterated_sequential["extended"]
    assert bool(res.converged) and 1 < int(res.iterations) < 50
    assert rel(res.mean, map_path) < 1e-6


def test_damped_and_regularised_iterations_reach_the_same_map_path(map_problem):
    model, y, map_path, _ = map_problem
    res = nonlinear.smooth(model, y, rule="extended", iterated=True, tol=1e-12, max_iter=200,
                           damping=0.7, regularization=2.0)
    assert bool(res.converged)
    assert rel(res.mean, map_path) < 1e-6


def test_started_from_the_prior_the_iteration_is_parallel_and_reaches_a_fixed_point(map_problem):
    """``start="prior"``: no sequential filter; sequential and parallel passes agree, and the
    result is a fixed point of the Gauss-Newton iteration (re-linearising along it and smoothing
    once more changes nothing), though on this pendulum not the filter start's mode."""
    model, y, _, _ = map_problem
    kw = dict(rule="extended", iterated=True, tol=1e-12, max_iter=200, start="prior")
    seq = nonlinear.smooth(model, y, method="sequential", **kw)
    par = nonlinear.smooth(model, y, method="parallel", **kw)
    assert bool(par.converged) and int(par.iterations) == int(seq.iterations)
    assert rel(par.mean, seq.mean) < 1e-9

    @jax.jit
    def resmooth(mean):
        pieces, _ = _linearise_path(model, Extended(), mean, None)
        m0, P0 = model.initial_moments()
        return kalman.smooth(linearised_model(m0, P0, pieces), y, method="sequential").mean

    assert rel(resmooth(par.mean), par.mean) < 1e-9


def test_iterated_posterior_linearisation_is_a_fixed_point(map_problem, iterated_sequential):
    """At convergence the cubature smoother's marginals reproduce themselves: linearising
    along them and smoothing once more (the non-iterated smoother of the re-linearised model)
    changes nothing. And it is not the extended smoother's MAP path."""
    model, y, map_path, _ = map_problem
    res = iterated_sequential["cubature"]
    assert bool(res.converged) and int(res.iterations) > 1
    @jax.jit
    def resmooth(mean, cov):
        pieces, _ = _linearise_path(model, Cubature(), mean, cov)
        m0, P0 = model.initial_moments()
        return kalman.smooth(linearised_model(m0, P0, pieces), y, method="sequential")

    again = resmooth(res.mean, res.cov)
    assert rel(again.mean, res.mean) < 1e-9 and rel(again.cov, res.cov) < 1e-8
    assert rel(res.mean, map_path) > 1e-4


# ---------------------------------------------------------------------------------------------
# sequential == parallel-in-time


@pytest.mark.parametrize("rule, method", [("extended", "parallel"), ("cubature", "parallel"),
                                          ("extended", "kernel")])
def test_iterated_smoothers_parallel_equal_sequential(map_problem, iterated_sequential, rule, method):
    """Each pass of ``method="parallel"`` is kalman's associative scan, of ``method="kernel"``
    kalman's fused kernel on the per-step linearised model (on a CPU through the Pallas
    interpreter): the same iterations and numbers as the sequential passes."""
    model, y, _, _ = map_problem
    seq = iterated_sequential[rule]
    par = nonlinear.smooth(model, y, rule=rule, method=method, **ITERATED)
    assert int(par.iterations) == int(seq.iterations) and bool(par.converged)
    for field in ("mean", "cov", "log_likelihood"):
        assert rel(getattr(par, field), getattr(seq, field)) < 1e-9, field


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), rule=st.sampled_from(["extended", "cubature"]))
def test_iterated_smoothers_parallel_equal_sequential_on_any_data(seed, rule):
    """Other paths, observations and missing entries of the same shapes (the compiled programs
    above reused)."""
    rng = np.random.default_rng(seed)
    _, y = pendulum_data(seed, T_PENDULUM)
    y = with_missing(rng, y, rng.uniform(0, 0.3), rng.uniform(0, 0.3))
    model = pendulum_ssm()
    seq = nonlinear.smooth(model, y, rule=rule, method="sequential", **ITERATED)
    par = nonlinear.smooth(model, y, rule=rule, method="parallel", **ITERATED)
    assert int(par.iterations) == int(seq.iterations)
    for field in ("mean", "cov", "log_likelihood"):
        assert rel(getattr(par, field), getattr(seq, field)) < 1e-9, field
