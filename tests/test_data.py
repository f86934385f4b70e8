"""probssm._data / probssm._time_index: index round trips, exogenous alignment, time indices."""

import json

import numpy as np
import pandas as pd
import pytest

import probssm
from probssm import LocalLevel, _data
from probssm.structural import SARIMAX

UNITS = ["s", "ms", "us", "ns"]
TIME_ZONES = [None, "UTC", "Europe/Berlin"]
# Frequencies whose labels fall on whole seconds, so every unit can hold them.
DATETIME_FREQS = ["D", "h", "ME", "W-SUN", "B", "15min", "QE-DEC", "YS"]
PERIOD_FREQS = ["Y-DEC", "Q-DEC", "M", "W-SUN", "D", "h", "2M", "s", "ms", "us", "ns"]


def _round_trip(index: pd.Index) -> pd.Index:
    return _data.index_from_json(json.loads(json.dumps(_data.index_to_json(index))))


def _assert_round_trip(index: pd.Index) -> None:
    back = _round_trip(index)
    pd.testing.assert_index_equal(back, index, exact=True)
    assert back.dtype == index.dtype
    assert getattr(back, "freq", None) == getattr(index, "freq", None)


# --------------------------------------------------------------------------- #
# 1. save / load keeps the index: kind x resolution x freq x tz
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("tz", TIME_ZONES)
@pytest.mark.parametrize("unit", UNITS)
@pytest.mark.parametrize("freq", DATETIME_FREQS)
def test_datetime_index_with_freq_round_trips(freq, unit, tz):
    index = pd.date_range("2021-01-29", periods=7, freq=freq, tz=tz, name="time").as_unit(unit)
    _assert_round_trip(index)


@pytest.mark.parametrize("tz", TIME_ZONES)
@pytest.mark.parametrize("unit", UNITS)
def test_datetime_index_without_freq_round_trips(unit, tz):
    stamps = ["2024-03-30 01:00", "2024-03-31 04:30:15", "2024-04-02", "2030-12-31 23:59:59"]
    index = pd.DatetimeIndex(stamps, tz=tz).as_unit(unit)
    assert index.freq is None
    _assert_round_trip(index)


def test_sub_second_datetime_labels_round_trip():
    index = pd.date_range("2024-01-01", periods=5, freq="1500us").as_unit("us")
    _assert_round_trip(index)
    index = pd.date_range("2024-01-01", periods=5, freq="7ns")
    _assert_round_trip(index)


@pytest.mark.parametrize("freq", PERIOD_FREQS)
def test_period_index_round_trips(freq):
    _assert_round_trip(pd.period_range("2020-01-01", periods=6, freq=freq, name="period"))


@pytest.mark.parametrize(
    "index",
    [pd.RangeIndex(5), pd.RangeIndex(3, 30, 3, name="t"), pd.Index([10, 20, 30], name="step"),
     pd.Index([1, 2, 3], dtype="int32"), pd.Index([-4, 0, 4], dtype="int64")],
    ids=["range", "range-step", "int64", "int32", "negative"],
)
def test_integer_indices_round_trip(index):
    _assert_round_trip(index)


def test_indices_written_before_units_were_stored_still_load():
    old_datetime = {"name": None, "kind": "datetime", "values": [0, 86_400_000_000_000],
                    "freq": "D", "tz": None}
    pd.testing.assert_index_equal(
        _data.index_from_json(old_datetime),
        pd.date_range("1970-01-01", periods=2, freq="D").as_unit("ns"))  # old files hold ns; pandas 3 builds us
    old_period = {"name": None, "kind": "period", "values": ["1871", "1872"], "freq": "Y-DEC"}
    pd.testing.assert_index_equal(
        _data.index_from_json(old_period), pd.period_range("1871", periods=2, freq="Y"))


def test_saved_month_end_microsecond_model_forecasts_the_same_dates(tmp_path):
    # pandas 3 builds microsecond indices by default; as_unit reproduces that on pandas 2.
    index = pd.date_range("2000-01-31", periods=48, freq="ME").as_unit("us")
    y = pd.Series(np.sin(np.arange(48.0)) + np.arange(48.0) / 10, index=index, name="sales")
    model = LocalLevel().fit(y)
    expected = model.predict(3)
    loaded = probssm.load(model.save(tmp_path / "model"))
    pd.testing.assert_index_equal(loaded.predict(3).index, expected.index, exact=True)
    assert expected.index[0] == pd.Timestamp("2004-01-31") and expected.index.unit == "us"
    pd.testing.assert_series_equal(loaded.predict(3), expected)


# --------------------------------------------------------------------------- #
# 2. exogenous X: aligned by label, or exactly as long as needed
# --------------------------------------------------------------------------- #
@pytest.fixture
def monthly():
    index = pd.period_range("2001-01", periods=40, freq="M")
    rng = np.random.default_rng(3)
    x = rng.normal(size=40)
    y = pd.Series(2.0 * x + np.cumsum(rng.normal(size=40)), index=index, name="y")
    X = pd.DataFrame({"x": x}, index=index)
    return y, X


def test_exog_frame_is_aligned_by_label_not_position(monthly):
    y, X = monthly
    longer = pd.concat([X.iloc[:0].reindex(pd.period_range("2000-07", "2000-12", freq="M")).fillna(9.0), X])
    values, cols = _data.as_exog(longer.iloc[::-1], y.index)  # reversed and 6 rows longer
    np.testing.assert_array_equal(values[:, 0], X["x"].to_numpy())
    assert cols == ["x"]


def test_exog_frame_missing_a_label_is_refused(monthly):
    y, X = monthly
    with pytest.raises(ValueError, match=r"X has no row for time Period\('2001-05'.*1 of the 40"):
        _data.as_exog(X.drop(X.index[4]), y.index)


@pytest.mark.parametrize("rows", [39, 41])
def test_exog_array_must_have_exactly_one_row_per_step(monthly, rows):
    y, _ = monthly
    with pytest.raises(ValueError, match=rf"X: expected 40 rows .* got {rows}"):
        _data.as_exog(np.ones((rows, 1)), y.index)


def test_exog_frame_with_default_index_must_match_in_length(monthly):
    y, X = monthly
    with pytest.raises(ValueError, match=r"expected 40 rows .* got 45.*default RangeIndex"):
        _data.as_exog(pd.DataFrame({"x": np.ones(45)}), y.index)
    values, _ = _data.as_exog(X.reset_index(drop=True), y.index)
    np.testing.assert_array_equal(values[:, 0], X["x"].to_numpy())


def test_exog_longer_than_y_is_refused_at_fit_not_truncated(monthly):
    y, X = monthly
    with pytest.raises(ValueError, match=r"X: expected 40 rows .* got 43"):
        SARIMAX((1, 0, 0)).fit(y, X=np.ones((43, 1)))


def test_exog_in_predict_is_aligned_or_exact(monthly):
    y, X = monthly
    model = SARIMAX((1, 0, 0)).fit(y, X=X)
    future = pd.period_range("2004-05", periods=3, freq="M")
    X_future = pd.DataFrame({"x": [1.0, 2.0, 3.0]}, index=future)
    expected = model.predict(3, X=X_future)
    # a frame over a longer period, in another order: the labels decide
    wide = pd.concat([X, X_future, pd.DataFrame({"x": [7.0]}, index=future[-1:] + 1)]).iloc[::-1]
    pd.testing.assert_series_equal(model.predict(3, X=wide), expected)
    pd.testing.assert_series_equal(model.predict(3, X=np.array([1.0, 2.0, 3.0])), expected)
    with pytest.raises(ValueError, match=r"X: expected 3 rows .* got 5"):
        model.predict(3, X=np.arange(5.0))
    with pytest.raises(ValueError, match=r"X has no row for time Period\('2004-07'"):
        model.predict(3, X=X_future.iloc[:2])


# --------------------------------------------------------------------------- #
# 3. the time index is judged at fit
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    "index, message",
    [
        (pd.DatetimeIndex(["2020-01-01", "2020-01-02", "2020-01-05", "2020-01-09", "2020-01-10"]),
         r"DatetimeIndex without a frequency \(irregular spacing.*y.asfreq\('D'\)"),
        (pd.Index(["a", "b", "c", "d", "e"]), r"type Index with dtype (object|str).*pd.to_datetime"),
        (pd.Index([0.0, 0.5, 1.0, 1.5, 2.0]), r"dtype float64"),
        (pd.Index([0, 1, 2, 4, 5]), r"unevenly spaced integer index.*reindex\(range\(0, 6, 1\)\)"),
        (pd.PeriodIndex(["2001", "2002", "2004", "2005", "2006"], freq="Y"),
         r"PeriodIndex has gaps \(first after 2002\).*period_range"),
    ],
    ids=["datetime-gaps", "strings", "floats", "uneven-int", "period-gaps"],
)
def test_index_that_cannot_be_continued_fails_at_fit(index, message):
    y = pd.Series(np.arange(len(index), dtype=float), index=index)
    with pytest.raises(ValueError, match=message):
        LocalLevel().fit(y)
    with pytest.raises(ValueError, match=message):
        _data.as_panel_data(pd.DataFrame({"a": y, "b": y}))


def test_two_dates_without_frequency_are_refused():
    y = pd.Series([1.0, 2.0], index=pd.DatetimeIndex(["2020-01-01", "2020-01-03"]))
    with pytest.raises(ValueError, match=r"without a frequency \(fewer than 3 labels.*asfreq"):
        _data.as_series_data(y)
    assert _data.as_series_data(y.asfreq("2D")).index.freqstr == "2D"


def test_regular_datetime_index_gets_its_frequency_inferred():
    index = pd.DatetimeIndex(["2020-01-31", "2020-02-29", "2020-03-31", "2020-04-30"])
    y = pd.Series([1.0, 2.0, 1.5, 3.0], index=index)
    data = _data.as_series_data(y)
    assert data.index.freqstr == "ME"
    assert y.index.freq is None  # the caller's index is untouched
    forecast = LocalLevel().fit(y).predict(2)
    pd.testing.assert_index_equal(forecast.index, pd.date_range("2020-05-31", periods=2, freq="ME"))


def test_continuable_indices_are_accepted():
    for index in (pd.RangeIndex(6), pd.Index([3, 5, 7, 9, 11, 13]), pd.period_range("2000", periods=6, freq="Q"),
                  pd.date_range("2020-01-01", periods=6, freq="B", tz="Europe/Berlin")):
        model = LocalLevel().fit(pd.Series([1.0, 3.0, 2.0, 5.0, 4.0, 4.5], index=index))
        assert len(model.predict(2)) == 2


def test_new_data_is_judged_against_the_training_index_only():
    y = pd.Series([1.0, 3.0, 2.0, 5.0, 4.0], index=pd.date_range("2020-01-01", periods=5, freq="D"))
    model = LocalLevel().fit(y)
    # one label without a frequency of its own continues the daily grid
    model.update(pd.Series([5.0], index=pd.DatetimeIndex(["2020-01-06"])))
    assert model.predict(1).index[0] == pd.Timestamp("2020-01-07")
