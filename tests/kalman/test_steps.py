"""probssm.kalman.steps (one square-root prediction and update) against dense Gaussian algebra,
with missing entries and the log-density of the observed ones."""

import jax
import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from probssm.kalman import steps

N, M = 3, 2


@pytest.fixture(autouse=True, scope="module")
def float64():
    with jax.enable_x64(True):
        yield


_predict = jax.jit(steps.predict)
_update = jax.jit(steps.update)


def _psd(rng, k, rank=None):
    a = rng.normal(size=(k, rank or k))
    return a @ a.T / k + (0.0 if rank else 0.1 * np.eye(k))


def _dense_update(mean, P, y, H, R, d):
    o = ~np.isnan(y)
    if not o.any():
        return mean, P, 0.0
    Ho, do, Ro = H[o], d[o], R[np.ix_(o, o)]
    S = Ho @ P @ Ho.T + Ro
    K = np.linalg.solve(S, Ho @ P).T
    mean_y = Ho @ mean + do
    logpdf = scipy.stats.multivariate_normal(mean_y, S).logpdf(y[o])
    return mean + K @ (y[o] - mean_y), P - K @ S @ K.T, logpdf


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), mask=st.sampled_from([(True, True), (True, False),
                                                             (False, True), (False, False)]),
       singular_q=st.booleans())
def test_predict_and_update_equal_dense_algebra(seed, mask, singular_q):
    rng = np.random.default_rng(seed)
    mean, P = rng.normal(size=N), _psd(rng, N)
    chol = np.linalg.cholesky(P)
    F, b = rng.normal(size=(N, N)), rng.normal(size=N)
    Q = _psd(rng, N, rank=1) if singular_q else _psd(rng, N)
    H, d, R = rng.normal(size=(M, N)), rng.normal(size=M), _psd(rng, M)
    y = rng.normal(size=M)
    y[~np.array(mask)] = np.nan

    with jax.enable_x64(True):
        pm, pc = _predict(mean, chol, F, Q, b)
        um, uc, logdens = _update(mean, chol, y, H, R, d)
    np.testing.assert_allclose(pm, F @ mean + b, rtol=1e-12, atol=1e-12)
    P_pred = F @ P @ F.T + Q
    np.testing.assert_allclose(pc @ pc.T, P_pred, rtol=1e-12, atol=1e-12 * np.abs(P_pred).max())
    assert np.allclose(np.triu(np.asarray(pc), 1), 0.0)  # lower triangular

    ref_mean, ref_cov, ref_logpdf = _dense_update(mean, P, y, H, R, d)
    np.testing.assert_allclose(um, ref_mean, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(uc @ uc.T, ref_cov, rtol=1e-10, atol=1e-11)
    np.testing.assert_allclose(logdens, ref_logpdf, rtol=1e-11, atol=1e-11)
    if not any(mask):
        assert float(logdens) == 0.0
        np.testing.assert_array_equal(um, mean)


def test_update_with_singular_observation_noise_and_exact_observation():
    """R = 0 on an observed entry: that component of H x is then known exactly."""
    mean, P = np.array([1.0, -1.0]), np.array([[2.0, 0.5], [0.5, 1.0]])
    H, d, R = np.array([[1.0, 0.0], [1.0, 1.0]]), np.zeros(2), np.diag([0.0, 0.5])
    y = np.array([0.3, 0.7])
    with jax.enable_x64(True):
        um, uc, logdens = _update(mean, np.linalg.cholesky(P), y, H, R, d)
    ref_mean, ref_cov, ref_logpdf = _dense_update(mean, P, y, H, R, d)
    np.testing.assert_allclose(um, ref_mean, rtol=1e-10)
    np.testing.assert_allclose(uc @ uc.T, ref_cov, atol=1e-10)
    np.testing.assert_allclose(logdens, ref_logpdf, rtol=1e-10)
    assert abs(float(um[0]) - 0.3) < 1e-10
