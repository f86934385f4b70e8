"""GaussianProcess: scikit-learn parity, the forecasting contract, persistence and input errors."""

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process import kernels as sk

import probssm
from probssm.gp import Constant, GaussianProcess, Matern12, Matern32, Matern52, WhiteNoise

from . import dense

RNG = np.random.default_rng(0)
T = 40
TIMES = np.sort(RNG.uniform(0, 30, T))
VALUES = np.sin(TIMES / 3) + 0.3 * RNG.standard_normal(T)
NEW = np.array([-3.0, 0.5, 7.77, 29.0, 35.0])


@pytest.mark.parametrize("ours, theirs", [
    (Matern12(2.0, variance=1.5), 1.5 * sk.Matern(2.0, nu=0.5)),
    (Matern32(1.5) + Constant(0.7), sk.Matern(1.5, nu=1.5) + sk.ConstantKernel(0.7)),
    (Matern52(3.0, variance=0.8) + WhiteNoise(0.05), 0.8 * sk.Matern(3.0, nu=2.5) + sk.WhiteKernel(0.05)),
])
def test_predictions_equal_scikit_learn_at_given_hyperparameters(ours, theirs):
    gp = GaussianProcess(ours, noise=0.04, optimizer=None).fit(TIMES, VALUES)
    reference = GaussianProcessRegressor(theirs, alpha=0.04, optimizer=None).fit(TIMES[:, None], VALUES)
    white = float(ours.white_noise_variance)
    mean, std = gp.predict(NEW, return_std=True)
    ref_mean, ref_std = reference.predict(NEW[:, None], return_std=True)
    np.testing.assert_allclose(mean, ref_mean, atol=1e-9)
    # scikit-learn's std includes a WhiteKernel's variance (its diagonal at new points).
    np.testing.assert_allclose(np.sqrt(std**2 + white), ref_std, atol=1e-9)
    _, cov = gp.predict(NEW, return_cov=True)
    _, ref_cov = reference.predict(NEW[:, None], return_cov=True)
    np.testing.assert_allclose(cov + white * np.eye(len(NEW)), ref_cov, atol=1e-9)
    np.testing.assert_allclose(gp.log_marginal_likelihood_, reference.log_marginal_likelihood_value_, rtol=1e-10)


def test_maximum_likelihood_matches_scikit_learn():
    gp = GaussianProcess(Matern52(2.0)).fit(TIMES, VALUES)
    reference = GaussianProcessRegressor(sk.ConstantKernel() * sk.Matern(2.0, nu=2.5) + sk.WhiteKernel(0.1),
                                         n_restarts_optimizer=2, random_state=0).fit(TIMES[:, None], VALUES)
    assert gp.log_marginal_likelihood_ >= reference.log_marginal_likelihood_value_ - 1e-6
    fitted = reference.kernel_.get_params()
    np.testing.assert_allclose(gp.kernel_.lengthscale, fitted["k1__k2__length_scale"], rtol=1e-3)
    np.testing.assert_allclose(gp.noise_, fitted["k2__noise_level"], rtol=1e-3)
    assert list(gp.params_.index) == ["variance", "lengthscale", "noise"]
    assert "Matern52(variance=" in repr(gp.kernel_)


def test_contract_on_a_dated_series():
    index = pd.date_range("2021-01-31", periods=T, freq="ME")
    y = pd.Series(VALUES, index=index, name="sales")
    y_before = y.copy()
    gp = GaussianProcess(Matern32(6.0) + WhiteNoise(0.1)).fit(y)
    pd.testing.assert_series_equal(y, y_before)
    forecast = gp.predict(3)
    assert list(forecast.index) == list(pd.date_range("2024-05-31", periods=3, freq="ME"))
    intervals = gp.predict_interval(3, coverage=[0.5, 0.9])
    assert intervals.columns.tolist()[0] == ("sales", 0.5, "lower")
    assert (intervals[("sales", 0.9, "lower")] < forecast).all() and (forecast < intervals[("sales", 0.9, "upper")]).all()
    quantiles = gp.predict_quantiles(2, alpha=[0.5])
    np.testing.assert_allclose(quantiles[("sales", 0.5)], forecast.iloc[:2], atol=1e-12)
    draws = gp.sample(2, n_samples=3, random_state=1)
    assert draws.shape == (6, 1)
    # Time is counted in steps of the index: the forecast is the posterior at times T, T+1, ...
    np.testing.assert_allclose(forecast, gp.predict(np.arange(T, T + 3.0)), atol=1e-12)
    # score: the exact conditional density of held-out data.
    held = pd.Series([0.1, -0.2], index=pd.date_range("2024-05-31", periods=2, freq="ME"))
    kernel, noise = gp.kernel_, gp.noise_
    both = np.r_[VALUES, held.to_numpy()]
    expected = (dense.log_marginal_likelihood(kernel, np.arange(T + 2.0), both, noise)
                - dense.log_marginal_likelihood(kernel, np.arange(float(T)), VALUES, noise)) / 2
    np.testing.assert_allclose(gp.score(held), expected, rtol=1e-10)
    gp.update(held)
    assert gp.cutoff_ == held.index[-1]
    assert gp.predict(1).index[0] == pd.Timestamp("2024-07-31")


def test_labels_of_missing_values_and_future_labels_on_a_regular_index():
    index = pd.date_range("2020-01-04", periods=T, freq="W-SAT")
    y = pd.Series(VALUES, index=index)
    y.iloc[[5, 6]] = np.nan
    gp = GaussianProcess(Matern32(3.0), noise=0.05, optimizer=None).fit(y)
    labels = index[[5, 6]].append(pd.DatetimeIndex([index[-1] + 2 * index.freq]))
    np.testing.assert_allclose(gp.predict(labels).to_numpy(), gp.predict(np.array([5.0, 6.0, T + 1.0])),
                               atol=1e-12)


def test_irregular_dates_count_time_in_days():
    index = pd.DatetimeIndex(pd.Timestamp("2022-01-01") + pd.to_timedelta(TIMES, unit="D"))
    gp = GaussianProcess(Matern32(3.0), noise=0.1, optimizer=None).fit(pd.Series(VALUES, index=index))
    on_arrays = GaussianProcess(Matern32(3.0), noise=0.1, optimizer=None).fit(TIMES, VALUES)
    labels = pd.DatetimeIndex(pd.Timestamp("2022-01-01") + pd.to_timedelta(NEW[1:], unit="D"))
    np.testing.assert_allclose(gp.predict(labels).to_numpy(), on_arrays.predict(NEW[1:]), atol=1e-9)
    with pytest.raises(ValueError, match="irregular"):
        gp.predict(3)


def test_save_load_clone(tmp_path):
    gp = GaussianProcess(Matern52(2.0) * Constant(1.0) + WhiteNoise(0.1), n_restarts_optimizer=1,
                         random_state=3).fit(TIMES, VALUES)
    gp.save(tmp_path / "gp")
    loaded = probssm.load(tmp_path / "gp")
    assert repr(loaded.kernel_) == repr(gp.kernel_)
    np.testing.assert_allclose(loaded.predict(NEW), gp.predict(NEW), atol=1e-12)
    assert loaded.cutoff_ == gp.cutoff_
    copy = clone(gp)
    assert copy.get_params()["n_restarts_optimizer"] == 1 and not hasattr(copy, "kernel_")


def test_poisson_counts_follow_the_rate():
    rng = np.random.default_rng(1)
    t = np.sort(rng.uniform(0, 60, 120))
    rate = np.exp(1.0 + np.sin(t / 8))
    counts = rng.poisson(rate)
    gp = GaussianProcess(Matern32(8.0), likelihood="poisson").fit(t, counts)
    mean = gp.predict(t, include_noise=True)
    assert np.corrcoef(mean, rate)[0, 1] > 0.9
    assert np.abs(np.log(mean) - np.log(rate)).mean() < 0.25


@pytest.mark.parametrize("kwargs, t, y, error, match", [
    ({"likelihood": "poisson"}, TIMES[:3], [1.0, -1.0, 2.0], ValueError, "non-negative integer counts"),
    ({"likelihood": "bernoulli"}, TIMES[:3], [1.0, 0.5, 0.0], ValueError, "labels 0 or 1"),
    ({"likelihood": "poisson", "noise": 0.1}, TIMES[:3], [1.0, 0.0, 2.0], ValueError, "no observation noise"),
    ({}, TIMES[:3], [1.0, 2.0], ValueError, "3 time stamps but y has 2"),
    ({}, [0.0, np.nan, 1.0], [1.0, 2.0, 3.0], ValueError, "position 1"),
    ({"optimizer": None}, TIMES[:3], [1.0, 2.0, 3.0], ValueError, "give noise="),
    ({"optimizer": "adam"}, TIMES[:3], [1.0, 2.0, 3.0], ValueError, "optimizer must be"),
    ({"likelihood": "gamma"}, TIMES[:3], [1.0, 2.0, 3.0], ValueError, "likelihood must be one of"),
])
def test_bad_input_raises_clearly(kwargs, t, y, error, match):
    with pytest.raises(error, match=match):
        GaussianProcess(Matern12(1.0), **kwargs).fit(t, y)


def test_unfitted_and_configuration_errors():
    gp = GaussianProcess(Matern12(1.0))
    with pytest.raises(probssm.NotFittedError):
        gp.predict(NEW)
    with pytest.raises(ValueError, match="unknown configuration"):
        gp.set_config(backend="dask")
    assert gp.set_config(inference="parallel").get_config() == {"inference": "parallel", "progress": True}


def test_panel_fits_equal_one_fit_per_series():
    index = pd.date_range("2020-01-01", periods=T, freq="D")
    rng = np.random.default_rng(4)
    series = {f"s{i}": np.sin(np.arange(T) / (3 + i)) + 0.2 * rng.standard_normal(T) for i in range(3)}
    long = pd.concat([pd.DataFrame({"unique_id": k, "ds": index, "y": v}) for k, v in series.items()])
    panel = GaussianProcess(Matern32(5.0)).fit(long)
    for sid, values in series.items():
        alone = GaussianProcess(Matern32(5.0)).fit(pd.Series(values, index=index))
        np.testing.assert_allclose(panel.log_marginal_likelihood_[sid], alone.log_marginal_likelihood_, rtol=1e-7)
        np.testing.assert_allclose(panel.params_.loc[sid].to_numpy(), alone.params_.to_numpy(), rtol=1e-3)
    forecast = panel.predict(2)
    assert forecast.index.names == ["series_id", "ds"] and len(forecast) == 6
    np.testing.assert_allclose(forecast.loc["s1"].to_numpy(), panel.estimators_["s1"].predict(2).to_numpy())
    with pytest.raises(ValueError, match="panel fit"):
        panel.predict(np.array([1.0]), return_std=True)
