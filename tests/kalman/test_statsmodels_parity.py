"""The functional core against statsmodels on the Nile local level model (Durbin & Koopman 2012)."""

import jax
import numpy as np
import pytest
import statsmodels.api as sm

from probssm import kalman
from probssm.datasets import load_nile

SIGMA2_EPS, SIGMA2_ETA = 15099.0, 1469.1


def _nile(missing: bool) -> np.ndarray:
    y = load_nile().to_numpy().copy()
    if missing:  # observations 21-40 and 61-80 (1-based), as in Durbin & Koopman's example
        y[20:40] = np.nan
        y[60:80] = np.nan
    return y


def _model():
    return kalman.LGSSM(
        [[1.0]], [[SIGMA2_ETA]], [[1.0]], [[SIGMA2_EPS]], [0.0], [[0.0]],
        initial_diffuse_cov=[[1.0]],
    )


def _rel(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300))


@pytest.mark.parametrize("missing", [False, True], ids=["complete", "missing"])
@pytest.mark.parametrize("init", ["approximate", "exact"])
def test_local_level_matches_statsmodels(missing, init):
    y = _nile(missing)
    ref_model = sm.tsa.UnobservedComponents(y, "llevel", use_exact_diffuse=(init == "exact"))
    ref = ref_model.smooth([SIGMA2_EPS, SIGMA2_ETA])
    with jax.enable_x64(True):
        model = _model()
        burn = 0
        if init == "approximate":
            burn = kalman.diffuse_rank(model)
            model = kalman.approximate_diffuse(model)
        filt = kalman.filter(model, y[:, None], burn=burn)
        smoothed = kalman.smooth(model, y[:, None])
    assert _rel(filt.log_likelihood, ref.llf) < 1e-8
    assert _rel(filt.mean[:, 0], ref.filtered_state[0]) < 1e-8
    assert _rel(filt.cov[:, 0, 0], ref.filtered_state_cov[0, 0]) < 1e-8
    assert _rel(filt.predicted_mean[:, 0], ref.predicted_state[0, :-1]) < 1e-8
    assert _rel(smoothed.mean[:, 0], ref.smoothed_state[0]) < 1e-8
    assert _rel(smoothed.cov[:, 0, 0], ref.smoothed_state_cov[0, 0]) < 1e-8
    assert _rel(filt.next_mean, ref.predicted_state[:, -1]) < 1e-8


def test_published_log_likelihoods():
    """The values pinned in the issue: -632.53770 (approximate diffuse, burn 1), -633.46456 (exact)."""
    y = _nile(False)[:, None]
    with jax.enable_x64(True):
        model = _model()
        exact = float(kalman.log_likelihood(model, y))
        approx = float(kalman.log_likelihood(kalman.approximate_diffuse(model), y, burn=1))
    assert exact == pytest.approx(-633.46456, abs=5e-6)
    assert approx == pytest.approx(-632.53770, abs=5e-6)


def test_local_linear_trend_exact_diffuse_matches_statsmodels():
    """A two-state diffuse model: the diffuse period spans two observations."""
    rng = np.random.default_rng(3)
    y = np.cumsum(np.cumsum(rng.normal(size=60))) + rng.normal(size=60)
    y[[5, 17, 18]] = np.nan
    params = [1.3, 0.4, 0.2]  # irregular, level, trend variances
    ref = sm.tsa.UnobservedComponents(y, "lltrend", use_exact_diffuse=True).smooth(params)
    with jax.enable_x64(True):
        model = kalman.LGSSM(
            [[1.0, 1.0], [0.0, 1.0]], np.diag(params[1:]), [[1.0, 0.0]], [[params[0]]],
            np.zeros(2), np.zeros((2, 2)), initial_diffuse_cov=np.eye(2),
        )
        smoothed = kalman.smooth(model, y[:, None])
    assert _rel(smoothed.log_likelihood, ref.llf) < 1e-8
    assert _rel(smoothed.filtered.mean.T, ref.filtered_state) < 1e-7
    assert _rel(smoothed.mean.T, ref.smoothed_state) < 1e-7
    assert _rel(np.moveaxis(np.asarray(smoothed.cov), 0, -1), ref.smoothed_state_cov) < 1e-7


def test_forecast_matches_statsmodels():
    y = _nile(False)
    ref = sm.tsa.UnobservedComponents(y, "llevel", use_exact_diffuse=True).smooth([SIGMA2_EPS, SIGMA2_ETA])
    fc_ref = ref.get_forecast(5)
    with jax.enable_x64(True):
        res = kalman.filter(_model(), y[:, None])
        fc = kalman.forecast(_model(), res, 5)
    assert _rel(fc.observation_mean[:, 0], fc_ref.predicted_mean) < 1e-10
    assert _rel(np.sqrt(fc.observation_cov[:, 0, 0]), fc_ref.se_mean) < 1e-10
