"""Programs compiled once per model structure: bucket lengths, padding, and caches that hold
no fitted estimator."""

import gc
import weakref

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probssm import kalman
from probssm.datasets import load_nile
from probssm.fit import mle
from probssm.kalman import compiled
from probssm.structural import SARIMAX, LocalLevel


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 10**7))
def test_bucket_lengths_cover_with_bounded_padding(T):
    b = compiled.bucket_length(T)
    assert b >= T and b >= 128
    assert b == 128 if T <= 128 else b <= T * 1.25 + 1
    assert compiled.bucket_length(b) == b  # a bucket is its own bucket
    assert compiled.bucket_length(T + 1) >= b  # monotone


# Few lengths (each compiles the filter), many values.
@settings(max_examples=15, deadline=None)
@given(st.sampled_from([2, 23]), st.sampled_from([0, 9]), st.integers(0, 2**31 - 1))
def test_padding_with_missing_steps_changes_nothing_observed(T, extra, seed):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=(T, 2))
    y[rng.random((T, 2)) < 0.2] = np.nan
    with jax.enable_x64(True):
        model = kalman.LGSSM(
            np.array([[0.9, 0.1], [0.0, 0.7]]), np.diag([0.3, 0.2]), np.array([[1.0, 0.0], [0.5, 1.0]]),
            np.diag([0.5, 0.4]), np.zeros(2), np.eye(2),
        )
        plain = kalman.filter(model, y, method="sequential")
        padded = kalman.filter(model, compiled.pad_time(y, T + extra, np.nan), method="sequential")
        np.testing.assert_allclose(padded.log_likelihood, plain.log_likelihood, rtol=1e-13)
        np.testing.assert_allclose(padded.mean[:T], plain.mean, rtol=1e-12, atol=1e-14)
        mean, cov = compiled.state_after(padded, T)
        np.testing.assert_allclose(mean, plain.next_mean, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(cov, plain.next_cov, rtol=1e-12, atol=1e-14)


def test_pad_time_copies_and_refuses_to_shorten():
    x = np.arange(6.0).reshape(3, 2)
    out = compiled.pad_time(x, 5, np.nan)
    assert out.shape == (5, 2) and np.isnan(out[3:]).all() and not np.shares_memory(out, x)
    with pytest.raises(ValueError, match="cannot pad 3 time steps to 2"):
        compiled.pad_time(x, 2, 0.0)


def test_a_new_length_in_the_same_bucket_compiles_nothing_new():
    nile = load_nile()
    first = LocalLevel().fit(nile[:45])
    value_and_grad = mle._value_and_grad(compiled.objective(first, first._burn))
    size = value_and_grad._cache_size()
    second = LocalLevel().fit(nile[:97])
    assert value_and_grad._cache_size() == size
    assert second.nobs_ == 97
    # also the same bucket (128 steps for 100): statsmodels' exact diffuse log-likelihood at
    # probssm's estimates, -633.4645636362461, and its maximiser still hold
    full = LocalLevel().fit(nile)
    assert full.loglik_ == pytest.approx(-633.4645636362461, rel=1e-12)
    np.testing.assert_allclose(full.params_, [15098.5, 1469.18], rtol=1e-4)


def test_compile_caches_do_not_keep_a_fitted_estimator_alive():
    y = np.log(np.arange(1.0, 61.0)) + np.sin(np.arange(60.0))
    est = SARIMAX((1, 0, 0), trend="c").fit(y)
    ref = weakref.ref(est)
    data = weakref.ref(est._y)
    del est
    gc.collect()
    assert ref() is None and data() is None
