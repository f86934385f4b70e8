"""Estimator contract: fitting against statsmodels, forecasting, updating, persistence, cloning."""

import jax
import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats
from sklearn.base import clone

import probssm
from probssm import KalmanFilter, LocalLevel, kalman
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


def test_clone_and_params_round_trip():
    estimators = [
        LocalLevel(initialization="approximate_diffuse"),
        KalmanFilter(np.eye(2), np.eye(2), [[1.0, 0.0]], [[1.0]], estimate=("transition_cov",), method="em"),
    ]
    for est in estimators:
        twin = clone(est)
        assert type(twin) is type(est)
        for k, v in est.get_params().items():
            assert np.array_equal(np.asarray(twin.get_params()[k]), np.asarray(v))
        twin.set_params(max_iter=3) if isinstance(est, KalmanFilter) else twin.set_params(initialization="exact_diffuse")
        with pytest.raises(ValueError, match="invalid parameter"):
            twin.set_params(nonsense=1)
    assert "approximate_diffuse" in repr(estimators[0])


def test_save_load_is_bit_exact(tmp_path, nile):
    model = LocalLevel().fit(nile.iloc[:90])
    model.update(nile.iloc[90:])
    path = model.save(tmp_path / "ll")
    assert sorted(p.name for p in path.iterdir()) == ["arrays.npz", "estimator.json"]
    loaded = probssm.load(path)
    assert type(loaded) is LocalLevel
    pd.testing.assert_series_equal(loaded.params_, model.params_, check_exact=True)
    pd.testing.assert_series_equal(loaded.predict(7), model.predict(7), check_exact=True)
    pd.testing.assert_frame_equal(loaded.predict_interval(7), model.predict_interval(7), check_exact=True)
    pd.testing.assert_frame_equal(loaded.smooth().mean, model.smooth().mean, check_exact=True)
    assert loaded.loglik_ == model.loglik_ and loaded.cutoff_ == model.cutoff_

    kf = KalmanFilter([[0.8]], [[1.0]], [[1.0]], [[0.5]], initial_cov=[[2.0]],
                      estimate=("transition_matrix",)).fit(np.sin(np.arange(50.0)))
    again = probssm.load(kf.save(tmp_path / "kf"))
    pd.testing.assert_series_equal(again.predict(4), kf.predict(4), check_exact=True)


def test_kalman_filter_mle_matches_statsmodels_ar1_plus_noise():
    """AR(1) plus noise: probssm's MLE of (phi, sigma2_state, sigma2_obs) vs statsmodels'."""
    rng = np.random.default_rng(0)
    x = np.zeros(300)
    for t in range(1, 300):
        x[t] = 0.7 * x[t - 1] + rng.normal()
    y = x + 0.7 * rng.normal(size=300)
    kf = KalmanFilter([[0.5]], [[0.5]], [[1.0]], [[0.5]], initial_cov=[[1.0 / (1 - 0.25) * 0.5]],
                      estimate=("transition_matrix", "transition_cov", "observation_cov"))
    kf.fit(y)

    class AR1Noise(sm.tsa.statespace.MLEModel):
        def __init__(self, endog):
            super().__init__(endog, k_states=1)
            self["design", 0, 0] = 1.0
            self["selection", 0, 0] = 1.0
            self.initialize_known(np.zeros(1), np.array([[1.0 / (1 - 0.25) * 0.5]]))

        @property
        def start_params(self):
            return np.array([0.5, 0.5, 0.5])

        def update(self, params, **kwargs):
            params = super().update(params, **kwargs)
            self["transition", 0, 0] = params[0]
            self["state_cov", 0, 0] = params[1]
            self["obs_cov", 0, 0] = params[2]

    ref = AR1Noise(y).fit(disp=False, method="nm", maxiter=5000, xtol=1e-10, ftol=1e-12)
    ref = AR1Noise(y).fit(ref.params, disp=False, method="bfgs", gtol=1e-10)
    assert kf.loglik_ >= ref.llf - 1e-6
    np.testing.assert_allclose(kf.params_.to_numpy(), ref.params, rtol=1e-3)


def test_kalman_filter_em_increases_likelihood_and_reaches_mle():
    rng = np.random.default_rng(1)
    F = np.array([[0.9, 0.2], [0.0, 0.7]])
    x = np.zeros(2)
    ys = []
    for _ in range(400):
        x = F @ x + rng.normal(size=2) * [0.5, 0.3]
        ys.append(x @ [1.0, 1.0] + 0.4 * rng.normal())
    y = np.array(ys)
    y[[10, 50, 51]] = np.nan
    common = dict(initial_cov=np.eye(2), estimate=("transition_cov", "observation_cov"))
    em = KalmanFilter(F, np.eye(2) * 0.2, [[1.0, 1.0]], [[1.0]], method="em", max_iter=3000,
                      tol=1e-12, **common).fit(y)
    history = em.em_log_likelihoods_
    assert np.all(np.diff(history) > -1e-8 * np.abs(history[1:]))  # EM never decreases log L
    mle = KalmanFilter(F, np.eye(2) * 0.2, [[1.0, 1.0]], [[1.0]], method="mle", **common).fit(y)
    assert em.loglik_ == pytest.approx(mle.loglik_, abs=2e-3)
    assert em.loglik_ <= mle.loglik_ + 1e-6


def test_kalman_filter_without_estimation_filters_given_matrices():
    y = np.array([1.0, 2.0, np.nan, 1.5, 0.5])
    kf = KalmanFilter([[1.0]], [[0.3]], [[1.0]], [[0.8]], initial_cov=[[2.0]]).fit(y)
    with jax.enable_x64(True):
        ref = kalman.filter(kalman.LGSSM([[1.0]], [[0.3]], [[1.0]], [[0.8]], [0.0], [[2.0]]), y[:, None])
    assert kf.loglik_ == pytest.approx(float(ref.log_likelihood), rel=1e-12)
    np.testing.assert_allclose(kf.filter().mean["state_0"], ref.mean[:, 0], rtol=1e-12)
    assert kf.params_.empty


def test_multivariate_kalman_filter_returns_frames():
    rng = np.random.default_rng(2)
    y = pd.DataFrame(rng.normal(size=(40, 2)).cumsum(axis=0), columns=["a", "b"],
                     index=pd.date_range("2020-01-01", periods=40, freq="D"))
    kf = KalmanFilter(np.eye(2), np.eye(2) * 0.5, np.eye(2), np.eye(2) * 0.3).fit(y)
    pred = kf.predict(3)
    assert list(pred.columns) == ["a", "b"] and pred.index[0] == pd.Timestamp("2020-02-10")
    band = kf.predict_interval(2, coverage=[0.5, 0.9])
    assert band.columns.tolist()[:2] == [("a", 0.5, "lower"), ("a", 0.5, "upper")]
    assert np.all(band[("a", 0.9, "lower")] < band[("a", 0.5, "lower")])


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
