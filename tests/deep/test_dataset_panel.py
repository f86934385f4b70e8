"""The bundled fpp3 us_employment panel: shape, index, published values and both layouts."""

import numpy as np
import pandas as pd

from probssm.datasets import load_us_employment


def test_us_employment_facts():
    wide, titles = load_us_employment(titles=True)
    assert wide.shape == (237, 148)
    assert isinstance(wide.index, pd.PeriodIndex) and wide.index.freqstr == "M"
    assert str(wide.index[0]) == "2000-01" and str(wide.index[-1]) == "2019-09"
    assert (wide.dtypes == np.float64).all()
    assert int(wide.isna().sum().sum()) == 45
    # fpp3::us_employment, Total Private (CEU0500000001), first and last months kept
    assert wide.loc["2000-01", "CEU0500000001"] == 108514.0
    assert titles["CEU0500000001"] == "Total Private"
    assert list(titles.index) == sorted(wide.columns)
    long = load_us_employment(long=True)
    assert list(long.columns) == ["unique_id", "ds", "y"] and len(long) == 237 * 148 - 45
    back = long.set_index(["unique_id", "ds"])["y"].unstack(0)
    pd.testing.assert_frame_equal(back, wide.dropna(how="all"), check_names=False)
