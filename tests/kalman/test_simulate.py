"""simulate() and impulse_responses() against statsmodels' simulate(..., measurement_shocks,
state_shocks, initial_state, anchor) and impulse_responses(steps, impulse, orthogonalized,
cumulative), at statsmodels' parameters (``fit(y, params=...)``).

With the same shocks and initial state a simulated path is a deterministic recursion, so paths
agree to rounding (1e-10 relative); so do impulse responses."""

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from probssm import SARIMAX, KalmanFilter, LocalLevel, UnobservedComponents
from probssm.structural import Cycle, Seasonal


def _mle(mod):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mod.smooth(mod.fit(disp=False).params)


@pytest.fixture(scope="module")
def cases(nile, log_air):
    """``name -> (probssm estimator, statsmodels results)`` at the same parameters."""
    out = {}
    ref = _mle(sm.tsa.SARIMAX(log_air.to_numpy(), order=(2, 1, 1), seasonal_order=(0, 1, 1, 12)))
    out["sarimax"] = (SARIMAX((2, 1, 1), (0, 1, 1, 12)).fit(log_air, params=ref.params), ref)
    ref = _mle(sm.tsa.SARIMAX(nile.to_numpy(), order=(1, 0, 0), trend="ct"))
    out["sarimax trend"] = (SARIMAX((1, 0, 0), trend="ct").fit(nile, params=ref.params), ref)
    # a damped stochastic cycle of about 40 months beside the trend (statsmodels' own MLE puts
    # the cycle at a 4-month period, outside the default period bounds)
    mod = sm.tsa.UnobservedComponents(log_air.to_numpy(), "lltrend", cycle=True, stochastic_cycle=True,
                                      damped_cycle=True)
    params = dict(zip(mod.param_names, [1e-4, 1e-3, 1e-5, 1e-3, 2 * np.pi / 40, 0.9]))
    uc = UnobservedComponents(["local linear trend", Cycle()], initialization="approximate_diffuse")
    out["unobserved components"] = (uc.fit(log_air, params=params), mod.smooth(list(params.values())))
    return out


NAMES = ["sarimax", "sarimax trend", "unobserved components"]


def _close(a, b):
    b = np.asarray(b, float)
    np.testing.assert_allclose(np.asarray(a, float).reshape(b.shape), b, rtol=0, atol=1e-10 * max(np.max(np.abs(b)), 1))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("anchor", ["end", 60])
def test_paths_with_given_shocks_equal_statsmodels(cases, name, anchor):
    est, ref = cases[name]
    rng = np.random.default_rng(3)
    n = 24
    eps = 0.1 * rng.standard_normal((n, 1)) * np.sqrt(max(ref.filter_results.obs_cov[0, 0, 0], 1e-4))
    eta = rng.standard_normal((n, ref.model.ssm.k_posdef)) * np.sqrt(np.diag(ref.filter_results.state_cov[:, :, 0]))
    at = ref.nobs if anchor == "end" else anchor
    x0 = ref.predicted_state[:, at] + 0.01
    ours = est.simulate(n, initial_state=x0, anchor=anchor, measurement_shocks=eps, state_shocks=eta)
    theirs = ref.simulate(n, measurement_shocks=eps, state_shocks=eta, initial_state=x0, anchor=anchor)
    _close(ours.to_numpy()[:, 0], theirs)
    labels = ours.index.get_level_values("time")
    assert labels[0] == (est.predict(1).index[0] if anchor == "end" else est._y.index[60])


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("orthogonalized", [False, True])
@pytest.mark.parametrize("cumulative", [False, True])
def test_impulse_responses_equal_statsmodels(cases, name, orthogonalized, cumulative):
    est, ref = cases[name]
    for impulse in range(ref.model.ssm.k_posdef):
        ours = est.impulse_responses(20, impulse=impulse, orthogonalized=orthogonalized, cumulative=cumulative)
        theirs = ref.impulse_responses(20, impulse=impulse, orthogonalized=orthogonalized, cumulative=cumulative)
        assert isinstance(ours, pd.Series) and list(ours.index) == list(range(21))
        _close(ours.to_numpy(), theirs)


def test_impulse_vector_is_a_combination(cases):
    est, ref = cases["unobserved components"]
    vector = np.arange(1.0, ref.model.ssm.k_posdef + 1)
    _close(est.impulse_responses(8, impulse=vector).to_numpy(), ref.impulse_responses(8, impulse=vector))


def test_random_paths_follow_the_forecast(nile):
    est = LocalLevel().fit(nile, params={"sigma2.irregular": 15099.0, "sigma2.level": 1469.1})
    paths = est.simulate(5, n_samples=4000, random_state=0)
    assert paths.shape == (20000, 1)
    pd.testing.assert_frame_equal(paths, est.simulate(5, n_samples=4000, random_state=0))
    by_step = paths.groupby(level="time")[paths.columns[0]]
    se = np.sqrt(est.predict_var(5).to_numpy()[:, 0] / 4000)
    assert np.all(np.abs(by_step.mean().to_numpy() - est.predict(5).to_numpy()) < 4 * se)
    np.testing.assert_allclose(by_step.var().to_numpy(), est.predict_var(5).to_numpy()[:, 0], rtol=0.1)
    # a given state shared by every path: the first observations differ by the noise only
    start = est.simulate(1, initial_state=[1000.0], n_samples=4000, random_state=1).to_numpy()[:, 0]
    assert abs(start.mean() - 1000.0) < 4 * np.sqrt(15099.0 / 4000)
    # from a state inside the sample, drawn from the filter's prediction there
    inside = est.simulate(3, anchor=10, random_state=0)
    assert list(inside.index.get_level_values("time")) == list(nile.index[10:13])


def test_kalman_filter_shocks_load_every_state(nile):
    """A user's dense Q: one shock per state (statsmodels' MLEModel with selection = I)."""
    F = np.array([[1.0, 1.0], [0.0, 1.0]])
    Q = np.array([[2.0, 0.5], [0.5, 1.0]])
    kf = KalmanFilter(F, Q, [[1.0, 0.0]], [[3.0]], initial_cov=np.eye(2)).fit(nile)
    for impulse in (0, 1):
        e = np.eye(2)[impulse]
        expected = [(np.linalg.matrix_power(F, k) @ e)[0] for k in range(6)]
        np.testing.assert_allclose(kf.impulse_responses(5, impulse=impulse).to_numpy(), expected, rtol=1e-12)
    L = np.linalg.cholesky(Q)
    np.testing.assert_allclose(kf.impulse_responses(5, orthogonalized=True).to_numpy(),
                               [(np.linalg.matrix_power(F, k) @ L[:, 0])[0] for k in range(6)], rtol=1e-12)


def test_bad_simulation_arguments_raise(cases, nile):
    est, _ = cases["sarimax"]
    with pytest.raises(ValueError, match="state_shocks"):
        est.simulate(5, state_shocks=np.zeros((5, 2)))
    with pytest.raises(ValueError, match="initial_state"):
        est.simulate(5, initial_state=np.zeros(3))
    with pytest.raises(ValueError, match="still diffuse"):
        est.simulate(5, anchor="start")
    with pytest.raises(ValueError, match="n_steps"):
        est.simulate(0)
    with pytest.raises(ValueError, match="impulse"):
        est.impulse_responses(5, impulse=1)
    shocks = np.zeros((5, 1))
    est.simulate(5, measurement_shocks=shocks)
    assert not shocks.any()


def test_regressors_past_the_data_come_from_X(log_air):
    """SARIMAX with a constant and a regressor: the path after the data uses the future X."""
    x = pd.DataFrame({"wave": np.sin(np.arange(144) / 5.0)}, index=log_air.index)
    future = pd.DataFrame({"wave": np.sin(np.arange(144, 156) / 5.0)},
                          index=pd.period_range("1961-01", periods=12, freq="M"))
    mod = sm.tsa.SARIMAX(log_air.to_numpy(), exog=x.to_numpy(), order=(1, 1, 1), trend="c")
    ref = _mle(mod)
    est = SARIMAX((1, 1, 1), trend="c").fit(log_air, X=x, params=ref.params)
    eta = 0.01 * np.random.default_rng(0).standard_normal((12, 1))
    x0 = ref.predicted_state[:, -1]
    ours = est.simulate(12, initial_state=x0, X=future, measurement_shocks=np.zeros((12, 1)), state_shocks=eta)
    theirs = ref.simulate(12, initial_state=x0, exog=future.to_numpy(), measurement_shocks=np.zeros((12, 1)),
                          state_shocks=eta, anchor="end")
    _close(ours.to_numpy()[:, 0], theirs)
    with pytest.raises(ValueError, match="X is required"):
        est.simulate(12)
    with pytest.raises(ValueError, match="only for steps past the data"):
        est.simulate(5, anchor=10, X=future)


def test_seasonal_shocks_in_statsmodels_order(log_air):
    """Level, slope and seasonal shocks of a trend plus a dummy seasonal, impulses 0, 1, 2."""
    mod = sm.tsa.UnobservedComponents(log_air.to_numpy(), "lltrend", seasonal=12)
    params = [1e-4, 1e-3, 1e-5, 1e-4]
    ref = mod.smooth(params)
    est = UnobservedComponents(["local linear trend", Seasonal(12)], initialization="approximate_diffuse")
    est.fit(log_air, params=params)
    for impulse in range(3):
        for orthogonalized in (False, True):
            _close(est.impulse_responses(15, impulse=impulse, orthogonalized=orthogonalized).to_numpy(),
                   ref.impulse_responses(15, impulse=impulse, orthogonalized=orthogonalized))


def test_time_varying_regression_responses_use_the_training_matrices(nile):
    """H_t holds x_t: statsmodels gives the responses at steps 1..steps with those matrices."""
    x = pd.DataFrame({"wave": np.sin(np.arange(100) / 5.0)}, index=nile.index)
    mod = sm.tsa.SARIMAX(nile.to_numpy(), exog=x.to_numpy(), order=(1, 0, 0), mle_regression=False,
                         time_varying_regression=True, use_exact_diffuse=True)
    ref = _mle(mod)
    est = SARIMAX((1, 0, 0), mle_regression=False, time_varying_regression=True).fit(nile, X=x, params=ref.params)
    for impulse in range(2):
        ours = est.impulse_responses(6, impulse=impulse, orthogonalized=True)
        assert list(ours.index) == list(range(1, 7))
        _close(ours.to_numpy(), ref.impulse_responses(6, impulse=impulse, orthogonalized=True))
    with pytest.raises(ValueError, match="below the 100 training steps"):
        est.impulse_responses(100)
