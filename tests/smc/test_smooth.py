"""Particle smoothers against the exact RTS smoother on a linear-Gaussian model.

Each smoother runs R = 8 times with independent keys (one vmapped program); the average smoothed
mean is compared with the RTS mean in units of its Monte Carlo standard error (sd of the runs /
sqrt(R)): every |z| below the t(7) quantile at family-wise false-alarm rate 1e-3 (Bonferroni
over the T n entries), and the mean of z^2 (expected 7/5 for t(7)) below 3."""

import jax
import numpy as np
import pytest
from scipy import stats

from probssm import kalman, smc
from probssm.smc import models as smc_models

from .models import linear_data, linear_model, reference

RUNS = 8
T = 30


@pytest.fixture(scope="module")
def problem():
    y = linear_data(T=T, seed=2, missing=(4,))
    return y, kalman.smooth(reference(), y)


@pytest.fixture(scope="module", params=["genealogy", "ffbs", "rejection"])
def runs(request, problem):
    y, _ = problem
    method = request.param
    run = jax.jit(jax.vmap(lambda k: smc.smooth(linear_model(), y, k, 500, method=method, n_paths=200)))
    return method, run(jax.random.split(jax.random.PRNGKey(3), RUNS))


def test_smoothed_means_within_mc_error_of_rts(runs, problem):
    method, out = runs
    _, exact = problem
    means = np.asarray(out.mean)                                   # (RUNS, T, n)
    assert means.shape == (RUNS, T, 2)
    se = means.std(axis=0, ddof=1) / np.sqrt(RUNS)
    z = (means.mean(axis=0) - np.asarray(exact.mean)) / se
    bound = stats.t.ppf(1 - 1e-3 / (2 * z.size), RUNS - 1)
    assert np.max(np.abs(z)) < bound, (method, np.max(np.abs(z)), bound)
    assert np.mean(z**2) < 3.0, (method, np.mean(z**2))
    # and the smoothed spread: within 25 % of the RTS variances on average over time
    var = np.diagonal(np.asarray(out.cov).mean(0), axis1=-2, axis2=-1)
    exact_var = np.diagonal(np.asarray(exact.cov), axis1=-2, axis2=-1)
    ratio = (var / exact_var)[T // 3:]      # genealogy collapses early times: checked where it has spread
    assert 0.75 < ratio.mean() < 1.25, (method, ratio.mean())


def test_paths_and_weights(runs):
    method, out = runs
    M = 500 if method == "genealogy" else 200
    assert out.paths.shape == (RUNS, M, T, 2) and out.log_weights.shape == (RUNS, M)
    np.testing.assert_allclose(np.exp(np.asarray(out.log_weights)).sum(-1), 1.0, rtol=1e-12)
    # the smoothed mean at the last step is the filtering mean there (same particle system)
    np.testing.assert_allclose(out.mean[:, -1], out.filter.mean[:, -1], atol=0.25)


def test_genealogy_degenerates_backwards(problem):
    y, _ = problem
    res = smc.smooth(linear_model(), y, jax.random.PRNGKey(0), 200, method="genealogy", ess_threshold=1.0)
    distinct = [len(np.unique(np.asarray(res.paths)[:, t, 0])) for t in (0, T - 1)]
    assert distinct[0] < distinct[1] / 4   # path degeneracy: few distinct ancestors at t = 0


def test_rejection_needs_a_bound_for_general_models():
    model = smc_models.stochastic_volatility()
    y = np.ones((5, 1))
    with pytest.raises(ValueError, match="transition_log_bound"):
        smc.smooth(model, y, jax.random.PRNGKey(0), 10, method="rejection")
    with pytest.raises(ValueError, match="method must be one of"):
        smc.smooth(model, y, jax.random.PRNGKey(0), 10, method="forward")
    # with the bound of the Gaussian transition density it runs, and agrees with FFBS
    bound = -0.5 * np.log(2 * np.pi * 0.2**2)
    a = smc.smooth(model, y, jax.random.PRNGKey(0), 300, method="rejection", n_paths=100,
                   transition_log_bound=bound)
    b = smc.smooth(model, y, jax.random.PRNGKey(0), 300, method="ffbs", n_paths=100)
    np.testing.assert_allclose(a.mean, b.mean, atol=0.15)
