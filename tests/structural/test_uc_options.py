"""UnobservedComponents options statsmodels users reach for: regression coefficients as states
(``mle_regression=False``), the approximate diffuse prior's variance and the log-likelihood
burn, against statsmodels' UnobservedComponents at the same settings on the Nile flow with the
1899 Aswan dam as the regressor."""

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from probssm.datasets import load_nile
from probssm.structural import Regression, UnobservedComponents


@pytest.fixture(scope="module")
def nile():
    return load_nile()


@pytest.fixture(scope="module")
def dam(nile):
    return pd.DataFrame({"dam": (nile.index.year >= 1899).astype(float)}, index=nile.index)


def _reference(nile, dam, **kwargs):
    model = sm.tsa.UnobservedComponents(nile, "local level", exog=dam, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsmodels' optimiser warnings
        res = model.fit(disp=0)
    model.ssm.tolerance = 0  # statsmodels' filter without its steady-state shortcut
    return model, res


def test_regression_as_states_matches_statsmodels(nile, dam):
    est = UnobservedComponents("local level", mle_regression=False, initialization="approximate_diffuse")
    est.fit(nile, X=dam)
    model, ref = _reference(nile, dam, mle_regression=False)
    assert list(est.params_.index) == model.param_names == ["sigma2.irregular", "sigma2.level"]
    # the log-likelihood at statsmodels' estimates, and the maximum at least statsmodels'
    at_ref = UnobservedComponents("local level", mle_regression=False, initialization="approximate_diffuse")
    at_ref.fit(nile, X=dam, params=ref.params)
    exact = model.smooth(ref.params.to_numpy())
    assert abs(at_ref.loglik_ - exact.llf) < 1e-8 * abs(exact.llf)
    assert est.loglik_ >= exact.llf - 1e-6
    assert abs(est.params_["sigma2.irregular"] - ref.params["sigma2.irregular"]) / ref.params["sigma2.irregular"] < 1e-3
    assert est.params_["sigma2.level"] < 1e-2  # statsmodels: 3.8e-3, a level that does not move
    # the dam's effect is a smoothed state: about -247 (statsmodels' number at the same parameters)
    at = model.smooth(est.params_.to_numpy())
    smoothed = est.smooth().mean
    assert list(smoothed.columns) == ["level", "beta.dam"] == model.state_names
    np.testing.assert_allclose(smoothed.to_numpy(), at.smoothed_state.T, rtol=1e-7)
    assert abs(smoothed["beta.dam"].iloc[-1] - -246.93) < 0.05
    fc = at.get_forecast(3, exog=np.ones((3, 1))).summary_frame(alpha=0.1)
    X_future = pd.DataFrame({"dam": np.ones(3)}, index=pd.period_range("1971", periods=3, freq="Y"))
    np.testing.assert_allclose(est.predict(3, X=X_future).to_numpy(), fc["mean"], rtol=1e-8)


def test_regression_as_states_exact_diffuse(nile, dam):
    params = [16300.0, 1e-4]
    model = sm.tsa.UnobservedComponents(nile, "local level", exog=dam, mle_regression=False, use_exact_diffuse=True)
    model.ssm.tolerance = 0
    ref = model.smooth(params)
    est = UnobservedComponents("local level", mle_regression=False).fit(nile, X=dam, params=params)
    assert abs(est.loglik_ - ref.llf) < 1e-8 * abs(ref.llf)
    np.testing.assert_allclose(est.smooth().mean["beta.dam"].to_numpy(), ref.smoothed_state[1], rtol=1e-8)
    assert est.components_[1] == Regression(in_state=True)


def test_initial_variance_and_burn_match_statsmodels(nile, dam):
    kw = {"initial_variance": 1e4, "loglikelihood_burn": 2}
    est = UnobservedComponents("local level", initialization="approximate_diffuse", **kw).fit(nile)
    model = sm.tsa.UnobservedComponents(nile, "local level", **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = model.fit(disp=0)
    model.ssm.tolerance = 0
    exact = model.smooth(ref.params.to_numpy())
    assert est.loglik_ >= exact.llf - 1e-6
    np.testing.assert_allclose(est.params_.to_numpy(), ref.params, rtol=2e-3)
    at = model.smooth(est.params_.to_numpy())
    assert abs(est.loglik_ - at.llf) < 1e-8 * abs(at.llf)
    assert abs(est.aic_ - at.aic) < 1e-6 and abs(est.bic_ - at.bic) < 1e-6


def test_bad_uc_options(nile):
    with pytest.raises(ValueError, match="initial_variance must be positive"):
        UnobservedComponents(initial_variance=-1.0).fit(nile)
    with pytest.raises(ValueError, match="loglikelihood_burn must be non-negative"):
        UnobservedComponents(loglikelihood_burn=-2).fit(nile)
