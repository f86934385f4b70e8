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


@pytest.fixture(scope="module")
def panel():
    """Three monthly series (a yearly cycle with a phase per series, N(0, 0.2^2) noise)."""
    rng = np.random.default_rng(0)
    t = np.arange(60)
    index = pd.period_range("2015-01", periods=60, freq="M")
    return pd.DataFrame({f"s{b}": 5 + b + np.sin(2 * np.pi * (t + 3 * b) / 12) + rng.normal(0, 0.2, 60)
                         for b in range(3)}, index=index)


@pytest.mark.parametrize("name", list(TINY))
def test_deep_forecasts_through_the_adapter_equal_their_own(panel, name):
    train, new = panel.iloc[:-2], panel.iloc[-2:]
    adapter = ProbssmForecaster(TINY[name]().set_config(progress=False), n_samples=50, random_state=1)
    assert adapter.get_tag("capability:exogenous")
    assert adapter.get_tag("python_dependencies") == ["torch"]
    assert "pd-multiindex" in adapter.get_tag("y_inner_mtype")
    adapter.fit(train)
    own = TINY[name]().set_config(progress=False).fit(train)
    np.testing.assert_allclose(adapter.predict(fh=[1, 3]).to_numpy(), own.predict([1, 3]).to_numpy(), rtol=1e-6)
    band = adapter.predict_interval(fh=[1, 2], coverage=0.8)
    assert list(band.columns) == [(s, 0.8, side) for s in train for side in ("lower", "upper")]
    np.testing.assert_allclose(band.to_numpy(), own.predict_interval([1, 2], coverage=0.8).to_numpy(), rtol=1e-6)
    var = adapter.predict_var(fh=[1, 2])  # the variance of the sample paths
    assert var.shape == (2, 3) and np.all(var.to_numpy() > 0)
    adapter.update(new, update_params=False)
    own.update(new)
    np.testing.assert_allclose(adapter.predict(fh=[1]).to_numpy(), own.predict(1).to_numpy(), rtol=1e-6)


def test_deep_predict_proba_is_the_empirical_distribution_of_sample_paths(panel):
    pytest.importorskip("skpro")
    adapter = ProbssmForecaster(TINY["DeepStateForecaster"]().set_config(progress=False), n_samples=40,
                                random_state=3).fit(panel)
    dist = adapter.predict_proba(fh=[1, 2])
    paths = adapter.estimator_.sample([1, 2], n_samples=40, random_state=3)
    np.testing.assert_allclose(dist.mean().to_numpy(), paths.groupby(level="time").mean().to_numpy(), rtol=1e-10)
