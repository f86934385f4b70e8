"""Automatic model selection: AutoSARIMAX against statsmodels-based reference searches (the same
candidates fitted by statsmodels' SARIMAX, the same criterion), its differencing against
statsmodels' KPSS and STL, AutoUC against per-specification fits, panels, saving, bad input."""

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from statsmodels.tsa.seasonal import STL
from statsmodels.tsa.stattools import kpss

import probssm
from probssm.datasets import load_airpassengers, load_us_employment
from probssm.structural import (
    SARIMAX,
    AutoSARIMAX,
    AutoUC,
    Seasonal,
    UnobservedComponents,
)

# small bounds keep every exact-likelihood candidate at most 14 ARMA states
BOUNDS = {"max_p": 1, "max_q": 1, "max_P": 1, "max_Q": 1}


@pytest.fixture(scope="module")
def log_air():
    return np.log(load_airpassengers())


@pytest.fixture(scope="module")
def employment():
    """Two series of the US employment panel, the last 13 years before the held-out 24 months."""
    y = load_us_employment().iloc[:-24, :2]
    return y.iloc[-156:]


def _reference_d_D(y, s):
    """The differencing rule written out with statsmodels: D while the STL seasonal strength
    exceeds 0.64 (at most 1), then d while KPSS (level, floor(3 sqrt(n) / 13) lags) exceeds its
    5 % critical value (at most 2)."""
    x = np.asarray(y, float)
    x = x[np.isfinite(x)]
    D = 0
    fit = STL(x, period=s, seasonal=11, robust=False).fit(inner_iter=2, outer_iter=0)
    strength = 1 - np.var(fit.resid, ddof=1) / np.var(fit.resid + fit.seasonal, ddof=1)
    if strength > 0.64:
        x, D = x[s:] - x[:-s], 1
    d = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        while d < 2:
            stat, _, _, crit = kpss(x, regression="c", nlags=int(3 * np.sqrt(x.size) / 13))
            if stat <= crit["5%"]:
                break
            x, d = np.diff(x), d + 1
    return d, D


def _statsmodels_aicc(y, row, s):
    """AICc of statsmodels' SARIMAX fitted to the differenced series with the candidate's orders."""
    w = np.asarray(y, float)
    for _ in range(int(row["D"])):
        w = w[s:] - w[:-s]
    w = np.diff(w, int(row["d"]))
    seasonal = (int(row["P"]), 0, int(row["Q"]), s) if (row["P"] or row["Q"]) else (0, 0, 0, 0)
    model = sm.tsa.SARIMAX(w, order=(int(row["p"]), 0, int(row["q"])), seasonal_order=seasonal,
                           trend="c" if row["constant"] else "n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = model.fit(disp=False, maxiter=200)
    return res.aicc


@pytest.fixture(scope="module")
def air_exact(log_air):
    return AutoSARIMAX(12, approximation=False, verbose=False, **BOUNDS).fit(log_air)


@pytest.fixture(scope="module")
def employment_exact(employment):
    return AutoSARIMAX(12, approximation=False, verbose=False, **BOUNDS).fit(employment.iloc[:, 0])


@pytest.mark.parametrize("case", ["air", "employment"])
def test_orders_equal_a_statsmodels_search_over_the_same_candidates(case, air_exact, employment_exact, log_air,
                                                                     employment):
    est, y = (air_exact, log_air) if case == "air" else (employment_exact, employment.iloc[:, 0])
    table = est.candidates_
    assert len(table) >= 5
    reference = np.array([_statsmodels_aicc(y.to_numpy(), row, 12) for _, row in table.iterrows()])
    # the same criterion values, candidate by candidate, hence the same choice
    np.testing.assert_allclose(table["aicc"].to_numpy(), reference, rtol=1e-5, atol=1e-3)
    best = table.iloc[int(np.argmin(reference))]
    assert est.order_ == (best["p"], best["d"], best["q"])
    assert est.seasonal_order_[:3] == (best["P"], best["D"], best["Q"])
    assert (est.trend_ == "c") == bool(best["constant"])


@pytest.mark.parametrize("case", ["air", "employment"])
def test_differencing_follows_the_kpss_and_seasonal_strength_rule(case, air_exact, employment_exact, log_air,
                                                                  employment):
    est, y = (air_exact, log_air) if case == "air" else (employment_exact, employment.iloc[:, 0])
    d, D = _reference_d_D(y.to_numpy(), 12)
    assert (est.order_[1], est.seasonal_order_[1]) == (d, D)


@pytest.fixture(scope="module")
def employment_panel(employment):
    return AutoSARIMAX(12, approximation=True, verbose=False).fit(employment)


def test_never_returns_a_model_worse_than_a_candidate(air_exact, employment_exact, employment_panel):
    fits = [air_exact, employment_exact, *employment_panel.estimators_.values()]
    for est in fits:
        values = est.candidates_[est.information_criterion]
        assert est.criterion_ == pytest.approx(values.min(), rel=1e-12)
        chosen = est.candidates_.loc[values.idxmin()]
        assert est.order_ == (chosen["p"], chosen["d"], chosen["q"])
        assert est.seasonal_order_[:3] == (chosen["P"], chosen["D"], chosen["Q"])
    assert set(employment_panel.candidates_["objective"]) == {"css"}
    assert set(air_exact.candidates_["objective"]) == {"ml"}


def test_selected_model_forecasts_like_statsmodels_at_its_parameters(air_exact, log_air):
    best = air_exact.best_estimator_
    ref = sm.tsa.SARIMAX(log_air.to_numpy(), order=air_exact.order_, seasonal_order=air_exact.seasonal_order_,
                         trend="c" if air_exact.trend_ else "n")
    frame = ref.smooth(best.params_.to_numpy()).get_forecast(12).summary_frame(alpha=0.2)
    np.testing.assert_allclose(air_exact.predict(12).to_numpy(), frame["mean"], rtol=1e-6)
    band = air_exact.predict_interval(12, coverage=0.8)
    np.testing.assert_allclose(band.iloc[:, 0].to_numpy(), frame["mean_ci_lower"], rtol=1e-6)


def test_save_load_and_update(air_exact, employment_exact, employment, tmp_path):
    loaded = probssm.load(air_exact.save(tmp_path / "auto"))
    assert (loaded.order_, loaded.seasonal_order_, loaded.trend_) == (
        air_exact.order_, air_exact.seasonal_order_, air_exact.trend_)
    pd.testing.assert_frame_equal(loaded.candidates_, air_exact.candidates_, check_dtype=False)
    np.testing.assert_allclose(loaded.predict(6).to_numpy(), air_exact.predict(6).to_numpy(), rtol=1e-12)
    p, d, q = air_exact.order_
    assert loaded.summary().startswith(f"AutoSARIMAX: SARIMAX({p},{d},{q})(")
    # update absorbs the next months: forecasts as the selected model refiltered over all data
    sid = employment.columns[0]
    new = load_us_employment()[sid].loc[employment.index[-1] + 1:].iloc[:12]
    est = employment_exact
    est.update(new)
    full = pd.concat([employment[sid], new])
    direct = SARIMAX(est.order_, est.seasonal_order_, trend=est.trend_).fit(
        full, params=est.best_estimator_.params_)
    np.testing.assert_allclose(est.predict(3).to_numpy(), direct.predict(3).to_numpy(), rtol=1e-8)
    assert est.predict(3).index[0] == full.index[-1] + 1


def test_panel_selects_each_series_as_alone(employment, employment_panel):
    panel = employment_panel
    assert set(panel.candidates_.index.get_level_values("series_id")) == set(employment.columns)
    for sid in employment.columns:
        alone = AutoSARIMAX(12, approximation=True, verbose=False).fit(employment[sid])
        mine = panel.estimators_[sid]
        assert (mine.order_, mine.seasonal_order_, mine.trend_) == (alone.order_, alone.seasonal_order_, alone.trend_)
        assert mine.criterion_ == pytest.approx(alone.criterion_, rel=1e-6)
    assert panel.predict(3).index.nlevels == 2


def test_auto_uc_picks_the_lowest_criterion_of_per_specification_fits(log_air):
    trends = ("local level", "local linear trend")
    est = AutoUC(12, trends=trends, verbose=False).fit(log_air)
    table = est.candidates_
    assert len(table) == 4
    values = []
    diffuse = {"local level": 1, "local linear trend": 2}
    for _, row in table.iterrows():
        terms = (row["trend"], Seasonal(12)) if row["seasonal"] else (row["trend"],)
        ref = UnobservedComponents(terms).fit(log_air)
        assert row["loglik"] == pytest.approx(ref.loglik_, rel=1e-9)
        k = len(ref.params_) + diffuse[row["trend"]] + (11 if row["seasonal"] else 0)
        n = len(log_air)
        values.append(-2 * ref.loglik_ + 2 * k + 2 * k * (k + 1) / (n - k - 1))
    np.testing.assert_allclose(table["aicc"].to_numpy(), values, rtol=1e-9)
    best = table.iloc[int(np.argmin(values))]
    assert est.terms_[0] == best["trend"] and (len(est.terms_) == 2) == bool(best["seasonal"])
    np.testing.assert_allclose(est.predict(4).to_numpy(), est.best_estimator_.predict(4).to_numpy())


@pytest.mark.parametrize("kwargs, match", [
    ({"seasonal_period": 0}, "seasonal_period"),
    ({"seasonal_period": 12, "information_criterion": "hqic"}, "information_criterion"),
    ({"max_p": -1}, "max_p"),
    ({"d": 1.5}, "d must be"),
    ({"approximation": "yes"}, "approximation"),
])
def test_auto_sarimax_rejects_bad_settings(kwargs, match, log_air):
    with pytest.raises(ValueError, match=match):
        AutoSARIMAX(**kwargs).fit(log_air)


def test_bad_data_and_uc_settings(log_air):
    with pytest.raises(ValueError, match="exogenous"):
        AutoSARIMAX(12).fit(log_air, X=np.ones((len(log_air), 1)))
    with pytest.raises(ValueError, match="too few varying values"):
        AutoSARIMAX(1, d=0).fit(pd.Series(np.ones(30)))
    with pytest.raises(ValueError, match="trends"):
        AutoUC(12, trends=("random walk",)).fit(log_air)
    with pytest.raises(TypeError, match="stepwise"):
        AutoSARIMAX(12, stepwise="yes").fit(log_air)
