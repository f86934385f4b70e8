"""SARIMAX options statsmodels users reach for: additive lag lists, measurement error, the
approximate diffuse prior's variance and the log-likelihood burn, each against statsmodels'
SARIMAX at the same settings on real data."""

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from probssm.datasets import load_airpassengers, load_nile
from probssm.structural import SARIMAX
from probssm.structural.arima import sarimax_spec
from probssm.structural.arima_lags import lag_set


@pytest.fixture(scope="module")
def log_air():
    return np.log(load_airpassengers())


@pytest.fixture(scope="module")
def nile():
    return load_nile()


def _statsmodels_fit(model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsmodels' optimiser and start-value warnings
        return model.fit(disp=0, maxiter=500)


def _check_mle(est, ref_model, params_atol, llf_tol=1e-6, X=None):
    """Names equal; the log-likelihood at statsmodels' estimates equals statsmodels' (1e-8
    relative, statsmodels' filter without its steady-state shortcut); probssm's maximum is at
    least statsmodels' and the estimates agree."""
    ref = _statsmodels_fit(ref_model)
    assert list(est.params_.index) == ref_model.param_names
    ref_model.ssm.tolerance = 0
    exact = ref_model.smooth(ref.params).llf
    y = pd.Series(est._y.values[:, 0], index=est._y.index)
    at_ref = type(est)(**est.get_params()).fit(y, X=X, params=ref.params)
    assert abs(at_ref.loglik_ - exact) <= 1e-8 * abs(exact)
    assert est.loglik_ >= exact - llf_tol
    np.testing.assert_allclose(est.params_.to_numpy(), ref.params, rtol=params_atol, atol=params_atol)
    return ref


# -- additive lag lists --------------------------------------------------------------------------


@pytest.mark.parametrize("value, lags", [
    (3, (1, 2, 3)), (0, ()), ([1, 4], (1, 4)), ([4, 1], (1, 4)), ((1, 0, 0, 1), (1, 4)),
    ([0, 1], (2,)), ([1], (1,)), ([], ()),
])
def test_lag_set_reads_statsmodels_forms(value, lags):
    assert lag_set(value, "order[0] (p)") == lags


@pytest.mark.parametrize("value, error, match", [
    ([1, 0, 3], ValueError, "0/1 flags"),
    ([2, 2], ValueError, "repeats a lag"),
    ([1, -4], ValueError, r"order\[0\] \(p\)\[1\]: lags cannot be negative"),
    ([1.5], TypeError, "integer lag"),
    ("14", TypeError, "list of lags"),
    (-1, ValueError, "non-negative"),
])
def test_lag_set_rejects_bad_lists(value, error, match):
    with pytest.raises(error, match=match):
        lag_set(value, "order[0] (p)")


def test_lag_lists_spec_matches_statsmodels():
    spec = sarimax_spec((1, 1, (1, 0, 0, 1)), ([1, 3], 1, 0, 4))
    ref = sm.tsa.SARIMAX(np.ones(40), order=(1, 1, (1, 0, 0, 1)), seasonal_order=([1, 3], 1, 0, 4))
    assert list(spec.param_names) == ref.param_names == ["ar.L1", "ma.L1", "ma.L4", "ar.S.L4", "ar.S.L12", "sigma2"]
    assert spec.state_dim == ref.k_states
    assert sarimax_spec((2, 0, 1)) == sarimax_spec(((1, 1), 0, [1]))  # every lag listed: the plain spec
    with pytest.raises(ValueError, match=r"autoregressive lag\(s\) \[4\]"):
        sarimax_spec(([1, 4], 0, 0), (1, 0, 0, 4))


def test_lag_list_mle_matches_statsmodels(log_air):
    order, seasonal = ([1, 4], 1, 0), (0, 1, 1, 12)
    est = SARIMAX(order, seasonal, initialization="approximate_diffuse").fit(log_air)
    assert est.converged_
    _check_mle(est, sm.tsa.SARIMAX(log_air.to_numpy(), order=order, seasonal_order=seasonal), 2e-3)


def test_flag_tuple_ma_mle_matches_statsmodels(log_air):
    order = (1, 1, (1, 0, 0, 1))
    est = SARIMAX(order, initialization="approximate_diffuse").fit(log_air)
    _check_mle(est, sm.tsa.SARIMAX(log_air.to_numpy(), order=order), 2e-3)


def test_seasonal_lag_list_at_identical_parameters(log_air):
    seasonal = ([1, 2], 1, 0, 12)
    params = [-0.35, -0.55, -0.2, 0.0014]
    ref = sm.tsa.SARIMAX(log_air.to_numpy(), order=(1, 1, 0), seasonal_order=seasonal, use_exact_diffuse=True)
    ref.ssm.tolerance = 0
    est = SARIMAX((1, 1, 0), seasonal).fit(log_air, params=params)
    assert list(est.params_.index) == ["ar.L1", "ar.S.L12", "ar.S.L24", "sigma2"]
    res = ref.smooth(params)
    assert abs(est.loglik_ - res.llf) <= 1e-8 * abs(res.llf)
    np.testing.assert_allclose(est.predict(12).to_numpy(), res.forecast(12), rtol=1e-8)


# -- measurement error ---------------------------------------------------------------------------


def test_measurement_error_is_the_local_level_model(nile):
    """ARIMA(0, 1, 0) plus measurement error is the local level model: statsmodels' MLE on the
    Nile (var.measurement_error ~ 15099, sigma2 ~ 1469, Durbin & Koopman's values)."""
    est = SARIMAX((0, 1, 0), measurement_error=True, initialization="approximate_diffuse").fit(nile)
    ref_model = sm.tsa.SARIMAX(nile.to_numpy(), order=(0, 1, 0), measurement_error=True)
    _check_mle(est, ref_model, 5e-3)
    assert abs(est.params_["var.measurement_error"] - 15099) / 15099 < 5e-3
    assert abs(est.params_["sigma2"] - 1469.1) / 1469.1 < 5e-3
    fc = ref_model.smooth(est.params_.to_numpy()).get_forecast(5).summary_frame(alpha=0.1)
    np.testing.assert_allclose(est.predict(5).to_numpy(), fc["mean"], rtol=1e-8)
    band = est.predict_interval(5, coverage=0.9)
    np.testing.assert_allclose(band.iloc[:, 0].to_numpy(), fc["mean_ci_lower"], rtol=1e-8)
    assert est._param_kind("var.measurement_error") == "variance"


def test_measurement_error_rejects_a_zero_variance(nile):
    with pytest.raises(ValueError, match=r"var.measurement_error.*outside the region"):
        SARIMAX((0, 1, 0), measurement_error=True).fit(nile, params=[0.0, 1000.0])


# -- initial variance and log-likelihood burn ----------------------------------------------------


def test_initial_variance_and_burn_match_statsmodels(nile):
    kw = {"initial_variance": 1e3, "loglikelihood_burn": 3}
    est = SARIMAX((1, 1, 1), initialization="approximate_diffuse", **kw).fit(nile)
    ref = _check_mle(est, sm.tsa.SARIMAX(nile.to_numpy(), order=(1, 1, 1), **kw), 2e-3)
    assert abs(est.aic_ - ref.aic) < 1e-4 and abs(est.bic_ - ref.bic) < 1e-4
    assert est.get_params()["initial_variance"] == 1e3
    # the default prior variance is statsmodels' 1e6, and exact diffuse burns nothing by default
    assert SARIMAX().approximate_diffuse_variance == 1e6 and SARIMAX().loglikelihood_burn is None
    assert SARIMAX(mle_regression=False).approximate_diffuse_variance == 1e10  # statsmodels' default there


def test_burn_under_exact_diffuse(nile):
    params = [0.25, -0.8, 21000.0]
    ref = sm.tsa.SARIMAX(nile.to_numpy(), order=(1, 1, 1), use_exact_diffuse=True, loglikelihood_burn=4)
    ref.ssm.tolerance = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsmodels warns that both burn and diffuse are set
        res = ref.smooth(params)
    est = SARIMAX((1, 1, 1), loglikelihood_burn=4).fit(nile, params=params)
    assert abs(est.loglik_ - res.llf) <= 1e-8 * abs(res.llf)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"initial_variance": 0.0}, ValueError, "initial_variance must be positive"),
    ({"initial_variance": "big"}, TypeError, "initial_variance"),
    ({"loglikelihood_burn": -1}, ValueError, "loglikelihood_burn must be non-negative"),
    ({"loglikelihood_burn": 2.5}, TypeError, "loglikelihood_burn"),
    ({"loglikelihood_burn": 1000}, ValueError, "leaves no observation"),
])
def test_bad_diffuse_options(nile, kwargs, error, match):
    with pytest.raises(error, match=match):
        SARIMAX((1, 1, 1), **kwargs).fit(nile)


# -- concentrated scale --------------------------------------------------------------------------


@pytest.mark.parametrize("init", ["approximate_diffuse", "exact_diffuse"])
def test_concentrated_scale_matches_statsmodels(nile, init):
    est = SARIMAX((1, 1, 1), initialization=init, concentrate_scale=True).fit(nile)
    ref_model = sm.tsa.SARIMAX(nile.to_numpy(), order=(1, 1, 1), concentrate_scale=True,
                               use_exact_diffuse=init == "exact_diffuse")
    ref = _check_mle(est, ref_model, 1e-4)
    assert list(est.params_.index) == ["ar.L1", "ma.L1"]
    assert abs(est.scale_ - ref.scale) / ref.scale < 1e-5
    # at probssm's estimates: statsmodels' scale, log-likelihood and forecasts
    at = ref_model.smooth(est.params_.to_numpy())
    assert abs(est.scale_ - at.scale) / at.scale < 1e-10
    assert abs(est.loglik_ - at.llf) < 1e-8 * abs(at.llf)
    fc = at.get_forecast(4).summary_frame(alpha=0.1)
    np.testing.assert_allclose(est.predict(4).to_numpy(), fc["mean"], rtol=1e-8)
    np.testing.assert_allclose(est.predict_interval(4, coverage=0.9).iloc[:, 1].to_numpy(),
                               fc["mean_ci_upper"], rtol=1e-8)


def test_concentrated_scale_with_measurement_error(nile):
    est = SARIMAX((0, 1, 0), measurement_error=True, concentrate_scale=True,
                  initialization="approximate_diffuse").fit(nile)
    ref_model = sm.tsa.SARIMAX(nile.to_numpy(), order=(0, 1, 0), measurement_error=True, concentrate_scale=True)
    ref = _check_mle(est, ref_model, 5e-3)
    assert list(est.params_.index) == ["snr.measurement_error"]
    assert abs(est.scale_ - ref.scale) / ref.scale < 5e-3
    # the local level model's variances: snr * scale ~ 15099, scale ~ 1469
    assert abs(est.params_.iloc[0] * est.scale_ - 15099) / 15099 < 5e-3


def test_concentrated_scale_refuses_simple_differencing(nile):
    with pytest.raises(ValueError, match="concentrate_scale=True is not available with simple_differencing"):
        SARIMAX((1, 1, 1), concentrate_scale=True, simple_differencing=True).fit(nile)


# -- regression coefficients as states -------------------------------------------------------------


@pytest.fixture(scope="module")
def dam(nile):
    """The Aswan dam (1899) as the Nile flow's regressor."""
    return pd.DataFrame({"dam": (nile.index.year >= 1899).astype(float)}, index=nile.index)


def test_regression_as_states_matches_statsmodels(nile, dam):
    """AR(1) around a level that drops with the dam: the level before (const) and the drop
    (dam) are states, estimated by the smoother."""
    X = dam.assign(const=1.0)[["const", "dam"]]
    est = SARIMAX((1, 0, 0), mle_regression=False, initialization="approximate_diffuse").fit(nile, X=X)
    ref_model = sm.tsa.SARIMAX(nile, exog=X, order=(1, 0, 0), mle_regression=False)
    _check_mle(est, ref_model, 2e-3, X=X)
    assert list(est.params_.index) == ["ar.L1", "sigma2"]
    at = ref_model.smooth(est.params_.to_numpy())
    smoothed = est.smooth().mean
    assert list(smoothed.columns) == ref_model.state_names == ["state.0", "beta.const", "beta.dam"]
    np.testing.assert_allclose(smoothed.to_numpy(), at.smoothed_state.T, rtol=1e-6)
    assert abs(smoothed["beta.dam"].iloc[-1] + 250) < 50  # the dam lowered the flow by ~250


@pytest.mark.parametrize("init", ["approximate_diffuse", "exact_diffuse"])
def test_time_varying_regression_at_identical_parameters(nile, dam, init):
    params = [-0.7, 10.0, 15000.0]
    ref = sm.tsa.SARIMAX(nile, exog=dam, order=(0, 1, 1), mle_regression=False, time_varying_regression=True,
                         use_exact_diffuse=init == "exact_diffuse")
    ref.ssm.tolerance = 0
    res = ref.smooth(params)
    est = SARIMAX((0, 1, 1), mle_regression=False, time_varying_regression=True, initialization=init)
    est.fit(nile, X=dam, params=params)
    assert list(est.params_.index) == ref.param_names == ["ma.L1", "var.dam", "sigma2"]
    assert abs(est.loglik_ - res.llf) < 1e-8 * abs(res.llf)
    np.testing.assert_allclose(est.smooth().mean["beta.dam"].to_numpy(), res.smoothed_state[-1], rtol=1e-6)


def test_time_varying_regression_needs_state_regression(nile, dam):
    with pytest.raises(ValueError, match="time_varying_regression=True .* needs"):
        SARIMAX((0, 1, 1), time_varying_regression=True).fit(nile, X=dam)


def test_options_survive_save_and_load(nile, dam, tmp_path):
    import probssm

    X = dam.assign(const=1.0)[["const", "dam"]]
    est = SARIMAX((1, 0, 0), mle_regression=False, concentrate_scale=True, measurement_error=True)
    est.fit(nile, X=X, params=[0.5, 0.2])
    X_future = pd.DataFrame({"const": 1.0, "dam": 1.0}, index=pd.period_range("1971", periods=3, freq="Y"))
    back = probssm.load(est.save(tmp_path / "sarimax"))
    assert back.scale_ == est.scale_
    assert back.get_params() == est.get_params()
    np.testing.assert_allclose(back.predict(3, X=X_future).to_numpy(), est.predict(3, X=X_future).to_numpy(), rtol=1e-12)
    ref = sm.tsa.SARIMAX(nile, exog=X, order=(1, 0, 0), mle_regression=False, concentrate_scale=True,
                         measurement_error=True, use_exact_diffuse=True)
    ref.ssm.tolerance = 0
    res = ref.smooth([0.5, 0.2])
    assert abs(est.scale_ - res.scale) < 1e-8 * res.scale
    assert abs(est.loglik_ - res.llf) < 1e-8 * abs(res.llf)
    np.testing.assert_allclose(est.predict(3, X=X_future).to_numpy(), res.forecast(3, exog=X_future.to_numpy()), rtol=1e-8)


def test_regression_as_states_with_simple_differencing(nile, dam):
    params = [0.4, 15000.0]
    ref = sm.tsa.SARIMAX(nile, exog=dam, order=(1, 1, 0), mle_regression=False, simple_differencing=True)
    ref.ssm.tolerance = 0
    res = ref.smooth(params)
    est = SARIMAX((1, 1, 0), simple_differencing=True, mle_regression=False, initialization="approximate_diffuse")
    est.fit(nile, X=dam, params=params)
    assert abs(est.loglik_ - res.llf) < 1e-8 * abs(res.llf)


def test_time_varying_regression_tends_to_constant_state_regression(log_air):
    """As the coefficient variance goes to 0 the likelihood tends to that of constant state
    regression, which equals statsmodels' (statsmodels' own time-varying branch lacks this limit
    for integrated AR models: docs/statsmodels_features.md)."""
    y = pd.Series(log_air.to_numpy())
    X = pd.DataFrame({"x1": np.random.default_rng(0).normal(size=len(y))})
    ref = sm.tsa.SARIMAX(y.to_numpy(), exog=X.to_numpy(), order=(1, 1, 0), mle_regression=False,
                         use_exact_diffuse=True)
    ref.ssm.tolerance = 0
    constant = SARIMAX((1, 1, 0), mle_regression=False, initialization="exact_diffuse").fit(y, X=X, params=[0.2, 0.011])
    assert abs(constant.loglik_ - ref.smooth([0.2, 0.011]).llf) < 1e-8 * abs(constant.loglik_)
    varying = SARIMAX((1, 1, 0), mle_regression=False, time_varying_regression=True,
                      initialization="exact_diffuse").fit(y, X=X, params=[0.2, 1e-12, 0.011])
    assert abs(varying.loglik_ - constant.loglik_) < 1e-6
