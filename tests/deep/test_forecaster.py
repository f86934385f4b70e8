"""MambaForecaster on a synthetic seasonal panel: accuracy against seasonal naive, seeds, panel
layouts, update against a full forward pass, save/load, refusal of pickled code."""

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("pyro")

import probssm
from probssm import metrics
from probssm.deep import MambaForecaster
from probssm.deep.training import load_weights, save_weights
from probssm.deep.windows import gather_windows

H, L = 12, 24
SMALL = dict(lookback=L, horizon=H, d_model=16, n_layers=1, d_state=8, batch_size=64)


def seasonal_panel(B=6, T=108, seed=0):
    """Monthly series: level + trend + yearly cycle (phase per series) + N(0, 0.3^2) noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(T)
    index = pd.period_range("2010-01", periods=T, freq="M", name="month")
    return pd.DataFrame({f"s{b}": 10 + b + 3 * np.sin(2 * np.pi * (t + b) / 12) + 0.02 * t * b
                         + rng.normal(0, 0.3, T) for b in range(B)}, index=index)


@pytest.fixture(scope="module")
def panel():
    y = seasonal_panel()
    return y.iloc[:-H], y.iloc[-H:]


@pytest.fixture(scope="module")
def fitted(panel):
    train, _ = panel
    est = MambaForecaster(backbone="mamba2", max_epochs=8, batches_per_epoch=15, random_state=0, **SMALL)
    return est.set_config(progress=False).fit(train)


def test_beats_seasonal_naive_on_held_out_data(fitted, panel):
    train, test = panel
    pred = fitted.predict(H)
    assert isinstance(pred, pd.DataFrame) and list(pred.columns) == list(train.columns)
    assert pred.index.equals(test.index)
    naive = np.tile(train.iloc[-12:].to_numpy(), (1, 1))
    mase_model = np.mean([metrics.mase(test[c], pred[c], train[c], sp=12) for c in train])
    mase_naive = np.mean([metrics.mase(test[c], naive[:, j], train[c], sp=12) for j, c in enumerate(train)])
    assert mase_model < 0.8 * mase_naive, (mase_model, mase_naive)
    # the 90 % intervals cover most held-out values
    iv = fitted.predict_interval(H, coverage=0.9)
    lower = np.stack([iv[(c, 0.9, "lower")] for c in train], 1)
    upper = np.stack([iv[(c, 0.9, "upper")] for c in train], 1)
    assert metrics.interval_coverage(test.to_numpy(), lower, upper) > 0.6


def test_same_seed_same_model_other_seed_other_model(panel):
    train, _ = panel
    kw = dict(backbone="lru", max_epochs=2, batches_per_epoch=4, **SMALL)
    a = MambaForecaster(random_state=5, **kw).set_config(progress=False).fit(train).predict(3)
    b = MambaForecaster(random_state=5, **kw).set_config(progress=False).fit(train).predict(3)
    c = MambaForecaster(random_state=6, **kw).set_config(progress=False).fit(train).predict(3)
    pd.testing.assert_frame_equal(a, b)
    assert np.abs(a.to_numpy() - c.to_numpy()).max() > 1e-4
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    MambaForecaster(random_state=5, **kw).set_config(progress=False).fit(train)
    assert torch.rand(1) == before  # the caller's torch generator is left alone


def test_layouts_give_the_same_forecasts_in_their_own_layout(panel):
    train, _ = panel
    kw = dict(backbone="s4d", max_epochs=1, batches_per_epoch=3, random_state=1, **SMALL)
    stacked = train.stack().swaplevel().sort_index().rename("y")
    stacked.index.names = ["series_id", "month"]
    long = stacked.reset_index().rename(columns={"series_id": "unique_id", "month": "ds"})
    wide = MambaForecaster(**kw).set_config(progress=False).fit(train).predict(4)
    by_stack = MambaForecaster(**kw).set_config(progress=False).fit(stacked).predict(4)
    by_long = MambaForecaster(**kw).set_config(progress=False).fit(long).predict(4)
    assert isinstance(by_stack, pd.Series) and by_stack.index.names == ["series_id", "month"]
    assert list(by_long.columns) == ["unique_id", "ds", "y"]
    np.testing.assert_allclose(by_stack.unstack(0).to_numpy(), wide.to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(by_long["y"].to_numpy(), by_stack.to_numpy(), rtol=1e-6)
    one = MambaForecaster(**kw).set_config(progress=False).fit(train["s0"])
    assert isinstance(one.predict(2), pd.Series) and one.predict(2).name == "s0"
    assert list(one.predict_interval(2).columns) == [("s0", 0.9, "lower"), ("s0", 0.9, "upper")]


def test_update_equals_a_forward_pass_over_the_longer_window(panel):
    train, test = panel
    est = MambaForecaster(backbone="mamba", max_epochs=1, batches_per_epoch=2, random_state=2, **SMALL)
    est.set_config(progress=False).fit(train)
    before = est.predict(H)
    new = test.iloc[:3]
    est.update(new)
    after = est.predict(H - 3)
    assert after.index[0] == test.index[3]
    assert np.abs(after.to_numpy() - before.iloc[3:].to_numpy()).max() > 1e-3
    # Reference: the encoder's full forward pass over the fit's last window plus the new months,
    # normalised with that window's statistics.
    values = np.concatenate([train.to_numpy(), new.to_numpy()]).T
    T, n = len(train), 3
    cov = est._covariates(None)
    first = gather_windows(values, cov, np.arange(6), np.full(6, T), L, H, "revin", torch.float32)
    loc, scale = first["loc"], first["scale"]
    z = (torch.as_tensor(values[:, T - L:T + n], dtype=torch.float32) - loc[:, None]) / scale[:, None]
    inputs = torch.cat([z[..., None], torch.ones_like(z)[..., None],
                        torch.as_tensor(cov[:, T - L:T + n], dtype=torch.float32)], dim=-1)
    with torch.no_grad():
        features, _ = est.network_.encode(inputs, torch.ones_like(z, dtype=torch.bool))
        raw = est.network_.decoder(features, torch.as_tensor(cov[:, T + n:], dtype=torch.float32))
    expected = est._head.mean(raw, loc, scale)[:, :H - 3].T
    np.testing.assert_allclose(after.to_numpy(), expected, rtol=1e-5, atol=1e-5)


def test_save_load_round_trips_predictions_exactly(fitted, panel, tmp_path):
    _, test = panel
    est = fitted
    path = est.save(tmp_path / "model")
    loaded = probssm.load(path)
    assert isinstance(loaded, MambaForecaster) and loaded.get_params() == est.get_params()
    pd.testing.assert_frame_equal(loaded.predict(H), est.predict(H))
    pd.testing.assert_frame_equal(loaded.predict_interval(5, coverage=[0.5, 0.9]),
                                  est.predict_interval(5, coverage=[0.5, 0.9]))
    pd.testing.assert_frame_equal(loaded.sample(3, 4, random_state=0), est.sample(3, 4, random_state=0))
    # after update too: the saved data include the new months, the state is rebuilt step by step
    import copy

    moved = copy.deepcopy(est).update(test.iloc[:2])
    again = probssm.load(moved.save(tmp_path / "moved"))
    pd.testing.assert_frame_equal(again.predict(6), moved.predict(6))
    assert loaded.score(test) == est.score(test)


def test_load_refuses_pickled_code(fitted, tmp_path):
    path = fitted.save(tmp_path / "model")
    with np.load(path / "arrays.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["weight:evil"] = np.array([print], dtype=object)  # pickled on save
    np.savez(path / "arrays.npz", **arrays)
    with pytest.raises(ValueError, match="allow_pickle"):
        probssm.load(path)


class _Payload:
    def __reduce__(self):
        return (print, ("unpickled code ran",))


def test_checkpoint_reader_refuses_pickled_code(tmp_path):
    good = save_weights({"w": torch.ones(2)}, tmp_path / "good.pt")
    assert torch.equal(load_weights(good)["w"], torch.ones(2))
    torch.save({"w": _Payload()}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="refusing to load a file that holds pickled code"):
        load_weights(tmp_path / "bad.pt")


def test_checkpoint_written_during_training(panel, tmp_path):
    train, _ = panel
    est = MambaForecaster(backbone="lru", max_epochs=2, batches_per_epoch=2, random_state=0, **SMALL)
    est.set_config(progress=False, checkpoint_dir=str(tmp_path)).fit(train)
    state = load_weights(tmp_path / "best_weights.pt")
    for k, v in est.network_.state_dict().items():
        assert torch.equal(state[k], v)


def test_heads_and_variate_mode_fit_and_forecast(panel):
    train, test = panel
    quant = MambaForecaster(backbone="lru", likelihood="quantile", max_epochs=2, batches_per_epoch=3,
                            random_state=0, **SMALL).set_config(progress=False).fit(train)
    q = quant.predict_quantiles(3, alpha=[0.1, 0.5, 0.9])
    assert np.all(q[("s0", 0.1)] < q[("s0", 0.5)]) and np.all(q[("s0", 0.5)] < q[("s0", 0.9)])
    with pytest.raises(ValueError, match="no density"):
        quant.score(test)
    variate = MambaForecaster(backbone="mamba2", mode="variate", max_epochs=2, batches_per_epoch=3,
                              random_state=0, **SMALL).set_config(progress=False).fit(train)
    pred = variate.predict(H)
    assert pred.shape == (H, 6) and np.isfinite(pred.to_numpy()).all()
    assert np.isfinite(variate.score(test))
    counts = np.random.default_rng(0).poisson(5 + 3 * np.sin(np.arange(len(train)) / 2), (2, len(train))).T
    nb = MambaForecaster(backbone="lru", likelihood="negbinomial", max_epochs=1, batches_per_epoch=2,
                         random_state=0, **SMALL).set_config(progress=False)
    nb.fit(pd.DataFrame(counts.astype(float), index=train.index, columns=["a", "b"]))
    draws = nb.sample(3, 20, random_state=0)
    assert np.all(draws.to_numpy() >= 0) and np.all(draws.to_numpy() == np.round(draws.to_numpy()))


def test_regressors_and_missing_values(panel):
    train, test = panel
    y = train.copy()
    y.iloc[40:44, 1] = np.nan  # missing months inside a series
    y.iloc[:10, 2] = np.nan  # a series that starts later
    X = pd.DataFrame({"promo": np.arange(len(train) + H) % 3}, index=train.index.append(test.index), dtype=float)
    est = MambaForecaster(backbone="lru", max_epochs=1, batches_per_epoch=2, random_state=0, **SMALL)
    est.set_config(progress=False).fit(y, X=X.iloc[:len(train)])
    pred = est.predict(H, X=X.iloc[len(train):])
    assert np.isfinite(pred.to_numpy()).all()
    with pytest.raises(ValueError, match="X is required"):
        est.predict(H)
    with pytest.raises(ValueError, match="X has no row for time"):
        est.predict(H, X=X.iloc[len(train):len(train) + 3])


def test_bad_input_errors(panel):
    train, test = panel
    est = MambaForecaster(backbone="lru", max_epochs=1, batches_per_epoch=1, random_state=0, **SMALL)
    est.set_config(progress=False)
    with pytest.raises(ValueError, match="expected a 1-D array"):
        est.fit(np.zeros((30, 2, 2)))
    short = train.copy()
    short.iloc[:-20, 3] = np.nan
    with pytest.raises(ValueError, match="series 's3' has 20 time steps .* lookback=24 needs at least 25"):
        est.fit(short)
    with pytest.raises(TypeError, match="non-numeric"):
        est.fit(train.astype(str))
    with pytest.raises(ValueError, match="dtype must be one of"):
        MambaForecaster(dtype="float16", **SMALL).fit(train)
    with pytest.raises(ValueError, match="backbone must be one of"):
        MambaForecaster(backbone="transformer", **SMALL).fit(train)
    gone = train.copy()
    gone.iloc[-L:, 4] = np.nan
    est.fit(gone)
    with pytest.raises(ValueError, match="series 's4' has no observation in the last lookback=24"):
        est.predict(3)
    est.fit(train)
    with pytest.raises(ValueError, match="up to horizon=12 steps ahead; step 13"):
        est.predict(13)
    with pytest.raises(ValueError, match="missing \\['s5'\\]"):
        est.update(test.iloc[:2, :5])
    with pytest.raises(ValueError, match="continue"):
        est.update(test.iloc[1:3])
    with pytest.raises(ValueError, match="X was given"):
        est.predict(2, X=np.zeros((2, 1)))
    counts = MambaForecaster(likelihood="negbinomial", **SMALL)
    with pytest.raises(ValueError, match="non-negative integer counts; series 's0' has"):
        counts.fit(train)
