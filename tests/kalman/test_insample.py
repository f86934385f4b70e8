"""In-sample predictions (fittedvalues_, resid_, predict_in_sample) against statsmodels'
fittedvalues, resid and get_prediction(start, end, dynamic) on the Nile and airline series.

Each probssm model is set at statsmodels' parameters (``fit(y, params=...)``), so the
predictions compare at 1e-8 whatever either optimiser does. statsmodels' filter runs with
``tolerance = 0`` (no switch to the steady-state gain, which moves its predictions by about
1e-10 relative)."""

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from probssm import SARIMAX, KalmanFilter, LocalLevel, UnobservedComponents
from probssm.structural import Seasonal


def _mle(mod):
    """statsmodels' estimates (its starting-value and convergence warnings are beside the point:
    the comparison is at whatever parameters it returns)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mod.fit(disp=False).params


def _smoothed(mod, params):
    mod.ssm.tolerance = 0
    return mod.smooth(params)


@pytest.fixture(scope="module")
def cases(nile, log_air):
    """``name -> (probssm estimator, statsmodels results)`` at the same parameters."""
    out = {}
    y = nile.to_numpy()
    for init in ("exact_diffuse", "approximate_diffuse"):
        mod = sm.tsa.UnobservedComponents(y, "llevel", use_exact_diffuse=init == "exact_diffuse")
        params = _mle(mod)
        out[f"local level {init}"] = (LocalLevel(initialization=init).fit(nile, params=params), _smoothed(mod, params))
    mod = sm.tsa.SARIMAX(log_air.to_numpy(), order=(2, 1, 1), seasonal_order=(0, 1, 1, 12), use_exact_diffuse=True)
    params = _mle(mod)
    out["sarimax"] = (SARIMAX((2, 1, 1), (0, 1, 1, 12)).fit(log_air, params=params), _smoothed(mod, params))
    mod = sm.tsa.UnobservedComponents(log_air.to_numpy(), "lltrend", seasonal=4)
    params = _mle(mod)
    uc = UnobservedComponents(["local linear trend", Seasonal(4)], initialization="approximate_diffuse")
    out["unobserved components"] = (uc.fit(log_air, params=params), _smoothed(mod, params))
    return out


NAMES = ["local level exact_diffuse", "local level approximate_diffuse", "sarimax", "unobserved components"]


@pytest.mark.parametrize("name", NAMES)
def test_fittedvalues_and_resid_match_statsmodels(cases, name):
    est, ref = cases[name]
    fitted, resid = est.fittedvalues_, est.resid_
    assert isinstance(fitted, pd.Series) and fitted.index.equals(est._y.index)
    scale = np.max(np.abs(ref.fittedvalues))
    np.testing.assert_allclose(fitted.to_numpy(), ref.fittedvalues, rtol=0, atol=1e-8 * scale)
    np.testing.assert_allclose(resid.to_numpy(), ref.resid, rtol=0, atol=1e-8 * scale)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("start, end, dynamic", [(None, None, False), (5, 60, 3), (0, None, True), (-30, -2, 10)])
def test_predict_in_sample_matches_get_prediction(cases, name, start, end, dynamic):
    est, ref = cases[name]
    T = len(est._y.index)
    pred = ref.get_prediction(start=None if start is None else start % T,
                              end=None if end is None else end % T, dynamic=dynamic)
    scale = np.max(np.abs(ref.fittedvalues))
    mean = est.predict_in_sample(start, end, dynamic=dynamic)
    np.testing.assert_allclose(mean.to_numpy(), pred.predicted_mean, rtol=0, atol=1e-8 * scale)
    bands = est.predict_in_sample(start, end, dynamic=dynamic, coverage=[0.9, 0.95])
    for c in (0.9, 0.95):
        ci = pred.conf_int(alpha=1 - c)
        np.testing.assert_allclose(bands[(est._y.columns[0], c, "lower")], ci[:, 0], rtol=0, atol=1e-8 * scale)
        np.testing.assert_allclose(bands[(est._y.columns[0], c, "upper")], ci[:, 1], rtol=0, atol=1e-8 * scale)


def test_labels_and_positions_agree(cases, nile):
    est, ref = cases["local level exact_diffuse"]
    by_label = est.predict_in_sample(nile.index[10], nile.index[40], dynamic=nile.index[20])
    by_position = est.predict_in_sample(10, 40, dynamic=10)
    pd.testing.assert_series_equal(by_label, by_position)
    assert by_label.index.equals(nile.index[10:41])


def test_bad_positions_raise(cases):
    est, _ = cases["local level exact_diffuse"]
    with pytest.raises(ValueError, match="outside the training data"):
        est.predict_in_sample(0, 100)
    with pytest.raises(ValueError, match="comes before start"):
        est.predict_in_sample(50, 10)
    with pytest.raises(ValueError, match="not a label"):
        est.predict_in_sample("2050")
    with pytest.raises(ValueError, match="non-negative offset"):
        est.predict_in_sample(dynamic=-1)
    with pytest.raises(TypeError, match="position or a label"):
        est.predict_in_sample(start=True)


def test_missing_values_have_predictions_but_no_residual(nile, cases):
    _, ref = cases["local level exact_diffuse"]
    y = nile.copy()
    y.iloc[[20, 21]] = np.nan
    before = y.copy()
    est = LocalLevel().fit(y, params=ref.params)
    assert est.resid_.iloc[[20, 21]].isna().all() and est.fittedvalues_.notna().all()
    pd.testing.assert_series_equal(y, before)
    mod = sm.tsa.UnobservedComponents(y.to_numpy(), "llevel", use_exact_diffuse=True)
    np.testing.assert_allclose(est.fittedvalues_.to_numpy(), _smoothed(mod, ref.params).fittedvalues, atol=1e-5)


def test_kalman_filter_with_the_local_level_matrices(cases, nile):
    est, _ = cases["local level exact_diffuse"]
    s_eps, s_eta = est.params_.to_numpy()
    kf = KalmanFilter([[1.0]], [[s_eta]], [[1.0]], [[s_eps]]).fit(nile)
    np.testing.assert_allclose(kf.fittedvalues_.to_numpy(), est.fittedvalues_.to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(kf.predict_in_sample(30, dynamic=5).to_numpy(),
                               est.predict_in_sample(30, dynamic=5).to_numpy(), rtol=1e-12)


def test_panel_fittedvalues_are_the_series_fits(nile):
    panel = pd.DataFrame({"a": nile.to_numpy(), "b": nile.to_numpy()[::-1].copy()}, index=nile.index)
    est = LocalLevel().fit(panel)
    fitted = est.fittedvalues_
    assert fitted.index.names[0] == "series_id"
    for sid, one in est.estimators_.items():
        np.testing.assert_allclose(fitted.loc[sid].to_numpy(), one.fittedvalues_.to_numpy(), rtol=1e-12)
        np.testing.assert_allclose(est.resid_.loc[sid].to_numpy(), one.resid_.to_numpy(), rtol=1e-12)
