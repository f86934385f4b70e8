"""The SARIMAX estimator: the Stata airline reference, statsmodels parity, exogenous forecasts."""

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from probssm.datasets import load_airpassengers
from probssm.structural import SARIMAX


@pytest.fixture(scope="module")
def log_air():
    return np.log(load_airpassengers())


def _rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def test_airline_model_reproduces_stata(log_air):
    """statsmodels pins Stata's airline estimates (results_sarimax.air2_stationary): theta
    -0.4018324, Theta -0.5569342, sigma 0.0367167, llf 244.69651 on the differenced series."""
    est = SARIMAX((0, 1, 1), (0, 1, 1, 12), simple_differencing=True).fit(log_air)
    assert abs(est.params_["ma.L1"] - -0.4018324) < 1e-4
    assert abs(est.params_["ma.S.L12"] - -0.5569342) < 1e-4
    assert abs(np.sqrt(est.params_["sigma2"]) - 0.0367167) < 1e-4
    assert abs(est.loglik_ - 244.69651) < 1e-4
    assert est.converged_
    # the levels model at the same parameters forecasts like statsmodels' state-differenced one
    ref = sm.tsa.SARIMAX(log_air.to_numpy(), order=(0, 1, 1), seasonal_order=(0, 1, 1, 12))
    ref.ssm.tolerance = 0
    fc = ref.smooth(est.params_.to_numpy()).get_forecast(12).summary_frame(alpha=0.1)
    assert _rel(est.predict(12).to_numpy(), fc["mean"]) < 1e-6
    assert est.predict(12).index[0] == pd.Period("1961-01", freq="M")


@pytest.mark.parametrize("init", ["approximate_diffuse", "exact_diffuse"])
def test_identical_parameters_with_exog_match_statsmodels(log_air, init):
    rng = np.random.default_rng(3)
    X = pd.DataFrame(rng.normal(size=(len(log_air) + 8, 2)), columns=["a", "b"],
                     index=pd.period_range(log_air.index[0], periods=len(log_air) + 8, freq="M"))
    y = log_air + 0.03 * X["a"].iloc[:len(log_air)] - 0.01 * X["b"].iloc[:len(log_air)]
    y.iloc[[5, 40]] = np.nan
    params = [0.002, 0.03, -0.01, 0.4, -0.3, -0.5, 0.0015]
    ref_model = sm.tsa.SARIMAX(y, exog=X.iloc[:len(y)], order=(1, 1, 1), seasonal_order=(0, 1, 1, 12),
                               trend="t", use_exact_diffuse=init == "exact_diffuse")
    ref_model.ssm.tolerance = 0
    ref = ref_model.smooth(params)
    est = SARIMAX((1, 1, 1), (0, 1, 1, 12), trend="t", initialization=init).fit(y, X=X, params=params)
    assert list(est.params_.index) == ref_model.param_names
    assert _rel(est.loglik_, ref.llf) < 1e-8
    assert _rel(est.filter().mean.to_numpy()[20:], ref.filtered_state.T[20:]) < 1e-6
    fc = ref.get_forecast(8, exog=X.iloc[len(y):]).summary_frame(alpha=0.1)
    assert _rel(est.predict(8, X=X).to_numpy(), fc["mean"]) < 1e-6
    band = est.predict_interval(8, X=X.iloc[len(y):], coverage=0.9)
    assert _rel(band.iloc[:, 0], fc["mean_ci_lower"]) < 1e-6
    assert _rel(band.iloc[:, 1], fc["mean_ci_upper"]) < 1e-6


def test_mle_at_least_statsmodels(log_air):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref_model = sm.tsa.SARIMAX(log_air.to_numpy(), order=(2, 1, 1), seasonal_order=(0, 1, 1, 12))
        ref_model.ssm.tolerance = 0
        ref = ref_model.fit(disp=0)
    est = SARIMAX((2, 1, 1), (0, 1, 1, 12), initialization="approximate_diffuse").fit(log_air)
    assert est.loglik_ >= ref.llf - 1e-6


def test_bad_orders_and_exog(log_air):
    with pytest.raises((TypeError, ValueError), match="order"):
        SARIMAX((1.5, 0, 0)).fit(log_air)
    with pytest.raises(ValueError, match="order"):
        SARIMAX((-1, 0, 0)).fit(log_air)
    with pytest.raises(ValueError, match="period|seasonal"):
        SARIMAX((0, 1, 1), (0, 1, 1, 1)).fit(log_air)
    with pytest.raises(ValueError, match="constant"):
        SARIMAX((1, 0, 0)).fit(pd.Series(np.ones(50)))
    X = pd.DataFrame({"x": np.arange(len(log_air), dtype=float)}, index=log_air.index)
    est = SARIMAX((1, 0, 0), trend="c").fit(log_air, X=X, params=[1.0, 0.01, 0.5, 0.01])
    with pytest.raises(ValueError, match="X is required"):
        est.predict(3)
    with pytest.raises(ValueError, match="no row for time"):
        est.predict(3, X=X)
