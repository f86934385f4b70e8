"""ParticleFilter on the forecasting contract: against the exact Kalman filter, smoother and
forecasts on a linear-Gaussian model, fits by PMMH and by the differentiable filter, update,
score, sampling, save/load and errors."""

import numpy as np
import numpyro.distributions as dist
import pandas as pd
import pytest
from scipy import stats
from sklearn.base import clone

import probssm
from probssm import kalman
from probssm.smc.estimator import ParticleFilter

from .models import exact_log_likelihoods, linear_data, linear_model, reference

T_TRAIN = 40


@pytest.fixture(scope="module")
def data():
    y = linear_data(T=50, seed=4, missing=(7,))[:, 0]
    return pd.Series(y, index=pd.date_range("2021-01", periods=50, freq="MS"), name="y")


@pytest.fixture(scope="module")
def exact(data):
    y = data.to_numpy()[:T_TRAIN, None]
    filt = kalman.filter(reference(), y)
    fc = kalman.forecast(reference(), filt, 5)
    return filt, kalman.smooth(reference(), y), fc


@pytest.fixture(scope="module")
def filter_only(data):
    return ParticleFilter(linear_model(), n_particles=2000, random_state=0).fit(data.iloc[:T_TRAIN])


def test_filter_smooth_and_log_likelihood_against_kalman(filter_only, exact):
    filt, smoothed, _ = exact
    est = filter_only
    f = est.filter()
    sd = np.sqrt(np.diagonal(np.asarray(filt.cov), axis1=-2, axis2=-1))
    # 2000 particles: within 20 % of a filtering sd at every step (MC error sd / sqrt(ESS), ESS
    # down to a few hundred at the most informative steps)
    assert np.max(np.abs(f.mean.to_numpy() - np.asarray(filt.mean)) / sd) < 0.2
    np.testing.assert_allclose(f.std.to_numpy(), sd, rtol=0.15)
    assert f.mean.index.equals(est._y.index) and list(f.mean.columns) == ["state_0", "state_1"]
    assert abs(est.log_likelihood_ - float(filt.log_likelihood)) < 0.15
    assert len(est.params_) == 0 and est.posterior_ is None
    s = est.smooth()
    sd_s = np.sqrt(np.diagonal(np.asarray(smoothed.cov), axis1=-2, axis2=-1))
    assert np.max(np.abs(s.mean.to_numpy() - np.asarray(smoothed.mean)) / sd_s) < 0.25   # 256 FFBS paths


def test_forecasts_against_kalman(filter_only, exact):
    _, _, fc = exact
    est = filter_only
    mean = est.predict(5)
    sd = np.sqrt(np.asarray(fc.observation_cov)[:, 0, 0])
    assert mean.index[0] == pd.Timestamp("2024-05-01") and len(mean) == 5
    # 4000 predictive paths: the mean within 5 path-standard-errors (sd / sqrt(4000))
    assert np.all(np.abs(mean.to_numpy() - np.asarray(fc.observation_mean)[:, 0]) < 5 * sd / np.sqrt(4000) + 0.03)
    iv = est.predict_interval(5, coverage=0.9)
    z = stats.norm.ppf(0.95)
    np.testing.assert_allclose(iv[("y", 0.9, "upper")] - iv[("y", 0.9, "lower")], 2 * z * sd, rtol=0.1)
    q = est.predict_quantiles(5, alpha=(0.05, 0.5, 0.95))
    np.testing.assert_allclose(q[("y", 0.05)], iv[("y", 0.9, "lower")])      # the same paths
    draws = est.sample(3, n_samples=2000, random_state=1)
    assert draws.shape == (6000, 1)
    np.testing.assert_allclose(draws.groupby(level="time")["y"].std().to_numpy(), sd[:3], rtol=0.1)


def test_update_and_score_continue_the_filter(filter_only, data, exact):
    est = clone(filter_only).fit(data.iloc[:T_TRAIN])
    new = data.iloc[T_TRAIN:T_TRAIN + 4]
    y_all = data.to_numpy()[:T_TRAIN + 4, None]
    exact_all = float(kalman.filter(reference(), y_all).log_likelihood)
    exact_train = float(kalman.filter(reference(), y_all[:T_TRAIN]).log_likelihood)
    score = est.score(new)
    assert abs(score - (exact_all - exact_train) / 4) < 0.05
    est.update(new)
    assert est.cutoff_ == new.index[-1] and len(est.filter().mean) == T_TRAIN + 4
    assert abs(est.log_likelihood_ - exact_all) < 0.2
    filt = kalman.filter(reference(), y_all)
    sd = np.sqrt(np.asarray(filt.cov)[-1, 0, 0])
    assert abs(est.filter().mean.iloc[-1, 0] - float(filt.mean[-1, 0])) < 0.2 * sd
    assert est.predict(1).index[0] == data.index[T_TRAIN + 4]


@pytest.fixture(scope="module")
def pmmh_fit(data):
    return ParticleFilter(linear_model(0.9), priors={"scale": dist.Uniform(0.0, 1.4)}, method="pmmh",
                          n_particles=300, pmmh_particles=100, num_warmup=150, num_samples=150,
                          num_chains=2, random_state=1).fit(data.iloc[:T_TRAIN])


def test_pmmh_fit_keeps_the_posterior(pmmh_fit, data):
    est = pmmh_fit
    assert list(est.params_.index) == ["scale"]
    assert est.posterior_.shape == (300, 1) and list(est.posterior_summary_.columns)[-2:] == ["r_hat", "ess"]
    assert est.params_["scale"] == pytest.approx(est.posterior_["scale"].mean())
    # the exact posterior mean from a grid of Kalman likelihoods (flat prior on (0, 1.4))
    y = data.to_numpy()[:T_TRAIN, None]
    grid = np.linspace(0.4, 1.4, 101)
    ll = exact_log_likelihoods(grid, y)
    w = np.exp(ll - ll.max())
    w /= w.sum()
    mean, sd = (w * grid).sum(), np.sqrt((w * grid**2).sum() - (w * grid).sum() ** 2)
    assert abs(est.params_["scale"] - mean) < 0.5 * sd
    # forecasts integrate over the posterior: wider than the plug-in forecast
    plug = ParticleFilter(linear_model(est.params_["scale"]), n_particles=300, random_state=1).fit(data.iloc[:T_TRAIN])

    def width(e):
        iv = e.predict_interval(8)
        return float(iv.iloc[-1, 1] - iv.iloc[-1, 0])

    assert width(est) > 0.97 * width(plug)
    score = est.score(data.iloc[T_TRAIN:T_TRAIN + 3])
    assert np.isfinite(score)


def test_save_and_load_need_the_model_and_priors(pmmh_fit, tmp_path):
    est = pmmh_fit
    path = est.save(tmp_path / "pf")
    with pytest.raises(ValueError, match="model=..., priors=..."):
        probssm.load(path)
    loaded = probssm.load(path, model=linear_model(), priors=est.priors)
    pd.testing.assert_series_equal(loaded.params_, est.params_)
    pd.testing.assert_frame_equal(loaded.posterior_, est.posterior_)
    pd.testing.assert_series_equal(loaded.predict(3), est.predict(3))
    pd.testing.assert_frame_equal(loaded.filter().mean, est.filter().mean)
    assert loaded.log_likelihood_ == est.log_likelihood_


def test_mle_by_the_differentiable_filter(data):
    est = ParticleFilter(linear_model(0.6), estimate=("scale",), n_particles=300, max_iter=150,
                         learning_rate=0.03, random_state=2).fit(data.iloc[:T_TRAIN])
    y = data.to_numpy()[:T_TRAIN, None]
    grid = np.linspace(0.5, 1.3, 161)
    ll = exact_log_likelihoods(grid, y)
    mle = grid[np.argmax(ll)]
    curvature = -np.gradient(np.gradient(ll, grid), grid)[np.argmax(ll)]
    assert abs(est.params_["scale"] - mle) < 0.5 / np.sqrt(curvature), (est.params_["scale"], mle)
    assert est.optimization_trace_.shape == (150, 1)
    assert est.model_.params["scale"] == pytest.approx(est.params_["scale"])


def test_hyper_parameters_and_errors(data):
    est = ParticleFilter(linear_model(), n_particles=50, random_state=0)
    assert clone(est).get_params()["n_particles"] == 50
    with pytest.raises(probssm.NotFittedError):
        est.predict(2)
    with pytest.raises(ValueError, match="method must be one of"):
        ParticleFilter(linear_model(), method="nuts").fit(data)
    with pytest.raises(ValueError, match="needs a prior for every estimated parameter"):
        ParticleFilter(linear_model(), estimate=("scale",), method="pmmh").fit(data)
    with pytest.raises(ValueError, match="n_particles must be an integer >= 2"):
        ParticleFilter(linear_model(), n_particles=1).fit(data)
    with pytest.raises(ValueError, match="y has 2 variables but the model's emission has dimension 1"):
        ParticleFilter(linear_model()).fit(pd.DataFrame({"a": data, "b": data}))
    with pytest.raises(TypeError, match="StateSpaceModel"):
        ParticleFilter(model="bogus").fit(data)
