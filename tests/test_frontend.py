"""The long-format front end: forecasts equal per-series fits, statsforecast's column names and
cross-validation cutoffs, utilsforecast reads the output, and bad frames are refused."""

import numpy as np
import pandas as pd
import pytest

from probssm.base import NotFittedError
from probssm.datasets import load_us_employment
from probssm.frontend import Forecaster
from probssm.structural import LocalLevel, UnobservedComponents

# Two series over 2010-01 .. 2019-09 and two over 2011-01 .. 2017-12 (one of them ends there in
# the data): two time spans, so two panel fits. Every series is at most 128 months long, so all
# fits share the compiled programs of one padded length.
IDS = ["CEU0600000001", "CEU0800000001", "CEU1000000001", "CEU4245210001"]
SHORT = ["CEU0800000001", "CEU4245210001"]


@pytest.fixture(scope="module")
def long():
    df = load_us_employment(long=True)
    df = df[df["unique_id"].isin(IDS)]
    month = df["ds"].dt.to_timestamp()
    span = np.where(df["unique_id"].isin(SHORT), (month >= "2011-01") & (month <= "2017-12"),
                    month >= "2010-01")
    # dates, as statsforecast users hold them
    return df.assign(ds=month)[span].reset_index(drop=True)


@pytest.fixture(scope="module")
def panel_calls():
    """The series of every panel fit of LocalLevel made while the module's fixtures fit."""
    return []


@pytest.fixture(scope="module")
def fitted(long, panel_calls):
    original = LocalLevel._fit_panel

    def recording(self, panel):
        panel_calls.append(list(panel.ids))
        return original(self, panel)

    LocalLevel._fit_panel = recording
    try:
        before = long.copy()
        fc = Forecaster([LocalLevel(), ("LL", LocalLevel())], freq="MS").fit(long)
        pd.testing.assert_frame_equal(long, before)
    finally:
        LocalLevel._fit_panel = original
    return fc


def _series(long, uid):
    rows = long[long["unique_id"] == uid]
    return pd.Series(rows["y"].to_numpy(), index=pd.DatetimeIndex(rows["ds"], freq="MS"))


def test_forecasts_equal_per_series_fits_and_series_of_one_span_share_a_panel(long, fitted, panel_calls):
    # each model fitted as two panels: the series of each time span together
    assert panel_calls == [["CEU0600000001", "CEU1000000001"], SHORT] * 2
    out = fitted.predict(4, level=[80, 95])
    for uid in IDS:
        y = _series(long, uid)
        rows = out[out["unique_id"] == uid]
        alone = LocalLevel().fit(y)
        for alias in ("LocalLevel", "LL"):
            np.testing.assert_allclose(rows[alias], alone.predict(4), rtol=1e-8)
            bands = alone.predict_interval(4, coverage=[0.8, 0.95])
            for level in (80, 95):
                for side, name in (("lower", "lo"), ("upper", "hi")):
                    np.testing.assert_allclose(rows[f"{alias}-{name}-{level}"],
                                               bands[("y", level / 100, side)], rtol=1e-8)
        # forecasts start after the series' own last date
        expected = pd.date_range(y.index[-1] + pd.offsets.MonthBegin(), periods=4, freq="MS")
        assert rows["ds"].tolist() == expected.tolist()


def test_columns_rows_and_utilsforecast_follow_statsforecast_layout(long, fitted):
    from utilsforecast.losses import coverage, mae

    out = fitted.predict(3, level=[95, 80])
    # statsforecast 2.x (core.py, models.py): unique_id and ds columns, then per model the mean
    # and lo-<level> from the highest level down, hi-<level> from the lowest up; rows by
    # unique_id then ds, numbered from 0
    assert list(out.columns) == [
        "unique_id", "ds",
        "LocalLevel", "LocalLevel-lo-95", "LocalLevel-lo-80", "LocalLevel-hi-80", "LocalLevel-hi-95",
        "LL", "LL-lo-95", "LL-lo-80", "LL-hi-80", "LL-hi-95",
    ]
    pd.testing.assert_index_equal(out.index, pd.RangeIndex(12))
    assert out["unique_id"].tolist() == [u for u in IDS for _ in range(3)]
    assert out.groupby("unique_id")["ds"].first().tolist() == [pd.Timestamp(d) for d in (
        "2019-10-01", "2018-01-01", "2019-10-01", "2018-01-01")]
    assert out["ds"].dtype == long["ds"].dtype
    assert list(fitted.predict(2).columns) == ["unique_id", "ds", "LocalLevel", "LL"]
    # utilsforecast's losses find every column by statsforecast's names
    truth = out.assign(y=out["LocalLevel"] + 1.0)
    scores = mae(truth, models=["LocalLevel"])
    np.testing.assert_allclose(scores["LocalLevel"], 1.0, rtol=1e-12)
    inside = coverage(truth, models=["LocalLevel"], level=80)
    lo, hi = truth["LocalLevel-lo-80"], truth["LocalLevel-hi-80"]
    expected = ((truth["y"] >= lo) & (truth["y"] <= hi)).groupby(truth["unique_id"]).mean()
    np.testing.assert_allclose(inside.set_index("unique_id")["LocalLevel"], expected.loc[IDS], rtol=0)


def test_cross_validation_cutoffs_and_windows_follow_statsforecast(long):
    h, n_windows, step = 3, 3, 2
    cv = Forecaster([LocalLevel()], freq="MS").cross_validation(long, h=h, n_windows=n_windows,
                                                                step_size=step, level=[90])
    assert list(cv.columns) == ["unique_id", "ds", "cutoff", "y", "LocalLevel", "LocalLevel-lo-90",
                                "LocalLevel-hi-90"]
    assert len(cv) == len(IDS) * n_windows * h
    pd.testing.assert_frame_equal(cv, cv.sort_values(["unique_id", "cutoff", "ds"], ignore_index=True))
    # utilsforecast.processing.cv_times (statsforecast's rule): test_size = h + step (n - 1);
    # window i's cutoff is the series' row end - (test_size - i step + 1), counted per series
    test_size = h + step * (n_windows - 1)
    for uid in IDS:
        y = _series(long, uid)
        rows = cv[cv["unique_id"] == uid]
        cutoffs = [y.index[len(y) - (test_size - i * step + 1)] for i in range(n_windows)]
        assert rows["cutoff"].unique().tolist() == cutoffs
        for cutoff, window in rows.groupby("cutoff"):
            train = y[y.index <= cutoff]
            np.testing.assert_array_equal(window["ds"], y.index[len(train):len(train) + h])
            np.testing.assert_array_equal(window["y"], y.iloc[len(train):len(train) + h])
    # the last window of the long series, fitted by hand
    y = _series(long, IDS[0])
    by_hand = LocalLevel().fit(y.iloc[:-h])
    last = cv[(cv["unique_id"] == IDS[0]) & (cv["cutoff"] == y.index[-h - 1])]
    np.testing.assert_allclose(last["LocalLevel"], by_hand.predict(h), rtol=1e-8)
    np.testing.assert_allclose(last["LocalLevel-hi-90"], by_hand.predict_interval(h, coverage=0.9).iloc[:, 1],
                               rtol=1e-8)


def test_cross_validation_without_refit_filters_with_the_first_window_parameters(long):
    one = long[long["unique_id"] == IDS[3]]
    cv = Forecaster([LocalLevel()], freq="MS").cross_validation(one, h=2, n_windows=3, step_size=4,
                                                                refit=False)
    every_other = Forecaster([LocalLevel()], freq="MS").cross_validation(one, h=2, n_windows=3, step_size=4,
                                                                         refit=2)
    y = _series(long, IDS[3])
    stops = len(y) - 10 + 4 * np.arange(3)
    first = LocalLevel().fit(y.iloc[:stops[0]])
    for stop in stops:
        # the first window's parameters, states filtered over the longer window
        fixed = LocalLevel().fit(y.iloc[:stop], params=first.params_.to_dict())
        window = cv[cv["cutoff"] == y.index[stop - 1]]
        np.testing.assert_allclose(window["LocalLevel"], fixed.predict(2), rtol=1e-9)
    # refit=2: windows 0 and 2 refitted, window 1 filtered at window 0's parameters
    np.testing.assert_allclose(every_other["LocalLevel"].iloc[:4], cv["LocalLevel"].iloc[:4], rtol=1e-12)
    refitted = LocalLevel().fit(y.iloc[:stops[2]])
    np.testing.assert_allclose(every_other["LocalLevel"].iloc[4:], refitted.predict(2), rtol=1e-8)


def test_exogenous_columns_go_to_models_with_regressors(long):
    df = long[long["unique_id"].isin(IDS[:2])].copy()
    df["month"] = df["ds"].dt.month.astype(float)
    future = df.groupby("unique_id").tail(2)
    train = df.drop(index=future.index)
    uc = UnobservedComponents(["local level"])
    out = Forecaster([uc, LocalLevel()], freq="MS").forecast(train, h=2, X_df=future.drop(columns="y"))
    for uid in IDS[:2]:
        rows, part = train[train["unique_id"] == uid], future[future["unique_id"] == uid]
        index, future_index = (pd.DatetimeIndex(r["ds"], freq="MS") for r in (rows, part))
        alone = UnobservedComponents(["local level"]).fit(
            pd.Series(rows["y"].to_numpy(), index=index),
            X=pd.DataFrame({"month": rows["month"].to_numpy()}, index=index))
        expected = alone.predict(2, X=pd.DataFrame({"month": part["month"].to_numpy()}, index=future_index))
        np.testing.assert_allclose(out.loc[out["unique_id"] == uid, "UnobservedComponents"], expected,
                                   rtol=1e-10)
    with pytest.raises(ValueError, match="X_df is required"):
        Forecaster([uc], freq="MS").fit(train).predict(2)


def test_bad_input_errors(long):
    fc = Forecaster([LocalLevel()], freq="MS")
    before = long.copy()
    with pytest.raises(ValueError, match=r"missing the column\(s\) \['y'\]"):
        fc.fit(long.drop(columns="y"))
    with pytest.raises(ValueError, match=r"\(unique_id, ds\) pair \('CEU0600000001'"):
        fc.fit(pd.concat([long, long.iloc[[5]]]))
    with pytest.raises(ValueError, match="h must be >= 1, got 0"):
        fc.cross_validation(long, h=0)
    with pytest.raises(ValueError, match=r"too few for h=12, n_windows=20.*more than .* = 107 rows"):
        fc.cross_validation(long, h=12, n_windows=20, step_size=5)
    with pytest.raises(ValueError, match="not a regular grid of step 'MS'.*fill_gaps"):
        fc.fit(long.drop(index=7))
    with pytest.raises(TypeError, match="pandas DataFrame in long format"):
        fc.fit(long.to_numpy())
    with pytest.raises(TypeError, match="frame first"):
        fc.forecast(12, long)
    with pytest.raises(ValueError, match="must be unique, \\['LocalLevel'\\] repeat"):
        Forecaster([LocalLevel(), LocalLevel()]).fit(long)
    with pytest.raises(ValueError, match="between 0 and 100"):
        fc.cross_validation(long, h=2, level=[80, 120])
    with pytest.raises(ValueError, match="input_size .* needs refit=True"):
        fc.cross_validation(long, h=2, input_size=24, refit=False)
    with pytest.raises(NotFittedError, match="call fit"):
        Forecaster([LocalLevel()]).predict(3)
    pd.testing.assert_frame_equal(long, before)
