"""backtest: windows placed by statsforecast's rule, refit equal to fits by hand, update equal to
filtering at fixed parameters, sliding windows, metrics against direct formulas, plot, errors."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

from probssm.backtesting import backtest
from probssm.datasets import load_airpassengers
from probssm.structural import LocalLevel

H, N_WINDOWS, STEP = 3, 3, 4


@pytest.fixture(scope="module")
def y():
    return np.log(load_airpassengers()).iloc[-100:]  # 100 months: every fit shares one padded length


@pytest.fixture(scope="module")
def refit(y):
    return backtest(LocalLevel(), y, H, N_WINDOWS, STEP, verbose=False)


def _stops(T):
    # the first window's training end leaves h + step (n - 1) observations for the forecasts
    return [T - (H + STEP * (N_WINDOWS - 1)) + i * STEP for i in range(N_WINDOWS)]


def _check_window(table, fit, y, stop):
    rows = table.reset_index(drop=True)
    assert rows["cutoff"].iloc[0] == y.index[stop - 1]
    assert rows["time"].tolist() == list(y.index[stop:stop + H])
    assert rows["step"].tolist() == [1, 2, 3]
    np.testing.assert_array_equal(rows["y"], y.iloc[stop:stop + H])
    np.testing.assert_allclose(rows["mean"], fit.predict(H), rtol=1e-10)
    np.testing.assert_allclose(rows["std"] ** 2, fit.predict_var(H).iloc[:, 0], rtol=1e-10)
    bands = fit.predict_interval(H, coverage=[0.8, 0.95])
    for c, p in ((0.8, "80"), (0.95, "95")):
        np.testing.assert_allclose(rows[f"lower_{p}"], bands[("passengers", c, "lower")], rtol=1e-10)
        np.testing.assert_allclose(rows[f"upper_{p}"], bands[("passengers", c, "upper")], rtol=1e-10)


def test_refit_equals_fitting_each_window_by_hand(y, refit):
    table = refit.forecasts
    assert list(table.columns) == ["window", "cutoff", "time", "step", "y", "mean", "std",
                                   "lower_80", "upper_80", "lower_95", "upper_95"]
    assert table["window"].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    for i, stop in enumerate(_stops(len(y))):
        _check_window(table[table["window"] == i], LocalLevel().fit(y.iloc[:stop]), y, stop)


def test_update_equals_filtering_at_the_first_window_parameters(y):
    result = backtest(LocalLevel(), y, H, N_WINDOWS, STEP, strategy="update", verbose=False)
    stops = _stops(len(y))
    first = LocalLevel().fit(y.iloc[:stops[0]])
    for i, stop in enumerate(stops):
        fixed = LocalLevel().fit(y.iloc[:stop], params=first.params_.to_dict())
        _check_window(result.forecasts[result.forecasts["window"] == i], fixed, y, stop)


def test_sliding_windows_train_on_the_last_observations(y, refit):
    result = backtest(LocalLevel(), y, H, N_WINDOWS, STEP, window="sliding", window_length=60,
                      verbose=False)
    for i, stop in enumerate(_stops(len(y))):
        _check_window(result.forecasts[result.forecasts["window"] == i],
                      LocalLevel().fit(y.iloc[stop - 60:stop]), y, stop)
    assert not np.allclose(result.forecasts["std"], refit.forecasts["std"])


def test_metrics_equal_their_definitions(y, refit):
    table, per_window = refit.forecasts, refit.metrics
    assert list(per_window.columns) == ["cutoff", "mase", "crps", "coverage_80", "interval_score_80",
                                        "coverage_95", "interval_score_95"]
    for i, stop in enumerate(_stops(len(y))):
        rows = table[table["window"] == i]
        obs, mean, std = rows["y"].to_numpy(), rows["mean"].to_numpy(), rows["std"].to_numpy()
        train = y.iloc[:stop].to_numpy()
        mase = np.mean(np.abs(obs - mean)) / np.mean(np.abs(np.diff(train)))
        # CRPS as the integral of (F(x) - 1{x >= y})^2
        crps = np.mean([
            integrate.quad(lambda x, m=m, s=s, o=o: stats.norm.cdf(x, m, s) ** 2, m - 12 * s, o)[0]
            + integrate.quad(lambda x, m=m, s=s, o=o: stats.norm.sf(x, m, s) ** 2, o, m + 12 * s)[0]
            for o, m, s in zip(obs, mean, std)])
        lo, hi = rows["lower_80"].to_numpy(), rows["upper_80"].to_numpy()
        winkler = np.mean((hi - lo) + 2 / 0.2 * ((lo - obs) * (obs < lo) + (obs - hi) * (obs > hi)))
        np.testing.assert_allclose(per_window.loc[i, "mase"], mase, rtol=1e-12)
        np.testing.assert_allclose(per_window.loc[i, "crps"], crps, rtol=1e-6)
        np.testing.assert_allclose(per_window.loc[i, "interval_score_80"], winkler, rtol=1e-12)
        assert per_window.loc[i, "coverage_80"] == np.mean((lo <= obs) & (obs <= hi))
    summary = refit.summary
    assert summary["mase"] == pytest.approx(per_window["mase"].mean(), rel=1e-12)
    inside = (table["lower_95"] <= table["y"]) & (table["y"] <= table["upper_95"])
    assert summary["coverage_95"] == np.mean(inside)
    assert summary["crps"] == pytest.approx(per_window["crps"].mean(), rel=1e-12)  # equal-sized windows


def test_plot_and_silent_progress(y, refit, capsys):
    ax = refit.plot()
    assert len(ax.lines) == 1 + 2 * N_WINDOWS  # data, then a forecast and a cutoff per window
    assert len(ax.collections) == N_WINDOWS
    with pytest.raises(ValueError, match="coverage 0.5 was not backtested"):
        refit.plot(coverage=0.5)
    backtest(LocalLevel(), y, 1, 1, verbose=True)  # stderr is not a terminal under pytest
    assert capsys.readouterr().err == ""


def test_bad_input_errors(y):
    before = y.copy()
    with pytest.raises(ValueError, match="h must be >= 1, got 0"):
        backtest(LocalLevel(), y, 0, 2)
    with pytest.raises(ValueError, match=r"100 observations, too few for h=10, n_windows=10, step=10"):
        backtest(LocalLevel(), y, 10, 10, step=10)
    with pytest.raises(ValueError, match="needs window='expanding'"):
        backtest(LocalLevel(), y, 2, 2, window="sliding", strategy="update")
    with pytest.raises(ValueError, match="window_length=99 is longer than the 97 observations"):
        backtest(LocalLevel(), y, 2, 2, window="sliding", window_length=99)
    with pytest.raises(ValueError, match="strategy must be one of"):
        backtest(LocalLevel(), y, 2, 2, strategy="refilter")
    with pytest.raises(ValueError, match="coverage must be in"):
        backtest(LocalLevel(), y, 2, 2, coverage=80)
    panel = pd.concat({"a": y, "b": y}, names=["series_id", "month"])
    with pytest.raises(ValueError, match="Forecaster"):
        backtest(LocalLevel(), panel, 2, 2)
    pd.testing.assert_series_equal(y, before)


def test_multivariate_series_are_long_over_variables():
    from probssm.datasets import load_us_employment
    from probssm.kalman.estimator import KalmanFilter

    y = np.log(load_us_employment()[["CEU0500000001", "CEU0600000001"]].iloc[-90:])
    eye = np.eye(2)
    model = KalmanFilter(eye, 1e-5 * eye, eye, 1e-6 * eye)  # fixed matrices: fit only filters
    result = backtest(model, y, 2, 2, step=3, coverage=0.9, verbose=False)
    table = result.forecasts
    assert list(table.columns[:5]) == ["window", "cutoff", "time", "step", "variable"]
    assert table["variable"].tolist() == ["CEU0500000001", "CEU0600000001"] * 4
    stop = 90 - 5
    fit = KalmanFilter(eye, 1e-5 * eye, eye, 1e-6 * eye).fit(y.iloc[:stop])
    first = table[table["window"] == 0]
    np.testing.assert_allclose(first["mean"], fit.predict(2).to_numpy().ravel(), rtol=1e-12)
    obs, mean = first["y"].to_numpy().reshape(2, 2), first["mean"].to_numpy().reshape(2, 2)
    scale = np.mean(np.abs(np.diff(y.iloc[:stop].to_numpy(), axis=0)), axis=0)
    expected = np.mean(np.mean(np.abs(obs - mean), axis=0) / scale)  # per-series MASE, averaged
    np.testing.assert_allclose(result.metrics.loc[0, "mase"], expected, rtol=1e-12)
