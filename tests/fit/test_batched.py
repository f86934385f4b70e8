"""The batched L-BFGS of probssm.fit.batched against exact minimisers, SciPy, and the scipy MLE path."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize

from probssm import kalman
from probssm.fit import batched, maximize_likelihood
from probssm.fit.batched import maximize_likelihood_batched, minimize_batched


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def quadratic(theta, a, b):
    return 0.5 * theta @ a @ theta - b @ theta


def rosenbrock(theta, a, b):
    return (a - theta[0]) ** 2 + b * (theta[1] - theta[0] ** 2) ** 2


def barrier(theta, c):
    # Linear cost plus a log barrier: log of a negative number is NaN, log(0) = -inf.
    return jnp.sum(c * theta - jnp.log(theta)) + 0.5 * jnp.sum((theta - 1.0 / c) ** 2)


def random_quadratics(rng, batch, k):
    m = rng.normal(size=(batch, k, k))
    a = m @ np.swapaxes(m, 1, 2) + 0.5 * np.eye(k)
    b = rng.normal(size=(batch, k)) * 3.0
    return a, b


def test_convex_quadratics_reach_the_exact_minimiser(x64):
    rng = np.random.default_rng(0)
    a, b = random_quadratics(rng, 16, 6)
    theta0 = rng.normal(size=(16, 6)) * 5.0
    res = minimize_batched(quadratic, theta0, a, b, gtol=1e-12, ftol=0.0)
    exact = np.linalg.solve(a, b[..., None])[..., 0]
    err = np.abs(np.asarray(res.theta) - exact).max()
    print(f"quadratics: max |theta - A^-1 b| = {err:.2e}, iterations {np.asarray(res.iterations)}")
    assert res.theta.dtype == jnp.float64
    assert bool(res.converged.all())
    assert err < 1e-8
    np.testing.assert_allclose(res.value, [quadratic(e, ai, bi) for e, ai, bi in zip(exact, a, b)],
                               rtol=1e-12)


def test_shared_arguments_via_in_axes(x64):
    rng = np.random.default_rng(1)
    a, b = random_quadratics(rng, 8, 4)
    a_shared = a[0]
    res = minimize_batched(quadratic, np.zeros((8, 4)), a_shared, b, in_axes=(None, 0), gtol=1e-12,
                           ftol=0.0)
    exact = np.linalg.solve(a_shared, b.T).T
    assert np.abs(np.asarray(res.theta) - exact).max() < 1e-8
    with pytest.raises(ValueError, match=r"args\[0\].*batch axis"):
        minimize_batched(quadratic, np.zeros((8, 4)), a_shared, b)
    with pytest.raises(ValueError, match="theta0"):
        minimize_batched(quadratic, np.zeros(4), a_shared, b[0], in_axes=None)
    with pytest.raises(ValueError, match="in_axes"):
        minimize_batched(quadratic, np.zeros((8, 4)), a_shared, b, in_axes=(None,))


def test_rosenbrock_from_different_starts_matches_scipy(x64):
    rng = np.random.default_rng(2)
    batch = 12
    theta0 = rng.uniform(-2.0, 2.0, size=(batch, 2))
    a = rng.uniform(0.5, 1.5, size=batch)
    b = rng.uniform(20.0, 150.0, size=batch)
    res = minimize_batched(rosenbrock, theta0, a, b, gtol=1e-10, ftol=0.0, max_iter=500)
    grad = jax.jit(jax.grad(rosenbrock))
    errs = []
    for i in range(batch):
        ai, bi = a[i], b[i]
        ref = optimize.minimize(
            lambda t, ai=ai, bi=bi: float(rosenbrock(jnp.asarray(t), ai, bi)), theta0[i],
            jac=lambda t, ai=ai, bi=bi: np.asarray(grad(jnp.asarray(t), ai, bi)),
            method="BFGS", options={"gtol": 1e-11, "maxiter": 2000},
        )
        errs.append(np.abs(np.asarray(res.theta[i]) - ref.x).max())
        np.testing.assert_allclose(ref.x, [a[i], a[i] ** 2], atol=1e-6)  # the reference is right
    errs = np.array(errs)
    print(f"rosenbrock: max |theta - scipy| = {errs.max():.2e}, iterations {np.asarray(res.iterations)}")
    assert bool(res.converged.all())
    assert errs.max() < 1e-6


def test_work_queue_equals_lock_step(x64, monkeypatch):
    """The queue (few slots, members entering as others leave) gives every member the result it
    gets in the lock-step program that runs when the inputs are traced."""
    rng = np.random.default_rng(11)
    a = rng.uniform(0.5, 2.0, size=13)
    b = rng.uniform(1.0, 300.0, size=13)  # from nearly round to badly scaled valleys: 5 to 100 evaluations
    theta0 = rng.normal(size=(13, 2)) * 2.0
    monkeypatch.setattr(batched, "_SLOTS", 4)
    queued = minimize_batched(rosenbrock, theta0, a, b, gtol=1e-10, max_iter=400)
    lock_step = jax.jit(lambda t, a, b: minimize_batched(rosenbrock, t, a, b, gtol=1e-10, max_iter=400))(
        theta0, a, b)
    evaluations = np.asarray(queued.evaluations)
    assert evaluations.max() > 2 * evaluations.min()  # members really leave the queue at different times
    for field in batched.BatchedResult._fields:
        np.testing.assert_allclose(getattr(queued, field), getattr(lock_step, field), rtol=1e-12, atol=1e-300)
    assert bool(queued.converged.all())
    np.testing.assert_allclose(queued.theta, np.column_stack([a, a**2]), atol=1e-6)


def test_members_that_converge_early_do_not_move(x64):
    rng = np.random.default_rng(3)
    a, b = random_quadratics(rng, 3, 2)
    exact0 = np.linalg.solve(a[0], b[0])

    def mixed(theta, kind, a, b):
        return jnp.where(kind == 0, quadratic(theta, a, b), rosenbrock(theta, 1.0, 100.0))

    kind = np.array([0, 0, 1, 1])
    a4 = np.concatenate([a[:2], a[:2]])
    b4 = np.concatenate([b[:2], b[:2]])
    theta0 = np.array([exact0, [3.0, -2.0], [-1.2, 1.0], [1.0, 1.0]])
    long = minimize_batched(mixed, theta0, kind, a4, b4, gtol=1e-10, max_iter=300)
    its = np.asarray(long.iterations)
    # member 0 starts at its minimiser, member 3 at Rosenbrock's: neither moves at all
    assert its[0] == 0 and its[3] == 0
    np.testing.assert_array_equal(long.theta[0], theta0[0])
    np.testing.assert_array_equal(long.theta[3], theta0[3])
    assert 0 < its[1] < its[2], its
    # Stopping the loop just after member 1 converged leaves member 1 exactly where the long run has it.
    short = minimize_batched(mixed, theta0, kind, a4, b4, gtol=1e-10, max_iter=int(its[1]) + 1)
    assert int(short.status[2]) == 3  # max_iter for the slow member
    for field in ("theta", "value", "grad_norm", "iterations", "status"):
        np.testing.assert_array_equal(getattr(short, field)[:2], getattr(long, field)[:2])
    assert bool(long.converged.all())
    np.testing.assert_allclose(long.theta[2], [1.0, 1.0], atol=1e-7)


def test_nonfinite_values_shrink_the_step(x64):
    c = np.array([[20.0, 30.0, 40.0], [5.0, 50.0, 8.0], [60.0, 70.0, 80.0]])
    theta0 = 5.0 / c
    # The first steepest-descent trial step lands where the barrier is NaN.
    g0 = jax.vmap(jax.grad(barrier))(jnp.asarray(theta0), c)
    a0 = np.minimum(1.0, 1.0 / np.linalg.norm(g0, axis=1, keepdims=True))
    trial = jax.vmap(barrier)(jnp.asarray(theta0 - a0 * g0), c)
    assert not np.all(np.isfinite(trial))
    res = minimize_batched(barrier, theta0, c, gtol=1e-12, ftol=0.0)
    assert bool(res.converged.all()) and np.all(np.isfinite(res.theta))
    np.testing.assert_allclose(res.theta, 1.0 / c, rtol=1e-8)


def test_nonfinite_start_is_reported_not_propagated(x64):
    c = np.array([[2.0, 3.0], [4.0, 5.0]])
    theta0 = np.array([[1.0, 1.0], [-1.0, 1.0]])  # the second start is outside the domain
    res = minimize_batched(barrier, theta0, c)
    assert bool(res.converged[0]) and not bool(res.converged[1])
    assert int(res.status[1]) == 5 and int(res.iterations[1]) == 0
    np.testing.assert_array_equal(res.theta[1], theta0[1])
    np.testing.assert_allclose(res.theta[0], 1.0 / c[0], rtol=1e-7)


def test_float32_follows_the_input_dtype():
    rng = np.random.default_rng(4)
    a, b = random_quadratics(rng, 4, 3)
    res = minimize_batched(quadratic, np.zeros((4, 3), np.float32), a.astype(np.float32),
                           b.astype(np.float32))
    assert res.theta.dtype == jnp.float32 and res.value.dtype == jnp.float32
    exact = np.linalg.solve(a, b[..., None])[..., 0]
    assert bool(res.converged.all())
    np.testing.assert_allclose(res.theta, exact, rtol=1e-3, atol=1e-3)


def local_level_loglik(theta, y):
    """theta = (log R, log Q); a diffuse-ish prior with the first term burnt."""
    one = jnp.ones((1, 1), theta.dtype)
    model = kalman.LGSSM(one, jnp.exp(theta[1]) * one, one, jnp.exp(theta[0]) * one,
                         jnp.zeros(1, theta.dtype), 1e6 * one)
    return kalman.log_likelihood(model, y, burn=1)


def simulate_local_level(batch, T, seed):
    rng = np.random.default_rng(seed)
    q = np.exp(rng.uniform(np.log(0.1), np.log(2.0), batch))
    r = np.exp(rng.uniform(np.log(0.5), np.log(2.0), batch))
    level = np.cumsum(rng.normal(size=(batch, T)) * np.sqrt(q)[:, None], axis=1)
    return (level + rng.normal(size=(batch, T)) * np.sqrt(r)[:, None])[..., None]


def test_local_level_batch_matches_the_scipy_mle():
    y = simulate_local_level(20, 200, seed=5)
    theta0 = np.zeros((20, 2))
    res = maximize_likelihood_batched(local_level_loglik, theta0, y)
    assert res.value.dtype == jnp.float64
    assert bool(res.converged.all())
    diffs, theta_diffs = [], []
    for i in range(20):
        ref = maximize_likelihood(local_level_loglik, theta0[i], y[i])
        diffs.append(abs(ref.log_likelihood - float(res.value[i])))
        theta_diffs.append(np.abs(ref.theta - np.asarray(res.theta[i])).max())
    print(f"local level: max |loglik - scipy| = {max(diffs):.2e}, max |theta - scipy| = "
          f"{max(theta_diffs):.2e}, iterations {np.asarray(res.iterations)}")
    assert max(diffs) < 1e-6
    # the log-likelihood at the batched theta is what the result reports
    with jax.enable_x64(True):
        again = jax.vmap(local_level_loglik)(res.theta, jnp.asarray(y))
    np.testing.assert_allclose(again, res.value, rtol=1e-13)


def test_refits_reuse_the_compiled_program_and_time_1000_series():
    y = simulate_local_level(1000, 200, seed=6)
    theta0 = np.zeros((1000, 2))
    start = time.perf_counter()
    first = maximize_likelihood_batched(local_level_loglik, theta0, y)
    first.theta.block_until_ready()
    t_first = time.perf_counter() - start
    n_programs = len(batched._PROGRAMS)
    start = time.perf_counter()
    again = maximize_likelihood_batched(local_level_loglik, theta0, y)
    again.theta.block_until_ready()
    t_again = time.perf_counter() - start
    assert len(batched._PROGRAMS) == n_programs
    np.testing.assert_array_equal(first.theta, again.theta)
    print(f"1000 local-level series x T=200: {t_first:.2f} s with compilation, {t_again:.2f} s "
          f"refit; converged {int(again.converged.sum())}/1000, iterations max "
          f"{int(again.iterations.max())}, mean {float(again.iterations.mean()):.1f}")
    assert float(again.converged.mean()) > 0.99
