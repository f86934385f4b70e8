"""SARIMAX's functional core against statsmodels' ``SARIMAX`` at identical parameters."""

import warnings
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
import statsmodels.api as sm
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.tsa.statespace.tools import (
    constrain_stationary_univariate,
    unconstrain_stationary_univariate,
)

from probssm import kalman
from probssm.fit import constrain_stationary, unconstrain_stationary
from probssm.structural import arima


def _arma_series(T=120, seed=0):
    rng = np.random.default_rng(seed)
    e = rng.normal(size=T + 1)
    x = np.zeros(T)
    for t in range(1, T):
        x[t] = 0.6 * x[t - 1] + e[t + 1] + 0.3 * e[t]
    return x


def _log_air():
    from sktime.datasets import load_airline

    return np.log(load_airline().to_numpy(dtype=float))


def _case(name):
    """(y, exog, order, seasonal_order, trend, params, enforce_stationarity)."""
    x = _arma_series()
    T = len(x)
    if name == "arma11_c":
        return x + 2.0, None, (1, 0, 1), (0, 0, 0, 0), "c", [0.8, 0.6, 0.3, 1.1], True
    if name == "arima211_t_missing":  # NaNs, the first observation among them
        y = np.cumsum(x) + 0.05 * np.arange(T)
        y[[0, 3, 10, 11, 50, 90]] = np.nan
        return y, None, (2, 1, 1), (0, 0, 0, 0), "t", [0.01, 0.5, -0.2, 0.3, 1.2], True
    if name == "airline":
        return _log_air(), None, (0, 1, 1), (0, 1, 1, 12), None, [-0.4, -0.6, 0.0014], True
    if name == "sarimax_exog":
        X = np.random.default_rng(5).normal(size=(T, 2))
        y = x + X @ [1.0, -0.5]
        return y, X, (1, 0, 0), (1, 0, 0, 4), None, [1.0, -0.5, 0.5, 0.3, 1.0], True
    if name == "not_enforced_c_d1":  # every state diffuse; a constant with d = 1; NaNs
        y = np.cumsum(x)
        y[[7, 8, 60]] = np.nan
        return y, None, (1, 1, 1), (1, 0, 0, 4), "c", [0.02, 0.5, 0.3, -0.2, 1.2], False
    raise KeyError(name)


CASES = ["arma11_c", "arima211_t_missing", "airline", "sarimax_exog", "not_enforced_c_d1"]


def _stepwise_rel(ours, ref):
    """max over t of max|ours_t - ref_t| / max|ref_t| (time on the last axis of both); steps
    where ``ref_t`` vanishes (a state known exactly) are scaled by 1e-6 max|ref|."""
    ours, ref = np.asarray(ours), np.asarray(ref)
    axes = tuple(range(ref.ndim - 1))
    scale = np.maximum(np.max(np.abs(ref), axis=axes), 1e-6 * np.max(np.abs(ref)))
    return float(np.max(np.max(np.abs(ours - ref), axis=axes) / scale))


@pytest.mark.parametrize("init", arima.INITIALIZATIONS)
@pytest.mark.parametrize("case", CASES)
def test_matches_statsmodels(case, init):
    y, exog, order, seasonal_order, trend, params, enforce = _case(case)
    names = () if exog is None else ("x1", "x2")
    spec = arima.sarimax_spec(order, seasonal_order, trend, names, enforce_stationarity=enforce)
    ref_model = sm.tsa.SARIMAX(
        y, exog=exog, order=order, seasonal_order=seasonal_order, trend=trend,
        enforce_stationarity=enforce, use_exact_diffuse=(init == "exact_diffuse"),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = ref_model.filter(params, transformed=True)
        ref_llf = ref_model.loglike(params, transformed=True)
    assert spec.param_names == tuple(ref_model.param_names)
    assert spec.state_dim == ref_model.k_states
    burn = arima.likelihood_burn(spec, init)
    assert burn == ref_model.loglikelihood_burn
    with jax.enable_x64(True):
        model = arima.sarimax_model(
            spec, jnp.asarray(params), exog, num_timesteps=len(y), initialization=init
        )
        llf = float(kalman.log_likelihood(model, y[:, None], burn=burn))
        filt = kalman.filter(model, y[:, None])  # burn=0 shares one compilation between inits
    assert abs(llf - ref_llf) <= 1e-8 * abs(ref_llf)
    filt_llf = float(np.sum(np.asarray(filt.log_likelihood_terms)[burn:]))
    assert abs(filt_llf - ref.llf) <= 1e-8 * abs(ref.llf)
    assert _stepwise_rel(np.asarray(filt.mean).T, ref.filtered_state) < 1e-6
    assert _stepwise_rel(np.moveaxis(np.asarray(filt.cov), 0, -1), ref.filtered_state_cov) < 1e-6


def test_forecast_with_time_offset_matches_statsmodels():
    """A trend in t and regressors past the data: build the forecast model with time_offset=T-1."""
    rng = np.random.default_rng(1)
    T, h = 60, 5
    X = rng.normal(size=(T + h, 1))
    y = np.cumsum(rng.normal(size=T)) + 0.1 * np.arange(T) + X[:T, 0]
    params = [0.05, 0.02, 0.7, 0.4, -0.3, 1.3]
    spec = arima.sarimax_spec((1, 1, 1), trend="ct", exog_names=("x1",))
    ref = sm.tsa.SARIMAX(y, exog=X[:T], order=(1, 1, 1), trend="ct", use_exact_diffuse=True)
    ref_fc = ref.filter(params).get_forecast(h, exog=X[T:])
    with jax.enable_x64(True):
        filt = kalman.filter(arima.sarimax_model(spec, jnp.asarray(params), X[:T]), y[:, None])
        future = arima.sarimax_model(spec, jnp.asarray(params), X[T:], time_offset=T - 1)
        fc = kalman.forecast(future, filt, h)
    np.testing.assert_allclose(fc.observation_mean[:, 0], ref_fc.predicted_mean, rtol=1e-10)
    np.testing.assert_allclose(np.sqrt(fc.observation_cov[:, 0, 0]), ref_fc.se_mean, rtol=1e-10)


def test_gradient_jit_and_vmap():
    y = np.cumsum(_arma_series(60))
    spec = arima.sarimax_spec((1, 1, 1), trend="c")
    with jax.enable_x64(True):
        theta = arima.to_unconstrained(spec, arima.start_params(spec, y))

        def loglik(theta):
            model = arima.sarimax_model(spec, arima.to_natural(spec, theta))
            return kalman.log_likelihood(model, y[:, None])

        value_and_grad = jax.jit(jax.value_and_grad(loglik))  # one compilation for all calls
        grad = np.asarray(value_and_grad(theta)[1])
        eps = 1e-6
        fd = np.array([
            (value_and_grad(theta.at[i].add(eps))[0] - value_and_grad(theta.at[i].add(-eps))[0])
            / (2 * eps)
            for i in range(theta.shape[0])
        ])
        batch = jax.jit(jax.vmap(lambda t: arima.sarimax_model(spec, arima.to_natural(spec, t))))(
            jnp.stack([theta, theta + 0.1])
        )
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-5)
    assert batch.transition_matrix.shape == (2, spec.state_dim, spec.state_dim)


def test_float32_follows_params():
    spec = arima.sarimax_spec((1, 0, 1), trend="t")
    model = arima.sarimax_model(spec, jnp.asarray([0.1, 0.5, 0.2, 1.0], jnp.float32), num_timesteps=30)
    assert model.transition_matrix.dtype == jnp.float32
    assert model.initial_cov.dtype == jnp.float32
    assert model.transition_offset.shape == (30, spec.state_dim)


@pytest.mark.parametrize("period", [4, 20, 53])
def test_stationary_covariance_of_large_arma_blocks(period):
    """ARMA blocks above 10 states use the doubling iteration; compare with SciPy."""
    spec = arima.sarimax_spec((2, 0, 1), (1, 0, 1, period))
    with jax.enable_x64(True):
        model = arima.sarimax_model(spec, jnp.asarray([0.5, 0.2, 0.3, 0.9, -0.4, 1.5]))
    F, Q = np.asarray(model.transition_matrix), np.asarray(model.transition_cov)
    expected = scipy.linalg.solve_discrete_lyapunov(F, Q)
    assert np.max(np.abs(np.asarray(model.initial_cov) - expected)) < 1e-10 * np.max(np.abs(expected))


# -- parameter transforms --------------------------------------------------------------------


@pytest.mark.parametrize("p", [1, 2, 3, 6])
def test_stationary_transform_agrees_with_statsmodels(p):
    u = np.random.default_rng(p).normal(scale=2.0, size=p)
    with jax.enable_x64(True):
        phi = np.asarray(constrain_stationary(u))
        back = np.asarray(unconstrain_stationary(phi))
        batched = np.asarray(constrain_stationary(np.stack([u, -u])))
    np.testing.assert_allclose(phi, constrain_stationary_univariate(u), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(back, unconstrain_stationary_univariate(phi), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(back, u, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(batched[1], constrain_stationary_univariate(-u), rtol=1e-13, atol=1e-15)


def _reflection_coefficients(phi):
    """Step-down (Schur-Cohn) recursion in exact rational arithmetic on the float coefficients:
    1 - phi_1 z - ... - phi_p z^p has all roots outside the unit circle exactly when every
    returned coefficient lies in (-1, 1)."""
    a, out = [Fraction(float(c)) for c in phi], []
    for k in range(len(a) - 1, -1, -1):
        r = a[k]
        out.append(r)
        if abs(r) >= 1:
            break
        a = [(a[i] + r * a[k - 1 - i]) / (1 - r * r) for i in range(k)]
    return out


# |u| <= 10 keeps the partial autocorrelations within 0.995 of the boundary; far beyond, float64
# rounding of phi can exceed its distance to the boundary (statsmodels' transform alike).
@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-10, 10, allow_nan=False), min_size=1, max_size=6))
def test_every_real_vector_gives_a_stationary_polynomial(u):
    with jax.enable_x64(True):
        phi = np.asarray(constrain_stationary(np.asarray(u)))
    assert np.all(np.isfinite(phi))
    assert all(abs(r) < 1 for r in _reflection_coefficients(phi))
    # The inverse roots (of z^p - phi_1 z^(p-1) - ... - phi_p) lie inside the unit circle, up to
    # the accuracy of root finding for roots that cluster near it.
    assert np.max(np.abs(np.roots(np.r_[1.0, -phi]))) < 1 + 1e-6


def test_full_vector_transform_round_trip_and_statsmodels_blocks():
    spec = arima.sarimax_spec((2, 1, 1), (1, 0, 2, 4), trend="ct", exog_names=("a",))
    ref = sm.tsa.SARIMAX(np.zeros(30), exog=np.ones((30, 1)) * np.arange(30)[:, None],
                         order=(2, 1, 1), seasonal_order=(1, 0, 2, 4), trend="ct")
    theta = np.random.default_rng(0).normal(size=spec.k_params)
    with jax.enable_x64(True):
        params = np.asarray(arima.to_natural(spec, theta))
        back = np.asarray(arima.to_unconstrained(spec, params))
    np.testing.assert_allclose(back, theta, rtol=1e-10, atol=1e-12)
    # statsmodels squares the variance's free number; everything else agrees.
    np.testing.assert_allclose(params[:-1], ref.transform_params(theta)[:-1], rtol=1e-12, atol=1e-15)
    assert params[-1] == pytest.approx(np.exp(theta[-1]))
    np.testing.assert_allclose(
        back[:-1], ref.untransform_params(params)[:-1], rtol=1e-10, atol=1e-12
    )


def test_transforms_respect_enforcement_flags_and_reject_outside_values():
    free = arima.sarimax_spec((1, 0, 1), enforce_stationarity=False, enforce_invertibility=False)
    with jax.enable_x64(True):
        np.testing.assert_allclose(arima.to_natural(free, [1.5, -2.0, 0.0]), [1.5, -2.0, 1.0])
        enforced = arima.sarimax_spec((1, 0, 1))
        with pytest.raises(ValueError, match="ar.L1"):
            arima.to_unconstrained(enforced, [1.5, 0.2, 1.0])
        with pytest.raises(ValueError, match="sigma2"):
            arima.to_unconstrained(enforced, [0.5, 0.2, -1.0])


# -- specification ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, names",
    [
        ({"order": (2, 0, 1), "seasonal_order": (1, 1, 1, 12), "trend": "c"}, None),
        ({"order": (1, 1, 0), "trend": "c"}, None),  # SARIMAX allows a constant with d = 1
        ({"order": (0, 0, 2), "trend": [1, 0, 1]}, None),
        ({"order": (1, 0, 0), "trend": "ctt"}, None),
        ({"order": (1, 0, 0), "seasonal_order": (2, 0, 0, 4), "trend": "t"}, ["x1", "x2"]),
    ],
)
def test_names_and_sizes_match_statsmodels(kwargs, names):
    exog = None if names is None else np.random.default_rng(0).normal(size=(40, len(names)))
    ref = sm.tsa.SARIMAX(np.zeros(40), exog=exog, **kwargs)
    spec = arima.sarimax_spec(**kwargs, exog_names=names or ())
    assert spec.param_names == tuple(ref.param_names)
    assert spec.k_params == ref.k_params
    assert spec.state_dim == ref.k_states
    assert arima.likelihood_burn(spec, "approximate_diffuse") == ref.loglikelihood_burn
    assert arima.likelihood_burn(spec, "exact_diffuse") == 0


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"order": (1.5, 0, 0)}, TypeError, r"order\[0\] \(p\).*1\.5"),
        ({"order": (1, "1", 0)}, TypeError, r"order\[1\] \(d\).*'1'"),
        ({"order": (True, 0, 0)}, TypeError, r"order\[0\]"),
        ({"order": ([1, 0, 3], 0, 0)}, ValueError, "0/1 flags"),
        ({"order": (1, 0, -2)}, ValueError, r"order\[2\] \(q\).*-2"),
        ({"order": (1, 0)}, ValueError, r"order: expected \(p, d, q\)"),
        ({"order": 2}, TypeError, r"order: expected a sequence \(p, d, q\)"),
        ({"seasonal_order": (1, 0, 12)}, ValueError, r"seasonal_order: expected \(P, D, Q, s\)"),
        ({"seasonal_order": (1, 0, 0, -4)}, ValueError, r"seasonal_order\[3\] \(s\)"),
        ({"seasonal_order": (1, 0, 0, 1)}, ValueError, "seasonal period s must be at least 2"),
        ({"seasonal_order": (0, 1, 0, 0)}, ValueError, "seasonal period s must be at least 2"),
        ({"order": (12, 0, 0), "seasonal_order": (1, 0, 0, 12)}, ValueError, r"autoregressive lag\(s\) \[12\]"),
        ({"order": (0, 0, 4), "seasonal_order": (0, 0, 2, 2)}, ValueError, r"moving average lag\(s\) \[2, 4\]"),
        ({"trend": "linear"}, ValueError, "trend: expected one of"),
        ({"trend": 3}, TypeError, "trend"),
        ({"trend": [1, 2]}, ValueError, r"trend\[1\]"),
        ({"exog_names": ("a", 2)}, TypeError, r"exog_names\[1\]"),
        ({"exog_names": ("a", "a")}, ValueError, "more than once"),
        ({"exog_names": ("ar.L1",)}, ValueError, "more than once"),
    ],
)
def test_spec_validation(kwargs, error, match):
    with pytest.raises(error, match=match):
        arima.sarimax_spec(**kwargs)


def test_model_input_errors():
    spec = arima.sarimax_spec((1, 0, 0), trend="t", exog_names=("x1",))
    X = np.ones((10, 1))
    with pytest.raises(ValueError, match=r"params: expected shape \(\.\.\., 4\)"):
        arima.sarimax_model(spec, [0.1, 0.5, 1.0], X)
    with pytest.raises(ValueError, match="pass exog"):
        arima.sarimax_model(spec, [0.1, 1.0, 0.5, 1.0])
    with pytest.raises(ValueError, match=r"expected shape \(T, 1\)"):
        arima.sarimax_model(spec, [0.1, 1.0, 0.5, 1.0], np.ones((10, 2)))
    with pytest.raises(ValueError, match="non-finite value at index"):
        arima.sarimax_model(spec, [0.1, 1.0, 0.5, 1.0], np.full((10, 1), np.nan))
    with pytest.raises(ValueError, match="num_timesteps=5 but exog has 10 rows"):
        arima.sarimax_model(spec, [0.1, 1.0, 0.5, 1.0], X, num_timesteps=5)
    with pytest.raises(ValueError, match="not stationary"):
        arima.sarimax_model(spec, [0.1, 1.0, 1.2, 1.0], X)
    with pytest.raises(ValueError, match="sigma2 must be positive"):
        arima.sarimax_model(spec, [0.1, 1.0, 0.5, 0.0], X)
    with pytest.raises(ValueError, match="initialization"):
        arima.sarimax_model(spec, [0.1, 1.0, 0.5, 1.0], X, initialization="diffuse")
    no_exog = arima.sarimax_spec((1, 0, 0), trend="t")
    with pytest.raises(ValueError, match="pass num_timesteps"):
        arima.sarimax_model(no_exog, [0.1, 0.5, 1.0])
    with pytest.raises(ValueError, match="no regressors"):
        arima.sarimax_model(no_exog, [0.1, 0.5, 1.0], X)
    # Without enforce_stationarity an explosive AR is a valid (all-diffuse) model.
    free = arima.sarimax_spec((1, 0, 0), enforce_stationarity=False)
    assert arima.sarimax_model(free, [1.2, 1.0]).state_dim == 1


# -- starting values -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "order, seasonal_order, trend, k_exog",
    [
        ((0, 1, 1), (0, 1, 1, 12), None, 0),
        ((2, 1, 1), (1, 0, 0, 12), "t", 0),
        ((1, 0, 1), (0, 0, 0, 0), "c", 2),
        ((3, 1, 2), (0, 0, 0, 0), None, 0),
        ((1, 0, 0), (1, 1, 1, 12), "ct", 1),
    ],
)
@pytest.mark.parametrize("missing", [False, True])
def test_start_params_are_finite_and_valid(order, seasonal_order, trend, k_exog, missing):
    y = _log_air()
    if missing:
        y[[0, 5, 40, 41, 100]] = np.nan
    X = np.random.default_rng(0).normal(size=(len(y), k_exog)) if k_exog else None
    names = tuple(f"x{i}" for i in range(k_exog))
    spec = arima.sarimax_spec(order, seasonal_order, trend, names)
    params = arima.start_params(spec, y, X)
    assert params.shape == (spec.k_params,) and np.all(np.isfinite(params))
    assert params[-1] > 0
    with jax.enable_x64(True):
        assert np.all(np.isfinite(np.asarray(arima.to_unconstrained(spec, params))))
    ref = sm.tsa.SARIMAX(y, exog=X, order=order, seasonal_order=seasonal_order, trend=trend)
    assert np.isfinite(ref.loglike(params))


def test_start_params_recover_an_arma_process():
    rng = np.random.default_rng(4)
    e = rng.normal(size=3001)
    y = np.zeros(3000)
    for t in range(1, 3000):
        y[t] = 0.7 * y[t - 1] + e[t + 1] - 0.4 * e[t]
    params = arima.start_params(arima.sarimax_spec((1, 0, 1)), y[:, None])
    np.testing.assert_allclose(params, [0.7, -0.4, 1.0], atol=0.1)


def test_start_params_errors():
    spec = arima.sarimax_spec((1, 1, 1), trend="c")
    with pytest.raises(ValueError, match="y is constant"):
        arima.start_params(spec, np.full(50, 3.0))
    with pytest.raises(ValueError, match="too few observations"):
        arima.start_params(spec, np.arange(5.0) ** 2)
    with pytest.raises(ValueError, match="too few observations"):
        airline = arima.sarimax_spec((0, 1, 1), (0, 1, 1, 12))
        arima.start_params(airline, np.random.default_rng(0).normal(size=15))
    with pytest.raises(ValueError, match="infinite value at index 2"):
        arima.start_params(spec, np.r_[1.0, 2.0, np.inf, 4.0])
    with pytest.raises(ValueError, match=r"expected shape \(T,\) or \(T, 1\)"):
        arima.start_params(spec, np.ones((10, 2)))
    with pytest.raises(ValueError, match="pass exog"):
        arima.start_params(arima.sarimax_spec((1, 0, 0), exog_names=("x",)), np.arange(20.0))
