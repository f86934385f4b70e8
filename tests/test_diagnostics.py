"""Residual diagnostics against statsmodels' own numbers.

For each statsmodels model the standardised residuals are rebuilt from the filter's
``forecasts`` / ``forecasts_error_cov`` and the data, and every test statistic and p-value is
compared with the ``res.test_*`` methods. statsmodels' compiled filters store 0 (not NaN) at
missing entries of ``standardized_forecasts_error`` for UnobservedComponents, SARIMAX and
DynamicFactor; ``missing="zero"`` reproduces those stored numbers, and ``missing="nan"`` (the
default) the documented definition, which statsmodels computes when its stored array is cleared.
"""

from __future__ import annotations

import warnings

import jax
import matplotlib
import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from probssm import diagnostics as dg
from probssm import kalman
from probssm.datasets import load_airpassengers, load_nile

matplotlib.use("Agg")

RTOL = 1e-10
ALTERNATIVES = ("two-sided", "increasing", "decreasing")


def _rel(a, b) -> float:
    """Largest relative error, NaNs required in the same places."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    assert a.shape == b.shape, (a.shape, b.shape)
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    ok = ~np.isnan(b)
    if not ok.any():
        return 0.0
    return float(np.max(np.abs(a[ok] - b[ok]) / np.maximum(np.abs(b[ok]), 1e-300)))


def _skip(res) -> int:
    return int(max(res.loglikelihood_burn, res.nobs_diffuse))


def _resid_from_statsmodels(res, missing="nan"):
    fr = res.filter_results
    return dg.standardized_residuals(
        np.asarray(fr.endog).T, fr.forecasts.T, fr.forecasts_error_cov.transpose(2, 0, 1),
        skip=_skip(res), missing=missing,
    )


def _documented(res) -> None:
    """Make statsmodels recompute ``standardized_forecasts_error`` by its documented definition
    (NaN where the observation is missing) in place of the compiled filter's stored array."""
    res.filter_results._standardized_forecasts_error = None


def _check_tests(res, resid, period=None):
    """Every statistic and p-value against ``res.test_*``; returns the worst relative error."""
    worst = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lb = dg.ljung_box(resid, period=period)
        lb1 = dg.ljung_box(resid, lags=[1, 3])
    ref = res.test_serial_correlation("ljungbox")
    worst = max(worst, _rel(lb.statistic, ref[:, 0]), _rel(lb.pvalue, ref[:, 1]))
    ref = res.test_serial_correlation("ljungbox", lags=[1, 3])
    worst = max(worst, _rel(lb1.statistic, ref[:, 0]), _rel(lb1.pvalue, ref[:, 1]))
    np.testing.assert_array_equal(lb1.lags, [1, 3])
    worst = max(worst, _rel(np.column_stack(dg.jarque_bera(resid)), res.test_normality("jarquebera")))
    for alternative in ALTERNATIVES:
        for use_f in (True, False):
            het = dg.heteroskedasticity(resid, alternative, use_f)
            ref = res.test_heteroskedasticity("breakvar", alternative=alternative, use_f=use_f)
            worst = max(worst, _rel(np.column_stack([het.statistic, het.pvalue]), ref))
    assert worst < RTOL, worst
    return worst


# --------------------------------------------------------------------------- #
# Fixtures: statsmodels models
# --------------------------------------------------------------------------- #
@pytest.fixture(scope="module")
def nile():
    return load_nile()


@pytest.fixture(scope="module", params=["exact", "approximate"])
def nile_fit(request, nile):
    exact = request.param == "exact"
    return sm.tsa.UnobservedComponents(nile, "llevel", use_exact_diffuse=exact).fit(disp=False)


@pytest.fixture(scope="module")
def airline_missing():
    y = np.log(load_airpassengers())
    y.iloc[[5, 40, 41, 100]] = np.nan
    model = sm.tsa.SARIMAX(y, order=(0, 1, 1), seasonal_order=(0, 1, 1, 12))
    return model.filter([-0.40, -0.56, 0.00135], cov_type="none")  # close to the airline model's MLE


@pytest.fixture(scope="module")
def macro():
    data = sm.datasets.macrodata.load_pandas().data
    y = 100 * np.log(data[["realgdp", "realcons"]]).diff().iloc[1:]
    y.index = pd.period_range("1959Q2", periods=len(y), freq="Q")
    return y


@pytest.fixture(scope="module")
def macro_missing(macro):
    y = macro.copy()
    y.iloc[[10, 11], 0] = np.nan  # partly missing rows
    y.iloc[50, 1] = np.nan
    y.iloc[80, :] = np.nan  # a fully missing row
    return y


# --------------------------------------------------------------------------- #
# Standardised residuals
# --------------------------------------------------------------------------- #
def test_nile_standardized_residuals_and_tests(nile_fit):
    d = _skip(nile_fit)
    assert d == 1
    resid = _resid_from_statsmodels(nile_fit)
    assert resid.shape == (99, 1)
    ref = nile_fit.filter_results.standardized_forecasts_error.T[d:]
    assert _rel(resid, ref) < RTOL
    _check_tests(nile_fit, resid)


def test_sarimax_with_missing_values_stored_zeros(airline_missing):
    res = airline_missing
    assert _skip(res) == 13  # approximate diffuse burn of the 13 differencing states
    resid = _resid_from_statsmodels(res, missing="zero")
    stored = res.filter_results.standardized_forecasts_error.T[13:]
    assert _rel(resid, stored) < RTOL
    assert (resid[[40 - 13, 41 - 13, 100 - 13], 0] == 0).all()
    _check_tests(res, resid, period=res.model.seasonal_periods)


def test_sarimax_with_missing_values_documented_nan(airline_missing):
    res = sm.tsa.SARIMAX(
        airline_missing.model.data.orig_endog, order=(0, 1, 1), seasonal_order=(0, 1, 1, 12)
    ).filter(airline_missing.params, cov_type="none")
    _documented(res)
    resid = _resid_from_statsmodels(res)
    assert np.isnan(resid[[40 - 13, 41 - 13, 100 - 13], 0]).all()
    assert _rel(resid, res.filter_results.standardized_forecasts_error.T[13:]) < RTOL
    with pytest.warns(RuntimeWarning, match="missing values"):
        lb = dg.ljung_box(resid, period=12)
    assert np.isnan(lb.statistic).all() and lb.statistic.shape == (1, 24)
    _check_tests(res, resid, period=12)


def test_varmax_bivariate_partly_missing(macro_missing):
    model = sm.tsa.VARMAX(macro_missing, order=(1, 0), trend="c")
    res = model.filter(model.start_params, cov_type="none")
    resid = _resid_from_statsmodels(res)
    assert resid.shape == (len(macro_missing), 2)
    stored = res.filter_results.standardized_forecasts_error.T
    assert _rel(resid, stored) < RTOL
    assert np.isnan(resid[[10, 11], 0]).all() and np.isfinite(resid[[10, 11], 1]).all()
    assert np.isnan(resid[80]).all()
    _check_tests(res, resid)


def test_dynamic_factor_bivariate(macro, macro_missing):
    # Complete data: one Cholesky factor per step.
    model = sm.tsa.DynamicFactor(macro, k_factors=1, factor_order=1)
    res = model.filter(model.start_params, cov_type="none")
    resid = _resid_from_statsmodels(res)
    assert _rel(resid, res.filter_results.standardized_forecasts_error.T) < RTOL
    _check_tests(res, resid)
    # Missing entries: stored zeros, and the documented NaN definition.
    model = sm.tsa.DynamicFactor(macro_missing, k_factors=1, factor_order=1)
    res = model.filter(model.start_params, cov_type="none")
    zero = _resid_from_statsmodels(res, missing="zero")
    assert _rel(zero, res.filter_results.standardized_forecasts_error.T) < RTOL
    _check_tests(res, zero)
    _documented(res)
    resid = _resid_from_statsmodels(res)
    assert _rel(resid, res.filter_results.standardized_forecasts_error.T) < RTOL
    _check_tests(res, resid)


def test_multivariate_standardisation_whitens():
    """Non-diagonal F: L^{-1} v with F = L L^T, also on a partly missing row."""
    rng = np.random.default_rng(0)
    T, m = 6, 3
    a = rng.normal(size=(T, m, m))
    cov = a @ a.transpose(0, 2, 1) + m * np.eye(m)
    mean = rng.normal(size=(T, m))
    y = rng.normal(size=(T, m))
    y[2, 1] = np.nan
    y[4] = np.nan
    y_before, cov_before = y.copy(), cov.copy()
    out = dg.standardized_residuals(y, mean, cov)
    np.testing.assert_array_equal(y, y_before)
    np.testing.assert_array_equal(cov, cov_before)
    for t in (0, 1, 3, 5):
        lower = np.linalg.cholesky(cov[t])
        np.testing.assert_allclose(out[t], np.linalg.solve(lower, y[t] - mean[t]), rtol=1e-12)
    obs = np.array([0, 2])
    lower = np.linalg.cholesky(cov[2][np.ix_(obs, obs)])
    np.testing.assert_allclose(out[2, obs], np.linalg.solve(lower, y[2, obs] - mean[2, obs]), rtol=1e-12)
    assert np.isnan(out[2, 1]) and np.isnan(out[4]).all()
    zero = dg.standardized_residuals(y, mean, cov, skip=1, missing="zero")
    assert zero.shape == (T - 1, m) and zero[1, 1] == 0 and (zero[3] == 0).all()


def test_univariate_shorthand_and_non_positive_variance():
    y = np.array([1.0, 2.0, np.nan, 4.0])
    out = dg.standardized_residuals(y, np.zeros(4), np.array([1.0, 4.0, 1.0, 16.0]))
    np.testing.assert_allclose(out[:, 0], [1.0, 1.0, np.nan, 1.0])
    with pytest.warns(RuntimeWarning, match=r"not positive definite .*\[1\]"):
        out = dg.standardized_residuals(y, np.zeros(4), np.array([1.0, -4.0, 1.0, 16.0]))
    assert np.isnan(out[1, 0]) and out[3, 0] == 1.0


# --------------------------------------------------------------------------- #
# probssm's own engine
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("missing", [False, True], ids=["complete", "missing"])
@pytest.mark.parametrize("init", ["exact", "approximate"])
def test_probssm_filter_matches_statsmodels_diagnostics(nile, init, missing):
    y = nile.to_numpy().copy()
    if missing:
        y[[20, 21, 60]] = np.nan
    ref = sm.tsa.UnobservedComponents(y, "llevel", use_exact_diffuse=(init == "exact"))
    ref = ref.fit(disp=False, cov_type="none")  # probssm filters at statsmodels' MLE
    sigma2_eps, sigma2_eta = ref.params
    with jax.enable_x64(True):
        model = kalman.LGSSM(
            [[1.0]], [[sigma2_eta]], [[1.0]], [[sigma2_eps]], [0.0], [[0.0]],
            initial_diffuse_cov=[[1.0]],
        )
        burn = 0
        if init == "approximate":
            burn = kalman.diffuse_rank(model)
            model = kalman.approximate_diffuse(model)
        filt = kalman.filter(model, y[:, None], burn=burn)
    skip = max(burn, dg.nobs_diffuse(filt))
    assert skip == _skip(ref) == 1
    assert dg.nobs_diffuse(filt.predicted_diffuse_cov) == ref.nobs_diffuse
    fill = "zero" if missing else "nan"  # statsmodels' UnobservedComponents stores zeros
    resid = dg.standardized_residuals(  # JAX arrays are accepted as they are
        y, filt.observation_mean, filt.observation_cov, skip=skip, missing=fill
    )
    assert _rel(resid, ref.filter_results.standardized_forecasts_error.T[skip:]) < RTOL
    lb, jb = dg.ljung_box(resid), dg.jarque_bera(resid)
    het = dg.heteroskedasticity(resid)
    assert _rel(lb.statistic, ref.test_serial_correlation("ljungbox")[:, 0]) < RTOL
    assert _rel(np.column_stack(jb), ref.test_normality("jarquebera")) < RTOL
    assert _rel(np.column_stack(het[:2]), ref.test_heteroskedasticity("breakvar")) < RTOL


def test_nobs_diffuse_two_state_trend():
    rng = np.random.default_rng(3)
    y = np.cumsum(np.cumsum(rng.normal(size=60))) + rng.normal(size=60)
    y[[1, 17]] = np.nan
    params = [1.3, 0.4, 0.2]
    ref = sm.tsa.UnobservedComponents(y, "lltrend", use_exact_diffuse=True)
    ref = ref.filter(params, cov_type="none")
    with jax.enable_x64(True):
        model = kalman.LGSSM(
            [[1.0, 1.0], [0.0, 1.0]], np.diag(params[1:]), [[1.0, 0.0]], [[params[0]]],
            np.zeros(2), np.zeros((2, 2)), initial_diffuse_cov=np.eye(2),
        )
        filt = kalman.filter(model, y[:, None])
    assert dg.nobs_diffuse(filt) == ref.nobs_diffuse == 3
    assert dg.nobs_diffuse(np.zeros((5, 2, 2))) == 0
    assert dg.nobs_diffuse(np.ones((5, 2, 2))) == 5


# --------------------------------------------------------------------------- #
# Table, plot, errors
# --------------------------------------------------------------------------- #
def test_diagnostics_table_matches_summary_numbers(nile_fit):
    resid = _resid_from_statsmodels(nile_fit)
    table = dg.diagnostics_table(pd.DataFrame(resid, columns=["volume"]))
    assert list(table.index) == ["volume"] and table.index.name == "variable"
    row = table.loc["volume"]
    lb = nile_fit.test_serial_correlation("ljungbox", lags=[1])
    jb = nile_fit.test_normality("jarquebera")
    het = nile_fit.test_heteroskedasticity("breakvar")
    expected = [lb[0, 0, 0], lb[0, 1, 0], *jb[0], *het[0]]
    got = row[["ljung_box", "ljung_box_pvalue", "jarque_bera", "jarque_bera_pvalue", "skew",
               "kurtosis", "heteroskedasticity", "heteroskedasticity_pvalue"]].to_numpy()
    assert _rel(got, expected) < RTOL


def test_diagnostics_table_multivariate_names(macro):
    model = sm.tsa.DynamicFactor(macro, k_factors=1, factor_order=1)
    resid = _resid_from_statsmodels(model.filter(model.start_params, cov_type="none"))
    table = dg.diagnostics_table(resid, names=["gdp", "cons"])
    assert table.shape == (2, 8) and list(table.index) == ["gdp", "cons"]
    assert list(dg.diagnostics_table(resid).index) == [0, 1]


def test_plot_diagnostics_smoke(nile_fit, macro_missing):
    import matplotlib.pyplot as plt

    d = _skip(nile_fit)
    resid = _resid_from_statsmodels(nile_fit)
    fig = dg.plot_diagnostics(resid, index=load_nile().index[d:])
    assert isinstance(fig, matplotlib.figure.Figure) and len(fig.axes) == 4
    assert [ax.get_title() for ax in fig.axes[1:]] == [
        "Histogram plus estimated density", "Normal Q-Q", "Correlogram"
    ]
    plt.close(fig)
    frame = pd.DataFrame(
        np.random.default_rng(1).normal(size=macro_missing.shape), index=macro_missing.index,
        columns=macro_missing.columns,
    ).where(macro_missing.notna())
    fig = plt.figure()
    assert dg.plot_diagnostics(frame, variable="realcons", lags=5, fig=fig) is fig
    assert len(fig.axes) == 4 and "realcons" in fig.axes[0].get_title()
    plt.close(fig)


def test_bad_input():
    rng = np.random.default_rng(0)
    resid = rng.normal(size=(30, 2))
    for fn in (dg.ljung_box, dg.jarque_bera, dg.heteroskedasticity, dg.diagnostics_table):
        with pytest.raises(ValueError, match="shape"):
            fn(resid[:, :, None])
    with pytest.raises(ValueError, match="lags must be >= 1"):
        dg.ljung_box(resid, lags=0)
    with pytest.raises(ValueError, match="lags must be >= 1"):
        dg.ljung_box(resid, lags=[0, 2])
    with pytest.raises(ValueError, match="at most T - 1"):
        dg.ljung_box(resid, lags=30)
    with pytest.raises(ValueError, match="too few residuals"):
        dg.ljung_box(resid[:4])
    with pytest.raises(ValueError, match="too few residuals"):
        dg.heteroskedasticity(resid[:4])
    short = resid.copy()
    short[1:, 1] = np.nan
    with pytest.raises(ValueError, match=r"resid\[:, 1\] has 1 non-missing"):
        dg.jarque_bera(short)
    with pytest.raises(ValueError, match="constant"):
        dg.jarque_bera(np.ones(10))
    with pytest.raises(ValueError, match="alternative"):
        dg.heteroskedasticity(resid, alternative="up")
    with pytest.raises(ValueError, match="lags must be >= 1"):
        dg.plot_diagnostics(resid, lags=0)
    with pytest.raises(ValueError, match="non-missing"):
        dg.plot_diagnostics(short, variable=1)
    with pytest.raises(ValueError, match=r"observation_cov must have shape \(T, m, m\)"):
        dg.standardized_residuals(resid, resid, np.ones((30, 2)))
    with pytest.raises(ValueError, match=r"observation_mean must have shape"):
        dg.standardized_residuals(resid, resid[:, :1], np.ones((30, 2, 2)))
    with pytest.raises(ValueError, match="skip"):
        dg.standardized_residuals(resid, resid, np.ones((30, 2, 2)), skip=30)
    with pytest.raises(ValueError, match="missing"):
        dg.standardized_residuals(resid, resid, np.ones((30, 2, 2)), missing="drop")
    bad_mean = resid.copy()
    bad_mean[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"observation_mean is not finite at position \(3, 1\)"):
        dg.standardized_residuals(resid, bad_mean, np.broadcast_to(np.eye(2), (30, 2, 2)))
    with pytest.raises(ValueError, match="shape"):
        dg.nobs_diffuse(np.ones((3, 2)))


def test_heteroskedasticity_short_subset_warns():
    resid = np.random.default_rng(2).normal(size=(30, 2))
    resid[:9, 1] = np.nan  # 1 of the first h = 10 left
    with pytest.warns(RuntimeWarning, match="fewer than 2"):
        het = dg.heteroskedasticity(resid)
    assert np.isfinite(het.statistic[0]) and np.isnan(het.statistic[1]) and het.subset_length == 10


def test_inputs_are_not_modified():
    frame = pd.DataFrame(np.random.default_rng(4).normal(size=(40, 2)), columns=["a", "b"])
    frame.iloc[3, 1] = np.nan
    before = frame.copy()
    with pytest.warns(RuntimeWarning, match="missing"):
        dg.ljung_box(frame)
    dg.jarque_bera(frame)
    dg.heteroskedasticity(frame)
    with pytest.warns(RuntimeWarning, match="missing"):
        table = dg.diagnostics_table(frame)
    pd.testing.assert_frame_equal(frame, before)
    assert list(table.index) == ["a", "b"] and np.isnan(table.loc["b", "ljung_box"])
