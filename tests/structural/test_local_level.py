"""LocalLevel against statsmodels: estimates, standard errors, forecasts, updates, scores,
sample paths, plots and forecast horizons."""

import jax
import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats

from probssm import LocalLevel, kalman
from probssm.datasets import load_nile


@pytest.fixture(scope="module")
def nile():
    return load_nile()


def _sm_fit(y, exact):
    """statsmodels' MLE with tight tolerances (its defaults stop about 1e-4 short in log-lik)."""
    mod = sm.tsa.UnobservedComponents(np.asarray(y), "llevel", use_exact_diffuse=exact)
    return mod.fit(disp=False, method="lbfgs", maxiter=2000, pgtol=1e-12, factr=1)


@pytest.fixture(scope="module")
def fitted(nile):
    return {
        "exact_diffuse": LocalLevel().fit(nile),
        "approximate_diffuse": LocalLevel(initialization="approximate_diffuse").fit(nile),
    }


@pytest.mark.parametrize("init", ["exact_diffuse", "approximate_diffuse"])
def test_local_level_mle_matches_statsmodels(nile, fitted, init):
    model = fitted[init]
    ref = _sm_fit(nile, exact=(init == "exact_diffuse"))
    np.testing.assert_allclose(model.params_.to_numpy(), ref.params, rtol=1e-3)
    assert abs(model.loglik_ - ref.llf) < 1e-6
    # statsmodels' default fit stops early; ours must be at least as good.
    default = sm.tsa.UnobservedComponents(
        np.asarray(nile), "llevel", use_exact_diffuse=(init == "exact_diffuse")
    ).fit(disp=False)
    assert model.loglik_ >= default.llf - 1e-9
    assert model.aic_ == pytest.approx(ref.aic, abs=1e-5)
    assert model.bic_ == pytest.approx(ref.bic, abs=1e-5)
    assert model.hqic_ == pytest.approx(ref.hqic, abs=1e-5)
    assert list(model.params_.index) == ["sigma2.irregular", "sigma2.level"]


def test_exact_diffuse_mle_is_the_published_one(fitted):
    """Durbin & Koopman (2012, section 2.10): sigma2_eps = 15099, sigma2_eta = 1469.1."""
    params = fitted["exact_diffuse"].params_
    assert params["sigma2.irregular"] == pytest.approx(15099, rel=1e-3)
    assert params["sigma2.level"] == pytest.approx(1469.1, rel=1e-3)


def test_standard_errors_from_observed_information(nile, fitted):
    """bse_ equals the inverse of a finite-difference Hessian of statsmodels' log-likelihood."""
    model = fitted["exact_diffuse"]
    mod = sm.tsa.UnobservedComponents(np.asarray(nile), "llevel", use_exact_diffuse=True)
    p = model.params_.to_numpy()
    h = 1e-3 * p
    hess = np.zeros((2, 2))
    for i in range(2):
        for j in range(2):
            def f(di, dj):
                q = p.copy()
                q[i] += di
                q[j] += dj
                return mod.loglike(q)
            hess[i, j] = (f(h[i], h[j]) - f(h[i], -h[j]) - f(-h[i], h[j]) + f(-h[i], -h[j])) / (4 * h[i] * h[j])
    np.testing.assert_allclose(model.bse_.to_numpy(), np.sqrt(np.diag(np.linalg.inv(-hess))), rtol=1e-4)


def test_forecasts_match_statsmodels(nile, fitted):
    model = fitted["exact_diffuse"]
    ref = sm.tsa.UnobservedComponents(np.asarray(nile), "llevel", use_exact_diffuse=True).smooth(
        model.params_.to_numpy()
    )
    fc = ref.get_forecast(10)
    pred = model.predict(10)
    np.testing.assert_allclose(pred.to_numpy(), fc.predicted_mean, rtol=1e-10)
    ci = fc.conf_int(alpha=0.2)
    band = model.predict_interval(10, coverage=0.8)
    np.testing.assert_allclose(band[("volume", 0.8, "lower")].to_numpy(), ci[:, 0], rtol=1e-9)
    np.testing.assert_allclose(band[("volume", 0.8, "upper")].to_numpy(), ci[:, 1], rtol=1e-9)
    q = model.predict_quantiles(10, alpha=[0.1, 0.5, 0.9])
    np.testing.assert_allclose(q[("volume", 0.5)].to_numpy(), fc.predicted_mean, rtol=1e-10)
    np.testing.assert_allclose(q[("volume", 0.1)].to_numpy(), ci[:, 0], rtol=1e-9)
    np.testing.assert_allclose(model.predict_var(10)["volume"].to_numpy(), fc.se_mean**2, rtol=1e-9)
    smoothed = model.smooth()
    np.testing.assert_allclose(smoothed.mean["level"].to_numpy(), ref.smoothed_state[0], rtol=1e-9)
    np.testing.assert_allclose(smoothed.std["level"].to_numpy() ** 2, ref.smoothed_state_cov[0, 0], rtol=1e-9)
    filtered = model.filter()
    np.testing.assert_allclose(filtered.mean["level"].to_numpy(), ref.filtered_state[0], rtol=1e-9)
    assert filtered.log_likelihood == pytest.approx(ref.llf, rel=1e-10)


def test_forecast_index_continues_training_index(nile):
    values = nile.to_numpy()
    cases = {
        "period": nile,
        "datetime": pd.Series(values, index=pd.date_range("1871-01-01", periods=100, freq="YS")),
        "range": pd.Series(values),
        "integer": pd.Series(values, index=pd.Index(np.arange(1871, 1971))),
    }
    expected = {
        "period": pd.PeriodIndex(["1971", "1972", "1973"], freq="Y"),
        "datetime": pd.DatetimeIndex(["1971-01-01", "1972-01-01", "1973-01-01"], freq="YS"),
        "range": pd.RangeIndex(100, 103),
        "integer": pd.Index([1971, 1972, 1973]),
    }
    first = None
    for name, y in cases.items():
        model = LocalLevel().fit(y)
        pred = model.predict(3)
        pd.testing.assert_index_equal(pred.index, expected[name], check_names=False)
        if name == "datetime":
            assert pred.index.freq == "YS"
        first = pred.to_numpy() if first is None else first
        np.testing.assert_allclose(pred.to_numpy(), first, rtol=1e-10)
    # fh as a list of steps and as future labels select the same rows
    model = LocalLevel().fit(nile)
    full = model.predict(5)
    by_steps = model.predict([2, 5])
    by_labels = model.predict(pd.PeriodIndex(["1972", "1975"], freq="Y"))
    np.testing.assert_array_equal(by_steps.to_numpy(), full.iloc[[1, 4]].to_numpy())
    np.testing.assert_array_equal(by_labels.to_numpy(), full.iloc[[1, 4]].to_numpy())
    pd.testing.assert_index_equal(by_labels.index, full.index[[1, 4]])


def test_update_equals_filtering_all_data(nile, fitted):
    model = LocalLevel().fit(nile.iloc[:80])
    params = model.params_.copy()
    model.update(nile.iloc[80:])
    pd.testing.assert_series_equal(model.params_, params)
    assert model.cutoff_ == nile.index[-1]
    with jax.enable_x64(True):
        lgssm = kalman.LGSSM(
            [[1.0]], [[params["sigma2.level"]]], [[1.0]], [[params["sigma2.irregular"]]],
            [0.0], [[0.0]], initial_diffuse_cov=[[1.0]],
        )
        fc = kalman.forecast(lgssm, kalman.filter(lgssm, nile.to_numpy()[:, None]), 3)
    np.testing.assert_allclose(model.predict(3).to_numpy(), fc.observation_mean[:, 0], rtol=1e-10)
    np.testing.assert_allclose(model.predict_var(3)["volume"], fc.observation_cov[:, 0, 0], rtol=1e-10)
    with pytest.raises(ValueError, match="continue the training data"):
        model.update(nile.iloc[:3])


def test_score_is_mean_log_predictive_density(nile):
    model = LocalLevel().fit(nile.iloc[:80])
    test = nile.iloc[80:]
    p = model.params_
    with jax.enable_x64(True):
        lgssm = kalman.LGSSM([[1.0]], [[p.iloc[1]]], [[1.0]], [[p.iloc[0]]], [0.0], [[0.0]],
                             initial_diffuse_cov=[[1.0]])
        terms = np.asarray(kalman.filter(lgssm, nile.to_numpy()[:, None]).log_likelihood_terms)
    assert model.score(test) == pytest.approx(float(np.mean(terms[80:])), rel=1e-10)
    # one step ahead, the score is the Gaussian log density of the first forecast
    one = model.score(test.iloc[:1])
    expected = stats.norm.logpdf(test.iloc[0], model.predict(1).iloc[0], np.sqrt(model.predict_var(1).iloc[0, 0]))
    assert one == pytest.approx(expected, rel=1e-10)


def test_sample_paths_have_forecast_moments(fitted):
    model = fitted["exact_diffuse"]
    draws = model.sample(4, n_samples=20000, random_state=0)
    assert draws.shape == (80000, 1)
    by_step = draws["volume"].unstack("time")
    mean, var = model.predict(4), model.predict_var(4)["volume"]
    se = np.sqrt(var.to_numpy() / 20000)
    assert np.all(np.abs(by_step.mean().to_numpy() - mean.to_numpy()) < 5 * se)
    np.testing.assert_allclose(by_step.var().to_numpy(), var.to_numpy(), rtol=0.05)
    again = model.sample(4, n_samples=3, random_state=np.random.default_rng(1))
    pd.testing.assert_frame_equal(again, model.sample(4, n_samples=3, random_state=np.random.default_rng(1)))


def test_plot_returns_axes(fitted):
    import matplotlib

    matplotlib.use("Agg")
    ax = fitted["exact_diffuse"].plot(fh=5)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "forecast" in labels and "observed" in labels


def test_integer_index_fh_is_labels_not_steps(nile):
    """A pandas Index as fh always holds future labels, also for a RangeIndex."""
    model = LocalLevel().fit(pd.Series(nile.to_numpy()))
    by_labels = model.predict(pd.Index([101, 104]))
    by_steps = model.predict([2, 5])
    np.testing.assert_array_equal(by_labels.to_numpy(), by_steps.to_numpy())
    assert list(by_labels.index) == [101, 104]
    with pytest.raises(ValueError, match="forecast steps must be >= 1"):
        model.predict(pd.Index([99]))
