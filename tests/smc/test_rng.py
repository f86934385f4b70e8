"""The filters' counter-based generator (probssm.smc.rng): kernel accuracy, the laws of its
uniforms and normals, reproducibility per key, and the rng= option of the filter.

Distribution checks use fixed keys; each states its false-alarm rate under the null hypothesis
that the generator is right."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from probssm import smc
from probssm.smc import rng

from .models import linear_data, linear_model


def test_float64_kernels_are_accurate():
    with jax.enable_x64(True):
        u = np.concatenate([np.random.default_rng(0).uniform(size=200_000), np.logspace(-16.3, 0, 2000)[:-1],
                            [2.0**-54, 1 - 2.0**-53]])
        log = np.asarray(jax.jit(rng._log64)(jnp.asarray(u)))
        assert np.max(np.abs(log - np.log(u)) / np.maximum(np.abs(np.log(u)), 1.0)) < 2e-15
        phi = np.linspace(0, np.pi / 2, 20_001)
        assert np.max(np.abs(np.asarray(rng._cos_quarter64(jnp.asarray(phi))) - np.cos(phi))) < 1e-15


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_normals_and_uniforms_have_their_laws(dtype):
    # Kolmogorov-Smirnov at 1e-4 each; moments within 5 standard errors
    n = 400_001
    with jax.enable_x64(dtype == "float64"):
        z = np.asarray(rng.normal(jax.random.PRNGKey(1), (n,), dtype), np.float64)
        u = np.asarray(rng.uniform(jax.random.PRNGKey(2), (n,), dtype), np.float64)
    assert z.dtype == np.float64 and np.all(np.isfinite(z))
    assert stats.kstest(z, "norm").pvalue > 1e-4
    assert abs(z.mean()) < 5 / np.sqrt(n) and abs(z.var() - 1) < 5 * np.sqrt(2 / n)
    assert abs(stats.kurtosis(z)) < 5 * np.sqrt(24 / n)
    assert 0 < u.min() and u.max() < 1 and stats.kstest(u, "uniform").pvalue > 1e-4
    # neighbours are uncorrelated (|r| < 5 / sqrt(n))
    assert abs(np.corrcoef(z[:-1], z[1:])[0, 1]) < 5 / np.sqrt(n)


def test_reproducible_per_key_and_independent_across_keys():
    with jax.enable_x64(True):
        a = rng.normal(jax.random.PRNGKey(0), (1000,))
        b = rng.normal(jax.random.PRNGKey(0), (1000,))
        c = rng.normal(jax.random.PRNGKey(1), (1000,))
        np.testing.assert_array_equal(a, b)
        assert abs(np.corrcoef(a, c)[0, 1]) < 0.15
        seeds = rng.seeds(jax.random.PRNGKey(0), 5)
        assert seeds.dtype == jnp.uint64 and seeds.shape == (5,) and len(set(np.asarray(seeds).tolist())) == 5
        children = rng.split(seeds[0], 3)
        assert len(set(np.asarray(children).tolist())) == 3
        np.testing.assert_array_equal(rng.normal(seeds[0], (4,)), rng.normal(seeds[0], (4,)))
        assert rng.as_key(seeds[0]).shape == jax.random.PRNGKey(0).shape


def test_filter_rng_option():
    y = linear_data()
    model = linear_model()
    key = jax.random.PRNGKey(4)
    a = smc.filter(model, y, key, 500)
    b = smc.filter(model, y, key, 500)
    np.testing.assert_array_equal(a.log_likelihood, b.log_likelihood)   # same key, same numbers
    c = smc.filter(model, y, key, 500, rng="jax")
    assert np.isfinite(float(c.log_likelihood)) and float(c.log_likelihood) != float(a.log_likelihood)
    assert abs(float(c.log_likelihood) - float(a.log_likelihood)) < 5.0
    with pytest.raises(ValueError, match="rng must be one of"):
        smc.filter(model, y, key, 500, rng="mersenne")
