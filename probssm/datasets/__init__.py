"""Small real data sets for examples, tests and the demo."""

from __future__ import annotations

from importlib import resources

import pandas as pd

__all__ = ["load_airpassengers", "load_nile"]


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
