"""Many series in one compiled fit: equal to per-series fits, tidy outputs, every panel layout."""

import numpy as np
import pandas as pd
import pytest

from probssm.structural import SARIMAX, LocalLevel, Seasonal, UnobservedComponents


def _panel(n_series=6, T=96, seed=0):
    rng = np.random.default_rng(seed)
    index = pd.period_range("2010-01", periods=T, freq="M")
    season = np.sin(2 * np.pi * np.arange(T) / 12)
    cols = {}
    for i in range(n_series):
        level = np.cumsum(rng.normal(scale=0.3 + 0.1 * i, size=T))
        cols[f"s{i}"] = 10 + level + (1 + 0.2 * i) * season + rng.normal(scale=0.5, size=T)
    wide = pd.DataFrame(cols, index=index)
    wide.iloc[5, 2] = np.nan
    return wide


def test_panel_fit_equals_per_series_fits():
    wide = _panel()
    model = UnobservedComponents(["local level", Seasonal(12)], initialization="approximate_diffuse")
    panel = model.fit(wide)
    assert list(panel.params_.index) == list(wide.columns)
    for col in wide.columns:
        single = UnobservedComponents(["local level", Seasonal(12)], initialization="approximate_diffuse").fit(wide[col])
        assert panel.loglik_[col] >= single.loglik_ - 1e-6 * abs(single.loglik_)
        assert abs(panel.loglik_[col] - single.loglik_) < 1e-5 * abs(single.loglik_)
        pd.testing.assert_series_equal(
            panel.predict(6).loc[col], panel.estimators_[col].predict(6), check_names=False)
    assert panel.converged_.all()


def test_panel_layouts_and_tidy_outputs():
    wide = _panel(n_series=3, T=60, seed=1)
    long = wide.stack(future_stack=True).rename("sales").swaplevel().sort_index()
    long.index.names = ["series_id", "time"]
    nixtla = long.reset_index().rename(columns={"series_id": "unique_id", "time": "ds", "sales": "y"})
    fits = [SARIMAX((1, 0, 0), trend="c").fit(data) for data in (wide, long, long.to_frame(), nixtla)]
    for fit in fits[1:]:
        np.testing.assert_allclose(fit.params_.to_numpy(), fits[0].params_.to_numpy(), rtol=1e-10)
    fc = fits[1].predict_interval(4, coverage=0.8)
    assert fc.index.names == ["series_id", "time"] and len(fc) == 12
    assert fits[1].predict(4).index.get_level_values(0).unique().tolist() == ["s0", "s1", "s2"]
    diag = fits[0].diagnostics()
    assert list(diag.index) == ["s0", "s1", "s2"]
    assert np.isfinite(diag[["jarque_bera", "heteroskedasticity"]].to_numpy()).all()
    paths = fits[0].sample(3, n_samples=5, random_state=0)
    assert paths.index.names == ["series_id", "sample", "time"] and len(paths) == 45
    with pytest.raises(ValueError, match="fitted on a panel"):
        fits[0].update(wide.iloc[:2])
    with pytest.raises(ValueError, match="no observed values"):
        SARIMAX().fit(wide.assign(s1=np.nan))


def test_panel_bad_series_are_named_and_data_left_unchanged():
    wide = _panel(n_series=3, T=40, seed=2)
    before = wide.copy()
    short = wide.assign(s1=np.where(np.arange(40) < 37, np.nan, wide["s1"]))
    with pytest.raises(ValueError, match="fitting series 's1': y has 3 observed values"):
        UnobservedComponents(["local level"]).fit(short)
    two = wide.assign(s2=np.where(np.arange(40) < 38, np.nan, wide["s2"]))
    with pytest.raises(ValueError, match="series 's2' has 2 observed time steps; at least 3"):
        LocalLevel().fit(two)
    duplicated = wide.iloc[[0, 1, 1] + list(range(3, 40))]
    with pytest.raises(ValueError, match=r"duplicated label Period\('2010-02'"):
        UnobservedComponents(["local level"]).fit(duplicated)
    pd.testing.assert_frame_equal(wide, before)
