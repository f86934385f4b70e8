"""Resampling schemes: offspring counts are unbiased (E O_i = N w_i) and their variances are the
exact ones of probssm.smc.resampling.offspring_variance, which obey the documented ordering.

Statistical tests run with fixed seeds; each states its false-alarm rate under the null
hypothesis that the implementation is right (a Bonferroni bound over the particles tested)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from probssm.smc import resampling

N = 40
REPS = 4000
SCHEMES = ("multinomial", "stratified", "systematic", "residual")


def _weights():
    rng = np.random.default_rng(7)
    w = rng.gamma(0.7, size=N)
    w[[3, 11]] = [6.0, 0.0]     # one heavy particle (several copies), one with weight zero
    return w / w.sum()


@pytest.fixture(scope="module")
def counts():
    """Offspring counts ``(REPS, N)`` of each scheme, one compiled program a scheme."""
    w = _weights()
    lw = jnp.log(jnp.asarray(w))
    out = {}
    for scheme in SCHEMES:
        fn = jax.jit(jax.vmap(lambda k, s=scheme: resampling.offspring_counts(resampling.RESAMPLERS[s](k, lw), N)))
        out[scheme] = np.asarray(fn(jax.random.split(jax.random.PRNGKey(11), REPS)))
    return w, out


@pytest.mark.parametrize("scheme", SCHEMES)
def test_offspring_counts_are_unbiased(counts, scheme):
    # z-test of each particle's mean count against N w_i with the exact variance; family-wise
    # false-alarm rate 1e-3 (Bonferroni over the particles with nonzero variance)
    w, all_counts = counts
    c = all_counts[scheme]
    assert c.shape == (REPS, N) and np.all(c.sum(axis=1) == N)
    var = resampling.offspring_variance(w, scheme)
    expected = N * w
    random = var > 1e-12
    np.testing.assert_array_equal(c[:, ~random], np.broadcast_to(expected[~random], c[:, ~random].shape).round())
    z = (c[:, random].mean(0) - expected[random]) / np.sqrt(var[random] / REPS)
    bound = stats.norm.ppf(1 - 1e-3 / (2 * random.sum()))
    assert np.max(np.abs(z)) < bound, (scheme, np.max(np.abs(z)), bound)
    assert np.all(c[:, 11] == 0)  # weight zero: never selected


@pytest.mark.parametrize("scheme", SCHEMES)
def test_offspring_variances_match_the_exact_formulas(counts, scheme):
    # total variance sum_i Var O_i estimated with the known means; its standard error from the
    # replicates; two-sided z-test at false-alarm rate 1e-3
    w, all_counts = counts
    sq = ((all_counts[scheme] - N * w) ** 2).sum(axis=1)
    exact = resampling.offspring_variance(w, scheme).sum()
    z = (sq.mean() - exact) / (sq.std(ddof=1) / np.sqrt(REPS))
    assert abs(z) < stats.norm.ppf(1 - 0.5e-3), (scheme, sq.mean(), exact, z)


def test_variance_ordering():
    # the documented ordering, particle by particle, on many weight vectors
    rng = np.random.default_rng(0)
    for _ in range(50):
        w = rng.dirichlet(np.full(30, rng.uniform(0.1, 3)))
        v = {s: resampling.offspring_variance(w, s) for s in SCHEMES}
        tol = 1e-12
        assert np.all(v["systematic"] <= v["stratified"] + tol)
        assert np.all(v["stratified"] <= v["multinomial"] + tol)
        assert np.all(v["systematic"] <= v["residual"] + tol)
        assert np.all(v["residual"] <= v["multinomial"] + tol)
    # and strictly on the test weights
    w = _weights()
    totals = [resampling.offspring_variance(w, s).sum() for s in ("systematic", "stratified", "multinomial")]
    assert totals[0] < totals[1] < totals[2]


def test_systematic_counts_are_floor_or_ceil(counts):
    w, all_counts = counts
    c = all_counts["systematic"]
    assert np.all((c >= np.floor(N * w - 1e-9)) & (c <= np.ceil(N * w + 1e-9)))
    r = all_counts["residual"]
    assert np.all(r >= np.floor(N * w + 1e-9))


def test_ess_and_normalize():
    lw = jnp.log(jnp.array([1.0, 1.0, 2.0, 0.0])) + 100.0  # any constant; one zero weight
    norm, total = resampling.normalize(lw)
    np.testing.assert_allclose(np.exp(norm), [0.25, 0.25, 0.5, 0.0], atol=1e-15)
    np.testing.assert_allclose(total, 100 + np.log(4.0))
    np.testing.assert_allclose(resampling.ess(lw), 1 / (0.25**2 * 2 + 0.5**2))
    assert float(resampling.ess(jnp.zeros(7))) == pytest.approx(7.0)


def test_resample_names_and_num():
    with pytest.raises(ValueError, match="resampling must be one of"):
        resampling.resample(jax.random.PRNGKey(0), jnp.zeros(3), "bogus")
    idx = resampling.resample(jax.random.PRNGKey(0), jnp.log(jnp.array([0.0, 1.0, 0.0])), "stratified", num=5)
    np.testing.assert_array_equal(idx, [1, 1, 1, 1, 1])


# ------------------------------------------------------------------------------------------------
# systematic resampling against its definition, and the O(N) cumulative sum it uses
# ------------------------------------------------------------------------------------------------
from fractions import Fraction  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def _reference_systematic(weights, U):
    """a_j = min{i : C_i > (j + U)/N} in exact rational arithmetic, and the offspring counts."""
    total = sum(weights)
    c, acc = [], Fraction(0)
    for w in weights:
        acc += Fraction(w, total)
        c.append(acc)
    n = len(weights)
    idx = [next(i for i, ci in enumerate(c) if ci > (j + U) / n) for j in range(n)]
    return np.array(idx), np.bincount(idx, minlength=n)


@settings(max_examples=200, deadline=None)
@given(ints=st.lists(st.integers(0, 9), min_size=1, max_size=63), k=st.integers(0, 1023))
def test_systematic_matches_its_definition(ints, k):
    # weights with a power-of-two total and U = k/1024: every quantity is exact in float64, so
    # the O(N) counting must give exactly the indices of the definition, ties included
    total = 1 << max(int(np.ceil(np.log2(max(sum(ints), 1)))), 0)
    if sum(ints) == total:
        total *= 2
    weights = list(ints) + [total - sum(ints)]
    U = Fraction(k, 1024)
    ref_idx, ref_counts = _reference_systematic(weights, U)
    c = np.cumsum(weights) / total
    with jax.enable_x64(True):
        idx = np.asarray(resampling.systematic_from_uniform(jnp.asarray(c), jnp.float64(k / 1024)))
        lw = jnp.log(jnp.asarray(weights, jnp.float64))
        np.testing.assert_allclose(np.asarray(resampling._cumulative(lw)), c, rtol=1e-14, atol=1e-15)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_array_equal(np.bincount(idx, minlength=len(weights)), ref_counts)
    # the counts are floor(N w_i + U_i) differences: floor or ceil of N w_i
    n = len(weights)
    expected = n * np.asarray(weights) / total
    assert np.all((ref_counts >= np.floor(expected)) & (ref_counts <= np.ceil(expected)))


# every length compiles its own program (about 0.4 s), so the sizes that pick each branch of the
# block choice come first: up to two blocks (1, 64), a divisor in [32, 64] (96, 462, 1024), only
# a smaller one (65 = 5 x 13, 899 = 29 x 31), none: padded (the prime 2999)
@settings(max_examples=30, deadline=None)
@given(n=st.one_of(st.sampled_from([1, 64, 65, 96, 462, 899, 1024, 2999]), st.integers(1, 3000)),
       seed=st.integers(0, 2**31 - 1), integer=st.booleans())
def test_cumsum_matches_numpy(n, seed, integer):
    rng = np.random.default_rng(seed)
    with jax.enable_x64(True):
        if integer:
            x = rng.integers(0, 7, size=n).astype(np.int32)
            np.testing.assert_array_equal(np.asarray(resampling.cumsum(jnp.asarray(x))), np.cumsum(x))
        else:
            x = rng.uniform(size=n)
            np.testing.assert_allclose(np.asarray(resampling.cumsum(jnp.asarray(x))), np.cumsum(x), rtol=1e-12)


def test_schemes_under_both_generators():
    # rng="jax" (jax.random) and the default "splitmix" give valid indices of the same law
    lw = jnp.log(jnp.asarray(_weights()))
    for scheme in SCHEMES:
        for rng_name in ("splitmix", "jax"):
            idx = np.asarray(resampling.resample(jax.random.PRNGKey(3), lw, scheme, rng=rng_name))
            assert idx.shape == (N,) and idx.min() >= 0 and idx.max() < N and not np.any(idx == 11)
