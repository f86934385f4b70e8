"""DeepStateForecaster: its GaussianHMM likelihood against probssm.kalman on the same
time-varying parameters (float64), exact predictive scores, accuracy, save/load."""

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("pyro")
jax = pytest.importorskip("jax")

import jax.numpy as jnp

import probssm
from probssm import kalman, metrics
from probssm.deep import DeepStateForecaster

from .test_forecaster import seasonal_panel

H = 12


def _kalman_loglik(est, sid, y, steps=None):
    """log p(y) in data units from probssm.kalman on the model est.state_space_model(sid)."""
    m = est.state_space_model(sid)
    z = ((np.asarray(y, dtype=np.float64) - m["loc"]) / m["scale"])[:, None]
    fields = {k: v for k, v in m.items() if k not in ("loc", "scale")}
    if steps is not None:
        fields = {k: v[:steps] if k in ("transition_cov", "observation_cov", "observation_offset") else v
                  for k, v in fields.items()}
    with jax.enable_x64(True):
        ll = float(kalman.log_likelihood(kalman.LGSSM(**{k: jnp.asarray(v) for k, v in fields.items()}),
                                         jnp.asarray(z)))
    return ll - np.sum(~np.isnan(z)) * np.log(m["scale"])


@pytest.fixture(scope="module")
def data():
    y = seasonal_panel(B=4, T=84)
    y.iloc[7, 1] = np.nan
    y.iloc[30:33, 2] = np.nan
    return y.iloc[:-H], y.iloc[-H:]


@pytest.fixture(scope="module")
def fitted64(data):
    train, _ = data
    est = DeepStateForecaster(max_epochs=3, batches_per_epoch=3, dtype="float64", random_state=0)
    return est.set_config(progress=False).fit(train)


def test_likelihood_equals_kalman_log_likelihood_float64(fitted64, data):
    train, _ = data
    for sid in train.columns:
        assert fitted64.log_likelihood_[sid] == pytest.approx(_kalman_loglik(fitted64, sid, train[sid]),
                                                              abs=1e-6, rel=0)


def test_update_and_score_are_exact_kalman_steps(fitted64, data, tmp_path):
    import copy

    train, test = data
    est = copy.deepcopy(fitted64)
    score = est.score(test.iloc[:5])
    est.update(test.iloc[:5])
    both = pd.concat([train, test.iloc[:5]])
    T = len(train)
    total = sum(_kalman_loglik(est, sid, both[sid]) - _kalman_loglik(est, sid, train[sid], steps=T)
                for sid in train.columns)
    assert score == pytest.approx(total / test.iloc[:5].notna().to_numpy().sum(), abs=1e-8)
    # after the update the forecast is the Kalman forecast from the updated filter
    loaded = probssm.load(est.save(tmp_path / "ds"))
    pd.testing.assert_frame_equal(loaded.predict(4), est.predict(4))
    pd.testing.assert_frame_equal(loaded.predict_interval(4), est.predict_interval(4))


def test_beats_seasonal_naive():
    y = seasonal_panel()
    train, test = y.iloc[:-H], y.iloc[-H:]
    est = DeepStateForecaster(max_epochs=15, random_state=0).set_config(progress=False).fit(train)
    pred = est.predict(H)
    naive = train.iloc[-12:].to_numpy()
    mase_model = np.mean([metrics.mase(test[c], pred[c], train[c], sp=12) for c in train])
    mase_naive = np.mean([metrics.mase(test[c], naive[:, j], train[c], sp=12) for j, c in enumerate(train)])
    assert mase_model < 0.8 * mase_naive, (mase_model, mase_naive)
    draws = est.sample(3, 2000, random_state=0)
    np.testing.assert_allclose(draws.groupby(level="month").mean().to_numpy(), pred.iloc[:3].to_numpy(),
                               atol=0.15)


def test_bad_input(data):
    train, _ = data
    with pytest.raises(ValueError, match="season_length must be >= 1"):
        DeepStateForecaster(season_length=0).fit(train)
    one = train.copy()
    one.iloc[1:, 0] = np.nan
    with pytest.raises(ValueError, match="series 's0' has fewer than 2 observed values"):
        DeepStateForecaster().fit(one)


def test_filter_and_smooth_equal_probssm_kalman(fitted64, data):
    train, _ = data
    filtered, smoothed = fitted64.filter(), fitted64.smooth()
    assert filtered.log_likelihood == pytest.approx(fitted64.log_likelihood_.sum(), abs=1e-8)
    for sid in ["s1", "s2"]:  # the series with missing months
        m = fitted64.state_space_model(sid)
        z = ((train[sid].to_numpy() - m["loc"]) / m["scale"])[:, None]
        fields = {k: jnp.asarray(v) for k, v in m.items() if k not in ("loc", "scale")}
        with jax.enable_x64(True):
            model = kalman.LGSSM(**fields)
            kf, ks = kalman.filter(model, jnp.asarray(z)), kalman.smooth(model, jnp.asarray(z))
        for ours, ref_mean, ref_cov in ((filtered, kf.mean, kf.cov), (smoothed, ks.mean, ks.cov)):
            mean = ours.mean.loc[sid].to_numpy()
            ref = np.asarray(ref_mean) * m["scale"]
            ref[:, 0] += m["loc"]
            np.testing.assert_allclose(mean, ref, atol=1e-6 * m["scale"])
            np.testing.assert_allclose(ours.std.loc[sid].to_numpy(),
                                       np.sqrt(np.diagonal(np.asarray(ref_cov), axis1=1, axis2=2)) * m["scale"],
                                       atol=1e-6 * m["scale"])
