"""The bundled data sets: shape, index and published values."""

import numpy as np
import pandas as pd
import pytest

from probssm.datasets import load_airpassengers, load_nile


def test_airpassengers_published_facts():
    y = load_airpassengers()
    assert isinstance(y, pd.Series)
    assert y.name == "passengers"
    assert y.dtype == np.float64
    assert len(y) == 144
    assert isinstance(y.index, pd.PeriodIndex)
    assert y.index.freqstr == "M"
    assert y.index.name == "month"
    assert str(y.index[0]) == "1949-01" and str(y.index[-1]) == "1960-12"
    assert y.index.is_monotonic_increasing and y.index.is_unique
    # Box & Jenkins (1976), series G: first and last values and the total.
    assert y.iloc[0] == 112.0
    assert y.iloc[-1] == 432.0
    assert y.sum() == 40363.0
    assert y.max() == 622.0 and str(y.idxmax()) == "1960-07"
    assert not y.isna().any()


def test_airpassengers_matches_sktime():
    datasets = pytest.importorskip("sktime.datasets")
    ref = datasets.load_airline()
    y = load_airpassengers()
    np.testing.assert_array_equal(y.to_numpy(), ref.to_numpy(dtype=float))
    assert (y.index == pd.PeriodIndex(ref.index, freq="M")).all()


def test_airpassengers_returns_a_fresh_copy():
    y = load_airpassengers()
    y.iloc[0] = -1.0
    assert load_airpassengers().iloc[0] == 112.0


def test_nile_shape():
    y = load_nile()
    assert len(y) == 100 and y.name == "volume"
    assert str(y.index[0]) == "1871" and str(y.index[-1]) == "1970"
