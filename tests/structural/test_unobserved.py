"""The unobserved-components engine: specs, parameter maps, starting values, the state-space form
and component moments, against statsmodels' ``UnobservedComponents`` and dense references."""

import jax
import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from probssm import kalman
from probssm.structural import (
    Autoregressive, Cycle, Level, LocalLinearTrend, Regression, Seasonal, TrigSeasonal, unobserved,
)

TERMS = ["local linear trend", Seasonal(4), TrigSeasonal(12, harmonics=2), Cycle(), Autoregressive(2)]
SM_KW = dict(level="lltrend", seasonal=4, freq_seasonal=[{"period": 12, "harmonics": 2}], cycle=True,
             damped_cycle=True, stochastic_cycle=True, autoregressive=2)
PARAMS = [0.5, 0.1, 0.01, 0.02, 0.03, 0.2, 0.3, 0.4, 0.8, 0.5, -0.2]


@pytest.fixture(scope="module")
def y():
    return np.random.default_rng(0).normal(size=60).cumsum()


def _statsmodels_matrices(y, params, exog=None, **kw):
    mod = sm.tsa.UnobservedComponents(y, exog=exog, use_exact_diffuse=True, **kw)
    mod.update(params)
    ssm = mod.ssm
    R = ssm["selection"]
    _, diffuse, stationary = ssm.initialization(model=ssm)
    return mod, dict(F=ssm["transition"], Q=R @ ssm["state_cov"] @ R.T, H=ssm["design"],
                     obs_var=ssm["obs_cov"], diffuse=diffuse, stationary=stationary)


def test_model_matrices_equal_statsmodels_ssm(y):
    spec = unobserved.uc_spec(TERMS)
    mod, ref = _statsmodels_matrices(y, PARAMS, **SM_KW)
    assert spec.param_names == tuple(mod.param_names)
    with jax.enable_x64(True):
        model = unobserved.uc_model(spec, np.asarray(PARAMS))
    np.testing.assert_allclose(model.transition_matrix, ref["F"], atol=1e-14)
    np.testing.assert_allclose(model.transition_cov, ref["Q"], atol=1e-14)
    np.testing.assert_allclose(model.observation_matrix, ref["H"], atol=1e-14)
    np.testing.assert_allclose(model.observation_cov, ref["obs_var"], atol=1e-14)
    np.testing.assert_allclose(model.initial_diffuse_cov, ref["diffuse"], atol=1e-14)
    np.testing.assert_allclose(model.initial_cov, ref["stationary"], rtol=1e-10, atol=1e-14)
    assert spec.num_states == len(unobserved.state_names(spec)) == model.transition_matrix.shape[-1]


def test_fixed_regression_is_the_observation_offset(y):
    X = np.random.default_rng(1).normal(size=(len(y), 2))
    spec = unobserved.uc_spec("local level", exog_names=("x1", "x2"))
    params = [0.5, 0.1, 0.3, -0.7]
    mod, ref = _statsmodels_matrices(y, params, exog=X, level="llevel")
    assert spec.param_names == tuple(mod.param_names)
    assert isinstance(spec.components[1], Regression)
    with jax.enable_x64(True):
        model = unobserved.uc_model(spec, np.asarray(params), X)
    assert "observation_offset" in model.time_varying
    np.testing.assert_allclose(model.observation_offset[:, 0], mod.ssm["obs_intercept"][0], atol=1e-14)
    np.testing.assert_allclose(model.observation_offset[:, 0], X @ params[2:], atol=1e-14)


def test_time_varying_regression_loads_the_regressors(y):
    X = np.random.default_rng(2).normal(size=(len(y), 1))
    spec = unobserved.uc_spec(["local level", Regression(time_varying=True)], exog_names=("x",))
    with jax.enable_x64(True):
        model = unobserved.uc_model(spec, np.array([0.5, 0.1, 0.0]), X)
    assert model.observation_matrix.shape == (len(y), 1, 2)
    np.testing.assert_allclose(model.observation_matrix[:, 0, 1], X[:, 0])
    np.testing.assert_allclose(model.observation_matrix[:, 0, 0], 1.0)
    assert unobserved.state_names(spec) == ["level", "beta.x"]


def test_log_likelihood_of_the_built_model_equals_statsmodels(y):
    spec = unobserved.uc_spec(["local linear trend", Seasonal(4)])
    params = [0.5, 0.1, 0.01, 0.02]
    ref = sm.tsa.UnobservedComponents(y, "lltrend", seasonal=4, use_exact_diffuse=True)
    ref.ssm.tolerance = 0  # statsmodels' exact filter, no steady-state switch
    with jax.enable_x64(True):
        loglik = kalman.log_likelihood(unobserved.uc_model(spec, np.asarray(params)), y[:, None])
    assert abs(float(loglik) - ref.loglike(params)) < 1e-8 * abs(ref.loglike(params))


def test_irregular_alone_has_one_inert_state():
    spec = unobserved.uc_spec([], irregular=True)
    with jax.enable_x64(True):
        model = unobserved.uc_model(spec, np.array([2.0]))
    assert spec.num_states == 0 and unobserved.state_names(spec) == ["dummy"]
    np.testing.assert_array_equal(model.transition_matrix, np.zeros((1, 1)))
    np.testing.assert_array_equal(model.initial_diffuse_cov, np.zeros((1, 1)))
    assert float(model.observation_cov[0, 0]) == 2.0


def test_spec_resolution():
    spec = unobserved.uc_spec(["local level", Seasonal(4), Seasonal(12)], exog_names=("promo",), freq="M")
    assert spec.param_names == ("sigma2.irregular", "sigma2.level", "sigma2.seasonal_4",
                                "sigma2.seasonal_12", "beta.promo")
    assert [ctx.label for ctx in spec.contexts][1:3] == ["seasonal_4", "seasonal_12"]
    assert all(ctx.freq == "M" and ctx.exog_names == ("promo",) for ctx in spec.contexts)
    assert spec.exog_names == ("promo",)
    # the spec keys compile caches: equal structures are equal and hash alike
    again = unobserved.uc_spec(["local level", Seasonal(4), Seasonal(12)], exog_names=["promo"], freq="M")
    assert again == spec and hash(again) == hash(spec)
    assert unobserved.uc_spec("local level") != unobserved.uc_spec(Level(stochastic=False))
    for name, factory in unobserved.TREND_SPECS.items():
        assert unobserved.uc_spec(name.upper()).components[0] == factory()


def test_spec_errors():
    with pytest.raises(ValueError, match="unknown trend"):
        unobserved.uc_spec(["local wiggle"])
    with pytest.raises(TypeError, match=r"terms\[1\]: expected a Component"):
        unobserved.uc_spec(["local level", 3])
    with pytest.raises(ValueError, match="needs exogenous data"):
        unobserved.uc_spec(["local level", Regression()])
    with pytest.raises(ValueError, match="repeat the parameters"):
        unobserved.uc_spec(["local level", LocalLinearTrend()])
    with pytest.raises(ValueError, match="no components"):
        unobserved.uc_spec([], irregular=False)
    with pytest.raises(ValueError, match="no stochastic component"):
        unobserved.uc_spec("fixed level", irregular=False)


@pytest.mark.parametrize("index, code", [
    (pd.period_range("2000", periods=5, freq="Y"), "A"),
    (pd.period_range("2000Q1", periods=5, freq="Q"), "Q"),
    (pd.date_range("2000-01-31", periods=5, freq="ME"), "M"),
    (pd.DatetimeIndex(["2000-01-01", "2000-02-01", "2000-03-01", "2000-04-01"]), "M"),
    (pd.date_range("2000-01-01", periods=5, freq="D"), ""),
    (pd.RangeIndex(5), ""),
])
def test_freq_code(index, code):
    assert unobserved.freq_code(index) == code


def test_parameter_maps_round_trip_and_respect_bounds():
    spec = unobserved.uc_spec(["local level", Cycle(), Autoregressive(3)], exog_names=("x",), freq="Q")
    theta = np.random.default_rng(3).normal(size=spec.k_params)
    with jax.enable_x64(True):
        natural = np.asarray(unobserved.to_natural(spec, theta))
        back = np.asarray(unobserved.to_unconstrained(spec, natural))
    kinds = {n: unobserved.param_kind(spec, n) for n in spec.param_names}
    assert kinds == {"sigma2.irregular": "variance", "sigma2.level": "variance", "sigma2.cycle": "variance",
                     "sigma2.ar": "variance", "frequency.cycle": "bounded", "damping.cycle": "bounded",
                     "ar.L1": "bounded", "ar.L2": "bounded", "ar.L3": "bounded", "beta.x": "location"}
    variances = [i for i, n in enumerate(spec.param_names) if kinds[n] == "variance"]
    others = [i for i in range(spec.k_params) if i not in variances]
    # a variance's square root is its free number up to sign
    np.testing.assert_allclose(back[variances], np.abs(theta[variances]), rtol=1e-12)
    np.testing.assert_allclose(back[others], theta[others], rtol=1e-9, atol=1e-12)
    p = dict(zip(spec.param_names, natural))
    lo, hi = 2 * np.pi / 48, 2 * np.pi / 6  # quarterly data: cycles of 1.5 to 12 years
    assert lo < p["frequency.cycle"] < hi and 0 < p["damping.cycle"] < 1
    ar_roots = np.roots(np.r_[1.0, -natural[[spec.param_names.index(f"ar.L{i}") for i in (1, 2, 3)]]])
    assert np.all(np.abs(ar_roots) < 1)  # stationary: inverse roots inside the unit circle


def test_noise_scale_is_the_white_noise_variance():
    rng = np.random.default_rng(4)
    noise = rng.normal(scale=2.0, size=4000)
    for terms in (["local level"], ["local linear trend", Seasonal(12)]):
        spec = unobserved.uc_spec(terms)
        assert abs(unobserved.noise_scale(spec, noise) / 4.0 - 1) < 0.1
    walk = np.cumsum(noise)  # a random walk differenced once is white noise of variance 4
    assert abs(unobserved.noise_scale(unobserved.uc_spec("local level"), walk) / 2.0 - 1) < 0.1


def test_start_params_regression_by_least_squares_and_floored_variances():
    rng = np.random.default_rng(5)
    T = 200
    X = rng.normal(size=(T, 2))
    y = 3.0 + 0.01 * np.arange(T) + X @ [1.5, -0.5] + rng.normal(scale=0.1, size=T)
    y[[10, 50]] = np.nan
    spec = unobserved.uc_spec(["local level", Cycle()], exog_names=("a", "b"))
    start = dict(zip(spec.param_names, unobserved.start_params(spec, y, X)))
    np.testing.assert_allclose([start["beta.a"], start["beta.b"]], [1.5, -0.5], atol=0.05)
    assert all(start[n] > 0 for n in spec.param_names if n.startswith("sigma2."))
    lo, hi = Cycle().frequency_bounds(spec.contexts[1])
    assert lo < start["frequency.cycle"] < hi and 0 < start["damping.cycle"] < 1
    with pytest.raises(ValueError, match="constant"):
        unobserved.start_params(spec, np.full(30, 2.0), X[:30])


def test_component_moments_are_loadings_applied_to_state_moments():
    rng = np.random.default_rng(6)
    T, X = 7, rng.normal(size=(7, 1))
    spec = unobserved.uc_spec(["local linear trend", TrigSeasonal(6, harmonics=2)], exog_names=("x",))
    n = spec.num_states
    mean = rng.normal(size=(T, n))
    root = rng.normal(size=(T, n, n))
    cov = root @ root.transpose(0, 2, 1)
    params = np.array([0.5, 0.1, 0.01, 0.02, 0.7])
    with jax.enable_x64(True):
        cols = unobserved.component_moments(spec, params, mean, cov, X)
    assert list(cols) == [(name, stat) for name in ("level", "slope", "freq_seasonal_6(2)", "regression")
                          for stat in ("mean", "std")]
    np.testing.assert_allclose(cols[("level", "mean")], mean[:, 0])
    np.testing.assert_allclose(cols[("slope", "std")], np.sqrt(cov[:, 1, 1]))
    w = np.array([1.0, 0.0, 1.0, 0.0])  # the first state of each harmonic loads on y
    np.testing.assert_allclose(cols[("freq_seasonal_6(2)", "mean")], mean[:, 2:] @ w)
    seasonal_var = np.einsum("k,tkl,l->t", w, cov[:, 2:, 2:], w)
    np.testing.assert_allclose(cols[("freq_seasonal_6(2)", "std")], np.sqrt(seasonal_var))
    np.testing.assert_allclose(cols[("regression", "mean")], 0.7 * X[:, 0])
    np.testing.assert_array_equal(cols[("regression", "std")], np.zeros(T))
