"""ProbssmForecaster around the deep forecasters: tags, forecasts equal to the wrapped
estimator's own (the same seed trains the same network), sample-path distributions, update."""

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sktime")

from probssm.adapters.sktime import ProbssmForecaster
from probssm.deep import DeepStateForecaster, MambaForecaster

TINY = {
    "MambaForecaster": lambda: MambaForecaster(lookback=12, horizon=4, backbone="lru", d_model=8, n_layers=1,
                                               d_state=4, max_epochs=1, batches_per_epoch=2, batch_size=16,
                                               random_state=0),
    "DeepStateForecaster": lambda: DeepStateForecaster(horizon=4, season_length=12, d_model=8, n_layers=1,
                                                       d_state=4, max_epochs=1, batches_per_epoch=2,
                                                       batch_size=16, random_state=0),
}


def stacked(T, start="2015-01"):
    """Three monthly series (a yearly cycle with a phase per series, N(0, 0.2^2) noise) as
    sktime's panel: rows ``(series, month)``, one column."""
    rng = np.random.default_rng(0)
    t = np.arange(T)
    index = pd.MultiIndex.from_product([["s0", "s1", "s2"], pd.period_range(start, periods=T, freq="M")],
                                       names=["series", "month"])
    values = np.concatenate([5 + b + np.sin(2 * np.pi * (t + 3 * b) / 12) + rng.normal(0, 0.2, T)
                             for b in range(3)])
    return pd.DataFrame({"y": values}, index=index)


@pytest.fixture(scope="module")
def panel():
    return stacked(60)


@pytest.mark.parametrize("name", list(TINY))
def test_deep_forecasts_through_the_adapter_equal_their_own(panel, name):
    months = panel.index.levels[1]
    train = panel[panel.index.get_level_values("month") < months[-2]]
    new = panel[panel.index.get_level_values("month") >= months[-2]]
    adapter = ProbssmForecaster(TINY[name]().set_config(progress=False), n_samples=50, random_state=1)
    assert adapter.get_tag("capability:exogenous")
    assert adapter.get_tag("python_dependencies") == ["torch"]
    assert "pd-multiindex" in adapter.get_tag("y_inner_mtype")
    adapter.fit(train)
    own = TINY[name]().set_config(progress=False).fit(train)
    np.testing.assert_allclose(adapter.predict(fh=[1, 3])["y"].to_numpy(), own.predict([1, 3]).to_numpy(), rtol=1e-6)
    band = adapter.predict_interval(fh=[1, 2], coverage=0.8)
    assert list(band.columns) == [("y", 0.8, "lower"), ("y", 0.8, "upper")]
    assert band.index.names == ["series", "month"]
    np.testing.assert_allclose(band.to_numpy(), own.predict_interval([1, 2], coverage=0.8).to_numpy(), rtol=1e-6)
    var = adapter.predict_var(fh=[1, 2])  # the variance of the sample paths
    assert var.shape == (6, 1) and np.all(var.to_numpy() > 0)
    adapter.update(new, update_params=False)
    own.update(new)
    np.testing.assert_allclose(adapter.predict(fh=[1])["y"].to_numpy(), own.predict(1).to_numpy(), rtol=1e-6)


def test_deep_predict_proba_is_the_empirical_distribution_of_sample_paths(panel):
    pytest.importorskip("skpro")
    adapter = ProbssmForecaster(TINY["DeepStateForecaster"]().set_config(progress=False), n_samples=40,
                                random_state=3).fit(panel)
    dist = adapter.predict_proba(fh=[1, 2])
    paths = adapter.estimator_.sample([1, 2], n_samples=40, random_state=3)
    means = paths.groupby(level=[0, 2]).mean()  # rows (series, sample, month)
    np.testing.assert_allclose(dist.mean().to_numpy(), means.to_numpy(), rtol=1e-10)
