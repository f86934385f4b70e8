"""ProbssmForecaster: sktime's own estimator checks for every JAX-family estimator, forecasts
equal to the wrapped estimator's and to statsmodels', scikit-learn's parameter rules, the tags,
updates, panels and errors."""

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from sklearn.base import clone
from sktime.forecasting.base import ForecastingHorizon
from sktime.utils.estimator_checks import check_estimator

from probssm import SARIMAX, GaussianProcess, KalmanFilter, LocalLevel
from probssm.adapters.sktime import ProbssmForecaster
from probssm.datasets import load_airpassengers, load_nile
from probssm.gp.kernels import Matern32

from .estimators import estimators

ESTIMATORS = estimators()


@pytest.fixture(scope="module")
def nile():
    return load_nile()


@pytest.fixture(scope="module")
def airline():
    """The airline model on log passengers 1949-1959, through the adapter and on its own."""
    y = np.log(load_airpassengers())
    train = y.iloc[:-12]
    adapter = ProbssmForecaster(SARIMAX((0, 1, 1), (0, 1, 1, 12))).fit(train)
    own = SARIMAX((0, 1, 1), (0, 1, 1, 12)).fit(train)
    return train, y.index[-12:], adapter, own


def _applies(test_id: str, forecaster) -> bool:
    """Whether a check of sktime's suite applies to ``forecaster``.

    sktime before 1.0 has no ``capability:non_contiguous_X`` tag: its check of predictions with
    regressors passes ``X`` only at the steps of a non-contiguous horizon (``fh=[2, 5]``), which
    an estimator whose state recursion reads ``X`` at every step cannot use; sktime 1.x skips
    that check for estimators that declare the tag false, as the adapter does."""
    return not (test_id.startswith("test_predict_time_index_with_X[") and "fh=[2 5]" in test_id
                and forecaster.get_tag("capability:exogenous")
                and "capability:non_contiguous_X" not in forecaster.get_tags())


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_sktime_check_estimator_passes(name):
    if name == "ParticleFilter":
        pytest.importorskip("skpro")  # its sample-path distribution is skpro's Empirical
    forecaster = ProbssmForecaster(ESTIMATORS[name], n_samples=200, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(forecaster, verbose=False)
    failures = {test: str(outcome)[:500] for test, outcome in results.items()
                if outcome != "PASSED" and _applies(test, forecaster)}
    assert failures == {}
    assert len(results) > 100


def test_forecasts_equal_the_estimators_own_and_statsmodels(airline):
    train, future, adapter, own = airline
    fh = ForecastingHorizon(future, is_relative=False)
    point = adapter.predict(fh)
    np.testing.assert_allclose(point.to_numpy(), own.predict(12).to_numpy(), rtol=1e-10)
    assert point.index.equals(future)
    band = adapter.predict_interval(fh, coverage=[0.8, 0.95])
    np.testing.assert_allclose(band.to_numpy(), own.predict_interval(12, coverage=[0.8, 0.95]).to_numpy(),
                               rtol=1e-10)
    quantiles = adapter.predict_quantiles(fh, alpha=[0.1, 0.5, 0.9])
    np.testing.assert_allclose(quantiles.to_numpy(), own.predict_quantiles(12, alpha=[0.1, 0.5, 0.9]).to_numpy(),
                               rtol=1e-10)
    var = adapter.predict_var(fh)
    np.testing.assert_allclose(var.to_numpy()[:, 0], own.predict_var(12).to_numpy()[:, 0], rtol=1e-10)

    # statsmodels' forecasts at the same parameters (the airline model, exact diffuse start)
    ref = sm.tsa.SARIMAX(train.to_numpy(), order=(0, 1, 1), seasonal_order=(0, 1, 1, 12),
                         use_exact_diffuse=True).smooth(own.params_.to_numpy()).get_forecast(12)
    np.testing.assert_allclose(point.to_numpy(), ref.predicted_mean, rtol=1e-9)
    np.testing.assert_allclose(var.to_numpy()[:, 0], ref.se_mean**2, rtol=1e-8)
    ci = ref.conf_int(alpha=0.05)
    np.testing.assert_allclose(band[(train.name, 0.95, "lower")].to_numpy(), ci[:, 0], rtol=1e-9)
    np.testing.assert_allclose(band[(train.name, 0.95, "upper")].to_numpy(), ci[:, 1], rtol=1e-9)


def test_relative_and_absolute_horizons_agree(airline):
    train, future, adapter, _ = airline
    relative = adapter.predict_interval(fh=[2, 5, 12], coverage=0.9)
    absolute = adapter.predict_interval(fh=ForecastingHorizon(future[[1, 4, 11]], is_relative=False),
                                        coverage=0.9)
    pd.testing.assert_frame_equal(relative, absolute)
    assert relative.columns.tolist() == [(train.name, 0.9, "lower"), (train.name, 0.9, "upper")]


def test_local_level_matches_statsmodels_mle(nile):
    adapter = ProbssmForecaster(LocalLevel()).fit(nile, fh=range(1, 11))
    ref = sm.tsa.UnobservedComponents(nile.to_numpy(), "llevel", use_exact_diffuse=True)
    ref = ref.fit(disp=False, method="lbfgs", maxiter=2000, pgtol=1e-12, factr=1).get_forecast(10)
    np.testing.assert_allclose(adapter.predict().to_numpy(), ref.predicted_mean, rtol=1e-6)
    np.testing.assert_allclose(adapter.predict_var().to_numpy()[:, 0], ref.se_mean**2, rtol=1e-4)
    dist = adapter.predict_proba()
    np.testing.assert_allclose(dist.mean().to_numpy()[:, 0], ref.predicted_mean, rtol=1e-6)
    np.testing.assert_allclose(dist.var().to_numpy()[:, 0], ref.se_mean**2, rtol=1e-4)


def test_update_without_refit_is_the_estimators_filter_step(nile):
    train, new = nile.iloc[:80], nile.iloc[80:]
    adapter = ProbssmForecaster(LocalLevel()).fit(train)
    params = adapter.estimator_.params_.copy()
    adapter.update(new, update_params=False)
    own = LocalLevel().fit(train).update(new)
    pd.testing.assert_series_equal(adapter.estimator_.params_, params)
    assert adapter.cutoff[0] == nile.index[-1]
    np.testing.assert_allclose(adapter.predict(fh=[1, 2]).to_numpy(), own.predict(2).to_numpy(), rtol=1e-10)
    adapter.update(new, update_params=True)  # refits on all data seen
    np.testing.assert_allclose(adapter.estimator_.params_.to_numpy(), LocalLevel().fit(nile).params_.to_numpy(),
                               rtol=1e-10)


def test_panel_forecasts_equal_the_estimators_own(nile):
    values = np.stack([nile.to_numpy(), nile.to_numpy()[::-1]])
    panel = pd.DataFrame(
        {"volume": values.ravel()},
        index=pd.MultiIndex.from_product([["a", "b"], nile.index], names=["series", "year"]))
    adapter = ProbssmForecaster(LocalLevel()).fit(panel)
    own = LocalLevel().fit(panel)
    band = adapter.predict_interval(fh=[1, 3], coverage=0.5)
    np.testing.assert_allclose(band.to_numpy(), own.predict_interval([1, 3], coverage=0.5).to_numpy(), rtol=1e-10)
    assert band.index.names == ["series", "year"]
    assert list(band.index.get_level_values("series")) == ["a", "a", "b", "b"]
    later = panel.copy()
    later.index = later.index.set_levels(later.index.levels[1] + len(nile), level="year")
    with pytest.raises(ValueError, match="without refitting"):
        adapter.update(later, update_params=False)


def test_clone_and_nested_parameters_follow_scikit_learn():
    forecaster = ProbssmForecaster(SARIMAX(order=(1, 0, 0)))
    params = forecaster.get_params(deep=True)
    assert params["estimator__order"] == (1, 0, 0)
    assert params["n_samples"] == 1000
    assert set(params) >= {f"estimator__{k}" for k in SARIMAX(order=(1, 0, 0)).get_params(deep=False)}
    forecaster.set_params(estimator__order=(2, 0, 0), n_samples=50)
    assert forecaster.estimator.order == (2, 0, 0)
    twin = clone(forecaster)
    assert twin is not forecaster and twin.estimator is not forecaster.estimator
    assert twin.get_params(deep=False)["n_samples"] == 50
    assert twin.estimator.get_params() == forecaster.estimator.get_params()


def test_tags_follow_the_estimator():
    def tags(est):
        f = ProbssmForecaster(est)
        multivariate = f.get_tag("capability:multivariate", None) if "capability:multivariate" in f.get_tags() \
            else f.get_tag("scitype:y") != "univariate"
        return f.get_tag("capability:exogenous"), bool(multivariate), "pd-multiindex" in f.get_tag("y_inner_mtype")

    assert tags(ESTIMATORS["SARIMAX"]) == (True, False, False)  # panels with X: series by series
    assert tags(ESTIMATORS["LocalLevel"]) == (False, False, True)
    assert tags(ESTIMATORS["KalmanFilter"]) == (False, False, False)
    two = KalmanFilter(transition_matrix=np.eye(2), transition_cov=np.eye(2), observation_matrix=np.eye(2),
                       observation_cov=np.eye(2))
    assert tags(two) == (False, True, False)
    assert tags(GaussianProcess(Matern32(1.0))) == (False, False, True)
    assert tags(ESTIMATORS["ParticleFilter"]) == (False, False, False)
    forecaster = ProbssmForecaster(LocalLevel())
    assert forecaster.get_tag("capability:pred_int") and forecaster.get_tag("capability:missing_values")
    assert not forecaster.get_tag("capability:insample") and not forecaster.get_tag("requires-fh-in-fit")


def test_bad_estimators_and_horizons_raise(nile):
    with pytest.raises(TypeError, match="the class LocalLevel"):
        ProbssmForecaster(LocalLevel)
    with pytest.raises(TypeError, match="probssm estimator"):
        ProbssmForecaster(object())
    with pytest.raises(ValueError, match="n_samples"):
        ProbssmForecaster(LocalLevel(), n_samples=0).fit(nile)
    forecaster = ProbssmForecaster(LocalLevel()).fit(nile)
    with pytest.raises(NotImplementedError, match="in-sample"):
        forecaster.predict(fh=[-1, 1])


def test_particle_filter_distribution_is_the_empirical_one_of_its_paths():
    """A particle filter's predictive is not Gaussian: predict_proba is the empirical
    distribution of the estimator's own sample paths (same seed); predict_var is the
    estimator's own."""
    y = pd.Series(3.0 + np.random.default_rng(0).normal(0, 1, 30),
                  index=pd.period_range("2001-01", periods=30, freq="M"))
    adapter = ProbssmForecaster(ESTIMATORS["ParticleFilter"], n_samples=100, random_state=4).fit(y)
    paths = adapter.estimator_.sample([1, 2, 3], n_samples=100, random_state=4)
    by_time = paths.groupby(level="time")
    np.testing.assert_allclose(adapter.predict_var(fh=[1, 2, 3]).to_numpy()[:, 0],
                               adapter.estimator_.predict_var(3).to_numpy()[:, 0], rtol=1e-12)
    pytest.importorskip("skpro")
    dist = adapter.predict_proba(fh=[1, 2, 3])
    assert type(dist).__name__ == "Empirical"
    np.testing.assert_allclose(dist.mean().to_numpy()[:, 0], by_time.mean().to_numpy()[:, 0], rtol=1e-12)
