"""Small real data sets for examples, tests and the demo."""

from __future__ import annotations

import pandas as pd

__all__ = ["load_nile"]


def load_nile() -> pd.Series:
    """Annual flow of the Nile at Aswan, 1871-1970 (100 values, 10^8 m^3).

    The series of Durbin & Koopman (2012), read from statsmodels' bundled copy. Returns a Series
    named ``"volume"`` with an annual ``PeriodIndex``.
    """
    from statsmodels.datasets import nile

    data = nile.load_pandas().data
    index = pd.PeriodIndex(data["year"].astype(int).astype(str), freq="Y", name="year")
    return pd.Series(data["volume"].to_numpy(dtype=float), index=index, name="volume")
