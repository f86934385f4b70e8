"""probssm.cli: the demo's arguments, outputs and figure."""

import matplotlib

matplotlib.use("Agg")

import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from probssm import cli  # noqa: E402


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
