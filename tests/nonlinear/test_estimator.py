"""ExtendedKalmanFilter / UnscentedKalmanFilter against probssm.KalmanFilter on a linear model
(whose filter is exact and tested against statsmodels), and the estimator contract."""

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

import probssm
from probssm.ssm import AdditiveGaussianSSM

F = np.array([[0.9, 0.2], [0.0, 0.7]])
H = np.array([[1.0, 0.5]])
Q = np.array([[0.3, 0.05], [0.05, 0.2]])
P0 = np.eye(2)


def _linear(r=0.4, params=None):
    def f(x, t, p):
        return jnp.asarray(F) @ x * p["scale"]

    def h(x, t, p):
        return jnp.asarray(H) @ x

    return AdditiveGaussianSSM(f, h, Q, [[r]], np.zeros(2), P0,
                               params={"scale": 1.0} if params is None else params)


def _reference(r):
    return probssm.KalmanFilter(F, Q, H, [[r]], initial_cov=P0, estimate=("observation_cov",))


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    x, ys = np.zeros(2), []
    for _ in range(70):
        ys.append(H @ x + rng.normal(0, np.sqrt(0.4)))
        x = F @ x + rng.multivariate_normal(np.zeros(2), Q)
    ys = np.asarray(ys)[:, 0]
    ys[[5, 6, 30]] = np.nan
    return pd.Series(ys, index=pd.date_range("2020-01", periods=70, freq="MS"), name="y")


@pytest.fixture(scope="module")
def fitted(data):
    train = data.iloc[:60]
    ekf = probssm.ExtendedKalmanFilter(_linear(r=1.0), estimate=("R",)).fit(train)
    ref = _reference(1.0).fit(train)
    return ekf, ref


def test_mle_equals_kalman_filter_mle_on_a_linear_model(fitted):
    ekf, ref = fitted
    assert ekf.converged_
    np.testing.assert_allclose(ekf.params_["R[0,0]"], ref.params_.iloc[0], rtol=1e-5)
    np.testing.assert_allclose(ekf.log_likelihood_, ref.loglik_, rtol=1e-7)


def test_forecasts_and_states_equal_kalman_filter(fitted):
    ekf, ref = fitted
    pd.testing.assert_series_equal(ekf.predict(6), ref.predict(6), rtol=1e-5)
    pd.testing.assert_frame_equal(ekf.predict_interval(4, coverage=0.8),
                                  ref.predict_interval(4, coverage=0.8), rtol=1e-5)
    np.testing.assert_allclose(ekf.filter().mean.to_numpy(), ref.filter().mean.to_numpy(), atol=1e-5)
    np.testing.assert_allclose(ekf.smooth().std.to_numpy(), ref.smooth().std.to_numpy(), rtol=1e-5)
    assert ekf.predict(3).index.equals(ref.predict(3).index)


def test_unscented_rules_equal_extended_on_a_linear_model(data, fitted):
    ekf, _ = fitted
    fixed = _linear(r=float(ekf.params_["R[0,0]"]))
    for rule in ("unscented", "cubature", "gauss_hermite"):
        ukf = probssm.UnscentedKalmanFilter(fixed, rule=rule).fit(data.iloc[:60])
        np.testing.assert_allclose(ukf.log_likelihood_, ekf.log_likelihood_, rtol=1e-10)
        np.testing.assert_allclose(ukf.predict(5).to_numpy(), ekf.predict(5).to_numpy(), atol=1e-10)


def test_update_and_score_continue_the_filter(data, fitted):
    ekf, _ = fitted
    whole = probssm.ExtendedKalmanFilter(ekf.model_).fit(data)
    online = clone(ekf).set_params(model=ekf.model_, estimate=()).fit(data.iloc[:60])
    expected_score = (whole.log_likelihood_ - online.log_likelihood_) / data.iloc[60:].notna().sum()
    np.testing.assert_allclose(online.score(data.iloc[60:]), expected_score, rtol=1e-10)
    online.update(data.iloc[60:])
    np.testing.assert_allclose(online.log_likelihood_, whole.log_likelihood_, rtol=1e-12)
    np.testing.assert_allclose(online.filter().mean.to_numpy(), whole.filter().mean.to_numpy(), atol=1e-12)
    pd.testing.assert_series_equal(online.predict(3), whole.predict(3), rtol=1e-12)


def test_sample_paths_match_the_predictive_moments(fitted):
    ekf, _ = fitted
    draws = ekf.sample(3, n_samples=4000, random_state=np.random.default_rng(0))
    by_step = draws["y"].groupby(level="time")
    mean, var = ekf.predict(3), ekf.predict_var(3)["y"]
    # Monte-Carlo standard errors: sqrt(var / n) for the mean; the variance's relative error
    # is about sqrt(2 / n) = 2.2 %; both checked at 4.5 standard errors
    np.testing.assert_allclose(by_step.mean().to_numpy(), mean.to_numpy(),
                               atol=4.5 * float(np.sqrt(var.max() / 4000)))
    np.testing.assert_allclose(by_step.var().to_numpy(), var.to_numpy(), rtol=0.1)


def test_save_and_load_take_the_model_again(tmp_path, fitted):
    ekf, _ = fitted
    ekf.save(tmp_path / "ekf")
    with pytest.raises(ValueError, match="model=..."):
        probssm.load(tmp_path / "ekf")
    loaded = probssm.load(tmp_path / "ekf", model=_linear(r=1.0))
    pd.testing.assert_series_equal(loaded.predict(4), ekf.predict(4))
    pd.testing.assert_series_equal(loaded.params_, ekf.params_)


def test_bad_hyper_parameters_are_named(data):
    with pytest.raises(ValueError, match="unknown parameter 'sigma'"):
        probssm.ExtendedKalmanFilter(_linear(), estimate=("sigma",)).fit(data)
    with pytest.raises(ValueError, match="method must be 'mle'"):
        probssm.ExtendedKalmanFilter(_linear(), method="nuts").fit(data)
    with pytest.raises(TypeError, match="StateSpaceModel"):
        probssm.ExtendedKalmanFilter(None).fit(data)
    with pytest.raises(ValueError, match="rule must be"):
        probssm.UnscentedKalmanFilter(_linear(), rule="sigma").fit(data)
    with pytest.raises(ValueError, match="2 variables but the model's emission has dimension 1"):
        probssm.ExtendedKalmanFilter(_linear()).fit(pd.DataFrame({"a": data, "b": data}))
