"""UnobservedComponents against statsmodels: identical parameters, MLE, components, regression.

statsmodels' filter switches to a steady state once the predicted covariance stops changing
(``ssm.tolerance = 1e-19``), which moves its log-likelihood by ~1e-7 relative on these series; the
reference here is its exact filter (``tolerance = 0``).
"""

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from probssm.datasets import load_nile
from probssm.structural import (
    Autoregressive, Cycle, LocalLinearTrend, Regression, Seasonal, TrigSeasonal, UnobservedComponents,
)


@pytest.fixture(scope="module")
def air():
    from sktime.datasets import load_airline

    y = np.log(load_airline())
    y.index = y.index.to_timestamp()
    y.index.freq = "MS"
    y.name = "passengers"
    return y


def _exact(model):
    model.ssm.tolerance = 0
    return model


def _rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


CASES = {
    "llt+trig": (dict(level="lltrend", freq_seasonal=[{"period": 12, "harmonics": 3}]),
                 ["local linear trend", TrigSeasonal(12, harmonics=3)], [3e-4, 5e-4, 1e-6, 2e-5]),
    "level+dummy seasonal": (dict(level="llevel", seasonal=12), ["local level", Seasonal(12)],
                             [3e-4, 5e-4, 2e-5]),
    "cycle": (dict(level="llevel", cycle=True, damped_cycle=True, stochastic_cycle=True),
              ["local level", Cycle()], [3e-4, 5e-4, 2e-5, 0.3, 0.8]),
    "ar2+smooth trend": (dict(level="strend", autoregressive=2), ["smooth trend", Autoregressive(2)],
                         [3e-4, 1e-6, 2e-4, 0.5, 0.2]),
}


@pytest.mark.parametrize("init", ["approximate_diffuse", "exact_diffuse"])
@pytest.mark.parametrize("case", list(CASES))
def test_identical_parameters_match_statsmodels(air, case, init):
    sm_kw, terms, params = CASES[case]
    y = air.copy()
    y.iloc[[20, 21, 70]] = np.nan
    ref_model = _exact(sm.tsa.UnobservedComponents(y, use_exact_diffuse=init == "exact_diffuse", **sm_kw))
    ref = ref_model.smooth(params)
    est = UnobservedComponents(terms, initialization=init).fit(y, params=params)
    assert list(est.params_.index) == ref_model.param_names
    assert _rel(est.loglik_, ref.llf) < 1e-8
    filt, smooth = est.filter(), est.smooth()
    assert _rel(filt.mean.to_numpy(), ref.filtered_state.T) < 1e-6
    assert _rel(filt.cov, ref.filtered_state_cov.transpose(2, 0, 1)) < 1e-6
    assert _rel(smooth.mean.to_numpy(), ref.smoothed_state.T) < 1e-6
    # With a 1e6 prior variance the smoothed covariances of the first `burn` steps are
    # differences of numbers ~1e6 apart from values ~1e-2: round-off noise in both libraries.
    # They are compared once the prior has been absorbed (the exact diffuse case compares all).
    start = est._burn
    assert _rel(smooth.cov[start:], ref.smoothed_state_cov.transpose(2, 0, 1)[start:]) < 1e-6
    fc = ref.get_forecast(14).summary_frame(alpha=0.1)
    assert _rel(est.predict(14).to_numpy(), fc["mean"]) < 1e-6
    band = est.predict_interval(14, coverage=0.9)
    assert _rel(band[("passengers", 0.9, "lower")], fc["mean_ci_lower"]) < 1e-6
    assert _rel(band[("passengers", 0.9, "upper")], fc["mean_ci_upper"]) < 1e-6
    assert est.predict(3).index.equals(pd.date_range("1961-01-01", periods=3, freq="MS"))


def test_components_match_statsmodels(air):
    params = [3e-4, 5e-4, 1e-6, 2e-5, 2e-5, 0.3, 0.8]
    ref = _exact(sm.tsa.UnobservedComponents(
        air, "lltrend", freq_seasonal=[{"period": 12, "harmonics": 2}], cycle=True,
        stochastic_cycle=True, damped_cycle=True, use_exact_diffuse=True,
    )).smooth(params)
    est = UnobservedComponents(["local linear trend", TrigSeasonal(12, 2), Cycle()]).fit(air, params=params)
    comps = est.components()
    assert _rel(comps[("level", "mean")], ref.level.smoothed) < 1e-6
    # The last of the 8 diffuse steps has F_inf ~ 1e-5, and the exact diffuse updates then cancel
    # ~11 digits: against an 80-digit dense reference (kappa -> inf) both libraries are off in
    # the variances of the first steps (t = 4: statsmodels 9e-5, probssm 3e-3; t = 8: 2e-5 and
    # 5e-4); by t = 12 both agree with it to 1e-9. Variances are compared from t = 2 * 8 on.
    d = 2 * ref.nobs_diffuse
    assert _rel(comps[("level", "std")][d:] ** 2, ref.level.smoothed_cov[d:]) < 1e-6
    assert _rel(comps[("slope", "mean")], ref.trend.smoothed) < 1e-6
    assert _rel(comps[("freq_seasonal_12(2)", "mean")], ref.freq_seasonal[0].smoothed) < 1e-6
    assert _rel(comps[("cycle", "mean")], ref.cycle.smoothed) < 1e-6
    assert _rel(comps[("cycle", "std")][d:] ** 2, ref.cycle.smoothed_cov[d:]) < 1e-6


def test_mle_at_least_as_good_as_statsmodels(air):
    """Each model's maximised log-likelihood is at least statsmodels' (its exact filter) minus 1e-6."""
    specs = [
        (dict(level="lltrend", freq_seasonal=[{"period": 12, "harmonics": 3}]),
         ["local linear trend", TrigSeasonal(12, harmonics=3)]),
        (dict(level="llevel", cycle=True, damped_cycle=True, stochastic_cycle=True), ["local level", Cycle()]),
    ]
    for sm_kw, terms in specs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref_model = _exact(sm.tsa.UnobservedComponents(air, **sm_kw))
            ref = ref_model.fit(disp=0, maxiter=500)
        est = UnobservedComponents(terms, initialization="approximate_diffuse").fit(air)
        assert est.loglik_ >= ref.llf - 1e-6, (terms, est.loglik_, ref.llf)
        # and our optimum is a real one: statsmodels' own likelihood agrees at our parameters
        assert abs(ref_model.loglike(est.params_.to_numpy()) - est.loglik_) < 1e-6 * abs(est.loglik_)
        assert est.converged_


def test_fixed_regression_matches_statsmodels(air):
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(len(air) + 6, 2)), columns=["promo", "price"],
                     index=pd.date_range(air.index[0], periods=len(air) + 6, freq="MS"))
    y = air + 0.05 * X["promo"].iloc[:len(air)].to_numpy() - 0.02 * X["price"].iloc[:len(air)].to_numpy()
    params = [3e-4, 5e-4, 2e-5, 0.05, -0.02]
    ref = _exact(sm.tsa.UnobservedComponents(y, "llevel", seasonal=12, exog=X.iloc[:len(air)])).smooth(params)
    est = UnobservedComponents(["local level", Seasonal(12)], initialization="approximate_diffuse").fit(y, X=X, params=params)
    assert list(est.params_.index) == ["sigma2.irregular", "sigma2.level", "sigma2.seasonal", "beta.promo", "beta.price"]
    assert _rel(est.loglik_, ref.llf) < 1e-8
    fc = ref.get_forecast(6, exog=X.iloc[len(air):]).summary_frame(alpha=0.1)
    # X covers the forecast period too: rows are picked by label
    assert _rel(est.predict(6, X=X).to_numpy(), fc["mean"]) < 1e-6
    assert _rel(est.predict_interval(6, X=X)[(y.name, 0.9, "upper")], fc["mean_ci_upper"]) < 1e-6
    assert _rel(est.components()[("regression", "mean")], X.iloc[:len(air)].to_numpy() @ params[3:]) < 1e-12
    with pytest.raises(ValueError, match="X is required"):
        est.predict(6)
    with pytest.raises(ValueError, match=r"columns \['price'\] seen in fit are missing"):
        est.predict(6, X=X[["promo"]])
    bad = X.copy()
    bad.iloc[3, 1] = np.nan
    with pytest.raises(ValueError, match="column 'price'"):
        UnobservedComponents(["local level"]).fit(y, X=bad)

    fitted = UnobservedComponents(["local level", Seasonal(12)], initialization="approximate_diffuse").fit(y, X=X)
    assert fitted.loglik_ >= est.loglik_
    assert abs(fitted.params_["beta.promo"] - 0.05) < 0.02


def test_time_varying_regression_with_zero_variance_is_statsmodels_state_regression(air):
    """Coefficients as random-walk states with zero variance = statsmodels' ``mle_regression=False``."""
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"x": rng.normal(size=len(air))}, index=air.index)
    y = air + 0.1 * X["x"]
    ref = _exact(sm.tsa.UnobservedComponents(y, "llevel", exog=X, mle_regression=False)).smooth([3e-4, 5e-4])
    est = UnobservedComponents(["local level", Regression(time_varying=True)], initialization="approximate_diffuse").fit(
        y, X=X, params={"sigma2.irregular": 3e-4, "sigma2.level": 5e-4, "sigma2.beta.x": 0.0})
    assert _rel(est.loglik_, ref.llf) < 1e-8
    assert _rel(est.smooth().mean["beta.x"], ref.smoothed_state[1]) < 1e-6


def test_nile_local_level_equals_local_level_estimator():
    from probssm.structural import LocalLevel

    nile = load_nile()
    a = UnobservedComponents("local level").fit(nile)
    b = LocalLevel().fit(nile)
    assert abs(a.loglik_ - b.loglik_) < 1e-6
    np.testing.assert_allclose(a.params_.to_numpy(), b.params_.to_numpy(), rtol=1e-3)


def test_bad_specifications(air):
    with pytest.raises(ValueError, match="period must be >= 2"):
        UnobservedComponents(["local level", Seasonal(1)]).fit(air)
    with pytest.raises(TypeError, match="period must be an integer"):
        UnobservedComponents(["local level", Seasonal(12.5)]).fit(air)
    with pytest.raises(ValueError, match="unknown trend"):
        UnobservedComponents(["local wiggle"]).fit(air)
    with pytest.raises(ValueError, match="needs exogenous data"):
        UnobservedComponents(["local level", Regression()]).fit(air)
    with pytest.raises(ValueError, match="constant"):
        UnobservedComponents(["local level"]).fit(pd.Series(np.full(30, 2.0)))
    with pytest.raises(ValueError, match="repeat the parameters"):
        UnobservedComponents(["local level", LocalLinearTrend()]).fit(air)
    with pytest.raises(ValueError, match="more observations"):
        UnobservedComponents(["local linear trend", Seasonal(12)]).fit(air.iloc[:10])
    with pytest.raises(ValueError, match="outside its admissible range"):
        UnobservedComponents("local level").fit(air, params=[-1.0, 1.0])


def test_clone_save_load_roundtrip(tmp_path, air):
    from sklearn.base import clone

    import probssm

    est = UnobservedComponents(["local linear trend", TrigSeasonal(12, 2)])
    assert clone(est).get_params()["terms"] == est.get_params()["terms"]
    est.fit(air, params=[3e-4, 5e-4, 1e-6, 2e-5])
    loaded = probssm.load(est.save(tmp_path / "uc"))
    pd.testing.assert_frame_equal(loaded.predict_interval(5), est.predict_interval(5))
    pd.testing.assert_frame_equal(loaded.components(), est.components())


def test_plot_components_draws_one_panel_per_component(air):
    import matplotlib

    matplotlib.use("Agg")
    est = UnobservedComponents(["local linear trend", TrigSeasonal(12, 2)]).fit(
        air, params=[3e-4, 5e-4, 1e-6, 2e-5])
    fig = est.plot_components()
    assert len(fig.axes) == 4  # data, level, slope, seasonal


def test_residual_diagnostics_match_statsmodels(air):
    params = [3e-4, 5e-4, 1e-6, 2e-5]
    ref = _exact(sm.tsa.UnobservedComponents(air, "lltrend", freq_seasonal=[{"period": 12, "harmonics": 3}])).smooth(params)
    est = UnobservedComponents(["local linear trend", TrigSeasonal(12, harmonics=3)],
                               initialization="approximate_diffuse").fit(air, params=params)
    resid = est.standardized_residuals()
    skip = max(ref.loglikelihood_burn, ref.nobs_diffuse)
    assert _rel(resid.to_numpy()[:, 0], ref.filter_results.standardized_forecasts_error[0, skip:]) < 1e-6
    table = est.diagnostics()
    lb = ref.test_serial_correlation("ljungbox", lags=1)[0]
    jb = ref.test_normality("jarquebera")[0]
    het = ref.test_heteroskedasticity("breakvar")[0]
    row = table.iloc[0]
    np.testing.assert_allclose([row["ljung_box"], row["ljung_box_pvalue"]], lb[:, 0], rtol=1e-6)
    np.testing.assert_allclose([row["jarque_bera"], row["jarque_bera_pvalue"], row["skew"], row["kurtosis"]], jb, rtol=1e-6)
    np.testing.assert_allclose([row["heteroskedasticity"], row["heteroskedasticity_pvalue"]], het, rtol=1e-6)
    assert "Ljung-Box (L1) Q" in est.summary()
    import matplotlib

    matplotlib.use("Agg")
    assert len(est.plot_diagnostics().axes) >= 4
