"""method="parallel" (square-root associative scan) against method="sequential"."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probssm import kalman


def _random_model(rng, n, m, T=None, time_varying=(), dtype=np.float64):
    def cov(k):
        a = rng.normal(size=(k, k))
        return a @ a.T / k + 0.2 * np.eye(k)

    fields = dict(
        transition_matrix=0.5 * rng.normal(size=(n, n)) / np.sqrt(n),
        transition_cov=cov(n),
        observation_matrix=rng.normal(size=(m, n)),
        observation_cov=cov(m),
        transition_offset=rng.normal(size=n),
        observation_offset=rng.normal(size=m),
    )
    for name in time_varying:
        base = fields[name]
        if name.endswith("_cov"):
            fields[name] = np.stack([base * (1 + 0.5 * rng.uniform()) for _ in range(T)])
        else:
            fields[name] = base + 0.2 * rng.normal(size=(T, *base.shape))
    fields = {k: v.astype(dtype) for k, v in fields.items()}
    return kalman.LGSSM(
        initial_mean=rng.normal(size=n).astype(dtype), initial_cov=cov(n).astype(dtype),
        time_varying=time_varying, **fields,
    )


def _observations(rng, T, m, batch=(), dtype=np.float64):
    y = rng.normal(size=(*batch, T, m)).astype(dtype)
    missing_rows = rng.uniform(size=(*batch, T)) < 0.1
    y[missing_rows] = np.nan
    y[rng.uniform(size=y.shape) < 0.1] = np.nan  # partial rows
    return y


def _rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30)


_SOME_VARYING = ("transition_matrix", "observation_cov")
_OTHERS_VARYING = ("observation_matrix", "transition_cov", "transition_offset")
# Few distinct shapes, many values: each new shape costs a compilation (about two seconds, the
# sequential and the parallel smoother), each new value does not. The shapes (n, m, T, fields
# with a time axis) are the six rows of a pairwise covering array of n in {1, 3}, m in {1, 2},
# T in {1, 9} and three sets of time-varying fields: every pair of two factors' values occurs.
_SHAPES = [(1, 1, 1, ()), (3, 2, 9, ()), (1, 2, 1, _SOME_VARYING), (3, 1, 9, _SOME_VARYING),
           (1, 1, 9, _OTHERS_VARYING), (3, 2, 1, _OTHERS_VARYING)]


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), shape=st.sampled_from(_SHAPES))
def test_parallel_equals_sequential_float64(seed, shape):
    n, m, T, varying = shape
    rng = np.random.default_rng(seed)
    with jax.enable_x64(True):
        model = _random_model(rng, n, m, T, varying)
        y = _observations(rng, T, m)
        seq = kalman.smooth(model, y, method="sequential")
        par = kalman.smooth(model, y, method="parallel")
    for field in ("mean", "cov", "lag_one_cov"):
        if getattr(seq, field).size:
            assert _rel(getattr(par, field), getattr(seq, field)) < 1e-9, field
    for field in ("mean", "cov", "predicted_mean", "predicted_cov", "observation_mean",
                  "observation_cov", "log_likelihood_terms", "next_mean", "next_cov"):
        assert _rel(getattr(par.filtered, field), getattr(seq.filtered, field)) < 1e-9, field
    assert abs(float(par.log_likelihood) - float(seq.log_likelihood)) <= 1e-9 * abs(float(seq.log_likelihood))


def test_parallel_equals_sequential_batched_and_float32():
    rng = np.random.default_rng(0)
    model64 = _random_model(rng, 3, 2)
    y = _observations(rng, 200, 2, batch=(4,))
    with jax.enable_x64(True):
        ref = kalman.filter(kalman.LGSSM(*[np.asarray(x, np.float64) for x in jax.tree_util.tree_leaves(model64)]), y)
    model32 = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), model64)
    y32 = y.astype(np.float32)
    for method in ("sequential", "parallel"):
        res = kalman.filter(model32, y32, method=method)
        assert res.mean.dtype == jnp.float32
        assert res.log_likelihood.shape == (4,)
        assert _rel(res.log_likelihood, ref.log_likelihood) < 1e-4
        assert _rel(res.mean, ref.mean) < 1e-4
        assert _rel(res.cov, ref.cov) < 1e-4


def test_parallel_gradients_equal_sequential():
    rng = np.random.default_rng(1)
    with jax.enable_x64(True):
        model = _random_model(rng, 2, 2, 30, ("transition_matrix",))
        y = _observations(rng, 30, 2)

        def loglik(theta, method):
            m_ = model.replace(
                transition_cov=jnp.exp(theta[0]) * model.transition_cov,
                observation_cov=jnp.exp(theta[1]) * model.observation_cov,
                transition_matrix=model.transition_matrix * theta[2],
                time_varying=model.time_varying,
            )
            return kalman.log_likelihood(m_, y, method=method)

        def smoothed_sum(theta, method):
            return jnp.sum(kalman.smooth(
                model.replace(transition_cov=jnp.exp(theta[0]) * model.transition_cov), y,
                method=method).mean)

        # The four gradients as one program: eagerly, each compiled its forward and backward
        # passes (and many small operations) as programs of their own.
        theta = jnp.array([0.3, -0.2, 0.9])
        g_seq, g_par, g_smooth, g_smooth_seq = jax.jit(lambda t: (
            jax.grad(loglik)(t, "sequential"), jax.grad(loglik)(t, "parallel"),
            jax.grad(smoothed_sum)(t, "parallel"), jax.grad(smoothed_sum)(t, "sequential")))(theta)
    assert np.all(np.isfinite(g_par))
    np.testing.assert_allclose(g_par, g_seq, rtol=1e-9)
    np.testing.assert_allclose(g_smooth, g_smooth_seq, rtol=1e-8, atol=1e-12)


def test_singular_noise_covariances_keep_gradients_finite():
    """Q = q I with a zero block and R = 0 on one output: factors stay finite, and so do grads."""
    with jax.enable_x64(True):
        model = kalman.LGSSM(
            [[1.0, 1.0], [0.0, 1.0]], np.diag([0.0, 0.1]), [[1.0, 0.0], [0.0, 1.0]],
            np.diag([0.5, 0.0]), np.zeros(2), np.eye(2),
        )
        y = np.cumsum(np.random.default_rng(2).normal(size=(40, 2)), axis=0)
        # One program (the model a concrete constant, routed as in an eager call).
        seq, par, grad = jax.jit(lambda y_: (
            kalman.log_likelihood(model, y_, method="sequential"),
            kalman.log_likelihood(model, y_, method="parallel"),
            jax.grad(lambda s: kalman.log_likelihood(
                model.replace(transition_cov=jnp.diag(jnp.array([0.0, s]))), y_,
                method="parallel"))(0.1)))(y)
    assert abs(float(par) - float(seq)) < 1e-6 * abs(float(seq))
    assert np.isfinite(grad)


def test_diffuse_prior_falls_back_to_sequential_even_under_jit():
    y = np.random.default_rng(3).normal(size=(30, 1)).cumsum(axis=0)
    with jax.enable_x64(True):
        model = kalman.LGSSM([[1.0]], [[0.5]], [[1.0]], [[1.0]], [0.0], [[0.0]], initial_diffuse_cov=[[1.0]])
        seq = kalman.smooth(model, y, method="sequential")
        par = kalman.smooth(model, y, method="parallel")

        @jax.jit
        def traced(q):
            return kalman.log_likelihood(model.replace(transition_cov=q[None, None]), y, method="parallel")

        assert float(traced(jnp.array(0.5))) == pytest.approx(float(seq.log_likelihood), rel=1e-12)
    assert _rel(par.mean, seq.mean) < 1e-12
    assert float(par.log_likelihood) == pytest.approx(float(seq.log_likelihood), rel=1e-12)


def test_auto_is_sequential_on_cpu():
    assert jax.default_backend() == "cpu"
    model = kalman.LGSSM([[0.9]], [[1.0]], [[1.0]], [[1.0]], [0.0], [[1.0]])
    y = np.ones((300, 1), np.float32)
    auto = kalman.filter(model, y, method="auto")
    seq = kalman.filter(model, y, method="sequential")
    np.testing.assert_array_equal(auto.mean, seq.mean)


# Built once a test process: the float32 stability tests of the parallel scan and of the kernel
# share it (their ``xdist_group`` puts them on the same worker). Callers must not modify the arrays.
LONG_SERIES_GROUP = "float32_long_series"


@functools.cache
def float32_problems(seeds=20, T=100_000, n=4, m=2):
    """Random stable models (one per seed, stacked on a batch axis, numpy float64) and their
    series ``(seeds, T, m)``: spectral radius in [0.5, 0.99], non-zero offsets, stationary prior,
    diagonal R for even seeds and correlated R for odd ones, ~5 % NaN rows and ~5 % NaN entries;
    with the float64 sequential filter's log-likelihoods and filtered means. Read-only arrays."""
    rng = np.random.default_rng(2026)
    fields = {k: [] for k in ("F", "Q", "H", "R", "m0", "P0", "u", "d")}
    for s in range(seeds):
        G = rng.normal(size=(n, n))
        F = rng.uniform(0.5, 0.99) * G / np.max(np.abs(np.linalg.eigvals(G)))
        a, b = rng.normal(size=(n, n)), rng.normal(size=(m, m))
        Q = rng.uniform(0.1, 1.0) * (a @ a.T / n + 0.1 * np.eye(n))
        R = np.diag(rng.uniform(0.1, 1.0, m)) if s % 2 == 0 else b @ b.T / m + 0.1 * np.eye(m)
        u = 0.1 * rng.normal(size=n)
        P0 = Q.copy()
        for _ in range(200):  # stationary covariance (spectral radius <= 0.99: converged enough)
            P0 = F @ P0 @ F.T + Q
        for k, v in zip(fields, (F, Q, rng.normal(size=(m, n)), R, np.linalg.solve(np.eye(n) - F, u),
                                 P0, u, rng.normal(size=m))):
            fields[k].append(v)
    f = {k: np.stack(v) for k, v in fields.items()}
    x = f["m0"] + np.einsum("sij,sj->si", np.linalg.cholesky(f["P0"]), rng.normal(size=(seeds, n)))
    eta = np.einsum("sij,tsj->tsi", np.linalg.cholesky(f["Q"]), rng.normal(size=(T, seeds, n)))
    states = np.empty((T, seeds, n))
    for t in range(T):
        states[t] = x
        x = np.einsum("sij,sj->si", f["F"], x) + f["u"] + eta[t]
    eps = np.einsum("sij,tsj->tsi", np.linalg.cholesky(f["R"]), rng.normal(size=(T, seeds, m)))
    y = np.swapaxes(np.einsum("sij,tsj->tsi", f["H"], states) + f["d"] + eps, 0, 1).copy()
    y[rng.uniform(size=(seeds, T)) < 0.05] = np.nan
    y[rng.uniform(size=y.shape) < 0.05] = np.nan
    model = kalman.LGSSM(f["F"], f["Q"], f["H"], f["R"], f["m0"], f["P0"], transition_offset=f["u"],
                         observation_offset=f["d"], time_varying=())
    with jax.enable_x64(True):
        ref = kalman.filter(model, y, method="sequential")
        ref_ll, ref_mean = np.array(ref.log_likelihood), np.array(ref.mean)
    for a in (y, ref_ll, ref_mean):
        a.flags.writeable = False
    return model, y, ref_ll, ref_mean


def check_float32(mean, ll, ref_mean, ref_ll):
    """No NaN; log-likelihood within 1e-4 relative; means within 1e-3 of the float64 reference
    (max |error| / max |reference|, per seed)."""
    mean, ll = np.asarray(mean, np.float64), np.asarray(ll, np.float64)
    assert np.all(np.isfinite(mean)) and np.all(np.isfinite(ll))
    assert np.max(np.abs(ll / ref_ll - 1)) < 1e-4
    for s in range(mean.shape[0]):
        assert np.max(np.abs(mean[s] - ref_mean[s])) / np.max(np.abs(ref_mean[s])) < 1e-3, s


@pytest.mark.slow
@pytest.mark.xdist_group(LONG_SERIES_GROUP)
def test_float32_parallel_is_stable_over_long_series():
    """T = 1e5, 20 random stable models with NaN rows and entries: finite and close to the
    float64 sequential filter (the device script benchmarks/float32_stability.py runs T = 1e6)."""
    model, y, ref_ll, ref_mean = float32_problems()
    model32 = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), model)
    res = kalman.filter(model32, y.astype(np.float32), method="parallel")
    assert res.mean.dtype == jnp.float32
    check_float32(res.mean, res.log_likelihood, ref_mean, ref_ll)
