"""KalmanFilter: the user's own matrices, estimated by MLE or EM, against statsmodels and the
functional core."""

import jax
import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from probssm import KalmanFilter, kalman


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


def test_forecast_prior_sets_round_off_negative_eigenvalues_to_zero():
    """The filter's last predicted covariance becomes the forecasts' prior; round-off can leave it
    slightly indefinite (nearly deterministic states at a large scale), which the model's own
    check would reject. Its negative eigenvalues go to zero; a PSD covariance stays as it is."""
    from probssm.kalman.forecaster import _psd_part
    from probssm.kalman.model import check_covariance

    rng = np.random.default_rng(3)
    basis = np.linalg.qr(rng.normal(size=(6, 6)))[0]
    values = np.array([4e5, 2e5, 3e3, 1.0, -1.3e-7, -2e-8])
    indefinite = (basis * values) @ basis.T
    with pytest.raises(ValueError, match="not positive semi-definite"):
        check_covariance(indefinite, "initial_cov")
    fixed = _psd_part(indefinite)
    check_covariance(fixed, "initial_cov")
    np.testing.assert_allclose(np.linalg.eigvalsh(fixed), np.sort(np.maximum(values, 0.0)), atol=1e-9)
    psd = (basis * np.abs(values)) @ basis.T
    np.testing.assert_array_equal(_psd_part(psd), 0.5 * (psd + psd.T))
