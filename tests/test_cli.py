"""probssm.cli: the demo's arguments, outputs and figure; the forecast command on CSV and
Parquet files (round trips against the estimators' own forecasts, and the errors for bad files)."""

import matplotlib

matplotlib.use("Agg")

import importlib.util  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from probssm import cli, cli_data, cli_forecast  # noqa: E402
from probssm.structural import LocalLevel  # noqa: E402


@pytest.mark.parametrize("horizon", [1, 3])
def test_demo_writes_one_row_per_forecast_year_and_a_figure(tmp_path, horizon):
    assert cli.main(["demo", "--output", str(tmp_path), "--horizon", str(horizon)]) == 0
    table = pd.read_csv(tmp_path / "forecast.csv", index_col="year")
    assert len(table) == horizon
    assert list(table.index) == list(range(1971, 1971 + horizon))
    assert {"mean", "std", "lower_80", "upper_95"} <= set(table.columns)
    assert (tmp_path / "forecast.png").stat().st_size > 0


@pytest.mark.parametrize("horizon", ["0", "-2", "two"])
def test_non_positive_horizon_is_refused_before_any_work(tmp_path, capsys, horizon):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["demo", "--output", str(out), "--horizon", horizon])
    assert exit_info.value.code == 2
    assert "argument --horizon: must be a positive integer" in capsys.readouterr().err
    assert not out.exists()


def test_figure_names_the_horizon_and_the_units(tmp_path):
    fig = cli.demo(tmp_path, horizon=1)
    ax = fig.axes[0]
    assert ax.get_title() == (
        "Nile flow: local level fit and forecast of the next year (80 % and 95 % bands)"
    )
    assert ax.get_xlabel() == "year"
    assert "annual flow volume" in ax.get_ylabel() and "10^8" in ax.get_ylabel()
    # the single forecast step is drawn: a marker and an error bar
    forecast = [line for line in ax.get_lines() if line.get_label() == "forecast"]
    assert forecast and forecast[0].get_marker() == "o" and len(forecast[0].get_xdata()) == 1
    assert ax.containers, "the forecast step has no error bar"


def test_title_says_years_for_longer_horizons():
    assert "forecast of the next 10 years" in cli.forecast_title(10)
    assert "10-year" not in cli.forecast_title(5) and "next 5 years" in cli.forecast_title(5)


# --------------------------------------------------------------------------- #
# forecast: the user's own file
# --------------------------------------------------------------------------- #
def _series(seed, n=30):
    rng = np.random.default_rng(seed)
    return 10.0 + np.cumsum(rng.normal(size=n)) + rng.normal(scale=0.5, size=n)


@pytest.fixture(scope="module")
def monthly():
    """Two monthly series, wide: a date column and one column per series."""
    dates = pd.date_range("2001-01-01", periods=30, freq="MS")
    return pd.DataFrame({"date": dates.strftime("%Y-%m-%d"), "north": _series(0), "south": _series(1)})


def _forecast(tmp_path, name, frame, *args):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    out = tmp_path / "out"
    code = cli.main(["forecast", str(path), "--output", str(out), *args])
    return code, out


def _expected_table(predict, intervals, levels):
    """predict / predict_interval of a fitted estimator in the table's columns."""
    table = pd.DataFrame({"mean": predict.to_numpy()})
    for level in levels:
        for side in ("lower", "upper"):
            table[f"{side}_{level}"] = intervals.xs((level / 100, side), axis=1, level=[1, 2]).iloc[:, 0].to_numpy()
    return table


def test_forecast_wide_csv_of_one_series_equals_the_estimators_own_forecast(tmp_path, monthly):
    code, out = _forecast(tmp_path, "wide.csv", monthly, "--time-column", "date", "--value-column", "north",
                          "--model", "local-level", "--horizon", "4", "--level", "80", "95")
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["forecast.csv", "forecast.png", "summary.txt"]
    table = pd.read_csv(out / "forecast.csv")
    assert list(table.columns) == ["series", "date", "mean", "lower_80", "upper_80", "lower_95", "upper_95"]
    assert table["series"].tolist() == ["north"] * 4
    assert table["date"].tolist() == ["2003-07-01", "2003-08-01", "2003-09-01", "2003-10-01"]

    y = pd.Series(monthly["north"].to_numpy(), index=pd.DatetimeIndex(monthly["date"], freq="MS"))
    model = LocalLevel().fit(y)
    expected = _expected_table(model.predict(4), model.predict_interval(4, coverage=[0.8, 0.95]), [80, 95])
    np.testing.assert_allclose(table[expected.columns].to_numpy(), expected.to_numpy(), rtol=1e-10, atol=0)
    summary = (out / "summary.txt").read_text()
    assert "model: local-level" in summary and "series 'north'" in summary
    assert f"log-likelihood: {model.loglik_:.5f}" in summary
    assert (out / "forecast.png").stat().st_size > 0


def test_forecast_long_csv_fits_the_panel_and_equals_its_forecast(tmp_path, monthly):
    # rows backwards: 'south' comes first and the dates run down
    long = monthly.melt(id_vars="date", var_name="store", value_name="sales").iloc[::-1]
    code, out = _forecast(tmp_path, "long.csv", long, "--time-column", "date", "--id-column", "store",
                          "--value-column", "sales", "--model", "local-level", "--horizon", "3", "--level", "90")
    assert code == 0
    table = pd.read_csv(out / "forecast.csv")
    assert list(table.columns) == ["store", "date", "mean", "lower_90", "upper_90"]
    assert table["store"].unique().tolist() == ["south", "north"]  # the file's order

    # the same panel, built independently: rows (series_id, time)
    panel = monthly.melt(id_vars="date", var_name="store", value_name="sales")
    panel["date"] = pd.to_datetime(panel["date"])
    model = LocalLevel().fit(panel.set_index(["store", "date"])["sales"])
    for store in ("north", "south"):
        est = model.estimators_[store]
        expected = _expected_table(est.predict(3), est.predict_interval(3, coverage=0.9), [90])
        got = table[table["store"] == store]
        assert got["date"].tolist() == ["2003-07-01", "2003-08-01", "2003-09-01"]
        np.testing.assert_allclose(got[expected.columns].to_numpy(), expected.to_numpy(), rtol=1e-10, atol=0)
    # the wide file of the same series gives the same table
    (tmp_path / "w").mkdir()
    code, out_wide = _forecast(tmp_path / "w", "wide.csv", monthly, "--time-column", "date",
                               "--model", "local-level", "--horizon", "3", "--level", "90")
    wide = pd.read_csv(out_wide / "forecast.csv")
    assert wide["series"].unique().tolist() == ["north", "south"]
    by_store = table.set_index(["store", "date"]).loc[wide.set_index(["series", "date"]).index]
    np.testing.assert_allclose(wide[["mean", "lower_90", "upper_90"]].to_numpy(),
                               by_store[["mean", "lower_90", "upper_90"]].to_numpy(), rtol=1e-10, atol=0)
    summary = (out / "summary.txt").read_text()
    assert "series 'north'" in summary and "series 'south'" in summary


def _error(tmp_path, capsys, argv):
    code = cli.main(["forecast", *argv, "--output", str(tmp_path / "out")])
    assert code == 2
    assert not (tmp_path / "out").exists(), "nothing is written for a bad file"
    err = capsys.readouterr().err
    assert err.startswith("probssm forecast: error: ")
    return err


def test_forecast_errors_for_unreadable_files(tmp_path, capsys):
    err = _error(tmp_path, capsys, [str(tmp_path / "absent.csv"), "--time-column", "date"])
    assert f"cannot read {tmp_path / 'absent.csv'}: no such file" in err
    bad = tmp_path / "bad.csv"
    bad.write_text("date,y\n2001-01-01,1\n2001-02-01,2,3\n")
    err = _error(tmp_path, capsys, [str(bad), "--time-column", "date"])
    assert f"cannot read {bad} as CSV: Error tokenizing data" in err
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert f"cannot read {empty} as CSV" in _error(tmp_path, capsys, [str(empty), "--time-column", "date"])


def test_forecast_parquet_needs_pyarrow(tmp_path, capsys, monkeypatch):
    path = tmp_path / "data.parquet"
    path.write_bytes(b"not parquet")
    real = cli_data.importlib.util.find_spec
    monkeypatch.setattr(cli_data.importlib.util, "find_spec",
                        lambda name, *a: None if name == "pyarrow" else real(name, *a))
    err = _error(tmp_path, capsys, [str(path), "--time-column", "date"])
    assert "reading Parquet needs pyarrow (pip install pyarrow)" in err
    monkeypatch.undo()
    if importlib.util.find_spec("pyarrow") is not None:
        assert f"cannot read {path} as Parquet" in _error(tmp_path, capsys, [str(path), "--time-column", "date"])


def test_forecast_parquet_round_trip(tmp_path, monthly):
    pytest.importorskip("pyarrow")
    path = tmp_path / "data.parquet"
    frame = monthly.assign(date=pd.to_datetime(monthly["date"]))
    frame.to_parquet(path)
    assert cli.main(["forecast", str(path), "--time-column", "date", "--value-column", "south",
                     "--model", "local-level", "--horizon", "2", "--output", str(tmp_path / "out")]) == 0
    table = pd.read_csv(tmp_path / "out" / "forecast.csv")
    y = pd.Series(frame["south"].to_numpy(), index=pd.DatetimeIndex(frame["date"], freq="MS"))
    np.testing.assert_allclose(table["mean"], LocalLevel().fit(y).predict(2).to_numpy(), rtol=1e-10)


@pytest.mark.parametrize("argv, message", [
    (["--time-column", "dat"], "unknown column 'dat': {path} has columns ['date', 'north', 'south']; "
                               "did you mean 'date'?"),
    (["--time-column", "date", "--value-column", "west"], "unknown column 'west'"),
    (["--time-column", "date", "--id-column", "store"], "unknown column 'store'"),
])
def test_forecast_errors_for_unknown_columns(tmp_path, capsys, monthly, argv, message):
    path = tmp_path / "data.csv"
    monthly.to_csv(path, index=False)
    assert message.format(path=path) in _error(tmp_path, capsys, [str(path), *argv])


def test_forecast_errors_for_unparseable_dates_and_values(tmp_path, capsys, monthly):
    path = tmp_path / "data.csv"
    frame = monthly.copy()
    frame.loc[4, "date"] = "May 2001?"
    frame.to_csv(path, index=False)
    err = _error(tmp_path, capsys, [str(path), "--time-column", "date"])
    assert "column 'date': cannot parse 'May 2001?' as dates (the format is taken from the first value, '2001-01-01')" in err
    frame = monthly.astype({"south": object})
    frame.loc[7, "south"] = "n/a?"
    frame.to_csv(path, index=False)
    err = _error(tmp_path, capsys, [str(path), "--time-column", "date"])
    assert "column 'south' in" in err and "is not numeric: 'n/a?' at date '2001-08-01'" in err


def test_forecast_error_names_the_timestamps_that_break_the_frequency(tmp_path, capsys, monthly):
    path = tmp_path / "data.csv"
    frame = monthly.drop(index=[5, 6]).copy()  # June and July 2001 missing
    frame.loc[10, "date"] = "2001-11-15"  # off the month-start grid
    frame.to_csv(path, index=False)
    err = _error(tmp_path, capsys, [str(path), "--time-column", "date"])
    assert ("column 'date': irregular frequency; with the most common spacing (MS) these timestamps "
            "break it, off the grid: 2001-11-15; missing: 2001-06-01, 2001-07-01, 2001-11-01. Fix the "
            "file, or pass --freq MS to read missing timestamps as missing values") in err
    # --freq reads the gaps as missing values; the off-grid timestamp is still an error
    err = _error(tmp_path, capsys, [str(path), "--time-column", "date", "--freq", "MS"])
    assert "column 'date': timestamps off the --freq MS grid from 2001-01-01 00:00:00: 2001-11-15" in err


def test_forecast_with_freq_reads_missing_timestamps_as_missing_values(tmp_path, monthly):
    frame = monthly.drop(index=[5, 6])
    code, out = _forecast(tmp_path, "gaps.csv", frame, "--time-column", "date", "--value-column", "north",
                          "--freq", "MS", "--model", "local-level", "--horizon", "2")
    assert code == 0
    y = pd.Series(monthly["north"].to_numpy(copy=True), index=pd.DatetimeIndex(monthly["date"], freq="MS"))
    y.iloc[[5, 6]] = np.nan
    table = pd.read_csv(out / "forecast.csv")
    np.testing.assert_allclose(table["mean"], LocalLevel().fit(y).predict(2).to_numpy(), rtol=1e-10)


def test_forecast_errors_for_too_short_series(tmp_path, capsys, monthly):
    path = tmp_path / "data.csv"
    frame = monthly.copy()
    frame.loc[3:, "south"] = np.nan
    frame.to_csv(path, index=False)
    err = _error(tmp_path, capsys, [str(path), "--time-column", "date"])
    assert "too short: series need at least 10 observed values (at least 10 for any model); observed values of 'south' (3)" in err
    err = _error(tmp_path, capsys, [str(path), "--time-column", "date", "--value-column", "north",
                                    "--seasonal-period", "24"])
    assert "series need at least 50 observed values (two seasons plus 2 with --seasonal-period 24); observed values of 'north' (30)" in err


@pytest.mark.parametrize("argv, message", [
    (["--level", "100"], "argument --level: must be between 0 and 100 (percent), got 100"),
    (["--horizon", "0"], "argument --horizon: must be a positive integer, got 0"),
    (["--model", "arima"], "argument --model: invalid choice: 'arima'"),
    (["--order", "1", "-1", "0"], "argument --order: must be a non-negative integer, got -1"),
])
def test_forecast_refuses_bad_arguments_before_reading(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["forecast", str(tmp_path / "absent.csv"), "--time-column", "date", *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_forecast_models_are_the_documented_estimators(monthly):
    wide = pd.DataFrame({"y": _series(2)})
    sarimax = cli_forecast.build_model("sarimax", wide, 12)
    assert (sarimax.order, sarimax.seasonal_order) == ((0, 1, 1), (0, 1, 1, 12))
    sarimax = cli_forecast.build_model("sarimax", wide, 1, order=[2, 1, 0])
    assert (sarimax.order, sarimax.seasonal_order) == ((2, 1, 0), (0, 0, 0, 0))
    from probssm.structural.auto import AutoSARIMAX, AutoUC

    auto = cli_forecast.build_model("auto", wide, 12)
    assert type(auto) is AutoSARIMAX and auto.get_params() == AutoSARIMAX(seasonal_period=12).get_params()
    auto_uc = cli_forecast.build_model("auto-uc", wide, 4)
    assert type(auto_uc) is AutoUC and auto_uc.seasonal_period == 4
    uc = cli_forecast.build_model("uc", wide, 4)
    assert uc.terms[0] == "local linear trend" and uc.terms[1].period == 4
    with pytest.raises(cli_data.InputError, match="--seasonal-order needs --seasonal-period M > 1"):
        cli_forecast.build_model("sarimax", wide, 1, seasonal_order=[1, 0, 0])
    with pytest.raises(cli_data.InputError, match="--model uc takes neither"):
        cli_forecast.build_model("uc", wide, 1, order=[1, 0, 0])
