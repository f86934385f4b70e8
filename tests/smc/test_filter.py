"""The particle filter against the exact Kalman filter on a linear-Gaussian model, and its
options (proposals, resampling schemes, NaN rows, batches, functions of the state, quantiles).

Monte Carlo checks use fixed seeds and state the Monte Carlo standard error (MCSE) they allow:
a mean of R independent estimates must lie within 3 of its standard errors (sd / sqrt(R)) of
the exact value (two-sided false-alarm rate 0.27 % each under a normal approximation)."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
from scipy import stats

from probssm import kalman, smc

from .models import F, H, Q, R, linear_data, linear_model, reference

R_RUNS = 50


@pytest.fixture(scope="module")
def problem():
    y = linear_data()
    exact = kalman.filter(reference(), y)
    return y, exact


@pytest.fixture(scope="module")
def big_runs(problem):
    """50 independent bootstrap filters with 1e4 particles, one batched call."""
    y, _ = problem
    ys = np.broadcast_to(y, (R_RUNS,) + y.shape)
    return smc.filter(linear_model(), ys, jax.random.PRNGKey(0), n_particles=10_000)


def _within_mcse(estimates, exact, k=3.0):
    estimates = np.asarray(estimates)
    se = estimates.std(ddof=1) / np.sqrt(len(estimates))
    assert abs(estimates.mean() - exact) < k * se, (estimates.mean(), exact, se)
    return se


def test_log_likelihood_mean_within_3_mcse_of_kalman(big_runs, problem):
    _, exact = problem
    lls = np.asarray(big_runs.log_likelihood)
    assert lls.shape == (R_RUNS,)
    se = _within_mcse(np.exp(lls - float(exact.log_likelihood)), 1.0)  # Z-hat / Z is unbiased for 1
    assert se < 0.03
    _within_mcse(lls, float(exact.log_likelihood), k=4.0)  # log Z-hat: bias -var/2 ~ 1e-3 here


def test_filtering_means_and_covariances_within_mc_error(big_runs, problem):
    _, exact = problem
    means = np.asarray(big_runs.mean)                       # (R, T, n)
    se = means.std(axis=0, ddof=1) / np.sqrt(R_RUNS)
    z = (means.mean(axis=0) - np.asarray(exact.mean)) / se
    # 80 standardised errors (t with 49 dof); family-wise false alarm 1e-3 by Bonferroni
    assert np.max(np.abs(z)) < stats.t.ppf(1 - 1e-3 / (2 * z.size), R_RUNS - 1), np.max(np.abs(z))
    sd = np.sqrt(np.diagonal(np.asarray(exact.cov), axis1=-2, axis2=-1))
    # a single filter of 1e4 particles: within 10 % of a posterior sd at 95 % of the entries and
    # within 30 % everywhere (the ESS dips to ~130 near the end, where one filter's Monte Carlo
    # sd is ~9 % of the posterior sd; over the 50 runs the worst entry is 0.04-0.16 of it)
    err = np.abs(means[0] - np.asarray(exact.mean)) / sd
    assert np.mean(err < 0.1) > 0.95 and np.max(err) < 0.3, (np.mean(err < 0.1), np.max(err))
    np.testing.assert_allclose(np.asarray(big_runs.cov).mean(0), np.asarray(exact.cov), atol=0.01)


def test_nan_rows_add_no_likelihood(big_runs):
    inc = np.asarray(big_runs.log_likelihood_increments)
    assert np.all(inc[:, 5] == 0.0) and np.all(inc[:, 17] == 0.0)
    assert np.all(np.isfinite(inc))
    assert big_runs.history is None          # O(N) per step unless history is asked for
    assert big_runs.particles.shape == (R_RUNS, 10_000, 2)


CONFIGS = (("bootstrap", "residual"), ("auxiliary", "stratified"), ("optimal", "multinomial"))
# with big_runs (bootstrap, systematic): every proposal and every scheme at least once


@pytest.fixture(scope="module")
def options_runs(problem):
    """20 runs of 1 000 particles for each configuration (one compiled program each)."""
    y, _ = problem
    ys = np.broadcast_to(y, (20,) + y.shape)
    out = {}
    for proposal, scheme in CONFIGS:
        prop = _optimal_proposal() if proposal == "optimal" else proposal
        out[proposal, scheme] = smc.filter(linear_model(), ys, jax.random.PRNGKey(1), 1000, proposal=prop,
                                           resampling=scheme)
    return out


def _optimal_proposal():
    """The locally optimal proposal p(x_t | x_{t-1}, y_t) of the linear-Gaussian model (a guided
    proposal given as a user function returning a NumPyro distribution); NaN rows move by the
    transition."""
    Qi = np.linalg.inv(Q)
    S = np.linalg.inv(Qi + H.T @ np.linalg.inv(R) @ H)
    K = S @ H.T @ np.linalg.inv(R)

    def proposal(x_prev, y, t, params):
        prior_mean = params["scale"] * (jnp.asarray(F) @ x_prev)
        observed = ~jnp.isnan(y[0])
        mean = jnp.where(observed, S @ (Qi @ prior_mean) + K @ jnp.nan_to_num(y), prior_mean)
        cov = jnp.where(observed, S, Q)
        return dist.MultivariateNormal(mean, cov)

    return smc.Guided(transition=proposal)


@pytest.mark.parametrize("key", CONFIGS)
def test_every_proposal_and_scheme_is_unbiased(options_runs, problem, key):
    _, exact = problem
    lls = np.asarray(options_runs[key].log_likelihood)
    _within_mcse(np.exp(lls - float(exact.log_likelihood)), 1.0)


def test_optimal_proposal_has_lower_variance(options_runs):
    var = {k: np.var(np.asarray(r.log_likelihood)) for k, r in options_runs.items()}
    assert var["optimal", "multinomial"] < 0.5 * var["bootstrap", "residual"], var


def test_functions_and_quantiles_of_the_state(problem):
    y, exact = problem
    res = smc.filter(linear_model(), y, jax.random.PRNGKey(3), 20_000,
                     functions=lambda x: jnp.stack([x[0] ** 2, jnp.sin(x[1])]), quantiles=(0.1, 0.5, 0.9))
    m, P = np.asarray(exact.mean), np.asarray(exact.cov)
    sd = np.sqrt(np.diagonal(P, axis1=-2, axis2=-1))
    assert res.expectations.shape == (y.shape[0], 2)
    second = m[:, 0] ** 2 + P[:, 0, 0]                               # E[x_0^2]
    np.testing.assert_allclose(res.expectations[:, 0], second, atol=0.06 * second.max())
    sin_mean = np.sin(m[:, 1]) * np.exp(-P[:, 1, 1] / 2)              # E[sin x_1], x_1 Gaussian
    np.testing.assert_allclose(res.expectations[:, 1], sin_mean, atol=0.05)
    assert res.quantiles.shape == (y.shape[0], 2, 3)
    gauss = m[..., None] + sd[..., None] * stats.norm.ppf([0.1, 0.5, 0.9])
    np.testing.assert_allclose(res.quantiles, gauss, atol=0.12)


def test_batches_are_independent_filters(problem):
    y, _ = problem
    y2 = np.stack([y, y * 0.5])
    res = smc.filter(linear_model(), y2, jax.random.PRNGKey(4), 4000)
    assert res.mean.shape == (2,) + y.shape[:1] + (2,) and res.log_likelihood.shape == (2,)
    for b in range(2):
        ll = float(kalman.filter(reference(), y2[b]).log_likelihood)
        assert abs(float(res.log_likelihood[b]) - ll) < 0.3
    res3 = smc.filter(linear_model(), np.broadcast_to(y, (2, 2) + y.shape), jax.random.PRNGKey(4), 100)
    assert res3.log_likelihood.shape == (2, 2)
    assert len(np.unique(np.asarray(res3.log_likelihood))) == 4   # independent keys


def test_history_is_the_particle_system(problem):
    y, _ = problem
    res = smc.filter(linear_model(), y, jax.random.PRNGKey(5), 300, history=True, ess_threshold=1.0)
    h = res.history
    T = y.shape[0]
    assert h.particles.shape == (T, 300, 2) and h.log_weights.shape == (T, 300) and h.ancestors.shape == (T, 300)
    np.testing.assert_allclose(np.einsum("tj,tjn->tn", np.exp(h.log_weights), h.particles), res.mean,
                               atol=1e-12)
    np.testing.assert_array_equal(h.particles[-1], res.particles)
    assert np.all(np.asarray(res.resampled)[1:])                    # ess_threshold = 1: every step
    never = smc.filter(linear_model(), y, jax.random.PRNGKey(5), 300, ess_threshold=0.0, history=True)
    assert not np.any(np.asarray(never.resampled))
    np.testing.assert_array_equal(never.history.ancestors, np.broadcast_to(np.arange(300), (T, 300)))


def test_jit_and_grad_through_the_filter(problem):
    y, _ = problem

    @jax.jit
    def ll(scale, key):
        return smc.filter(linear_model(scale), y, key, 200).log_likelihood

    v = ll(1.0, jax.random.PRNGKey(0))
    assert np.isfinite(float(v))
    g = jax.grad(ll)(1.0, jax.random.PRNGKey(0))
    assert np.isfinite(float(g))


def test_does_not_mutate_the_callers_data(problem):
    y, _ = problem
    y_copy = y.copy()
    smc.filter(linear_model(), y, jax.random.PRNGKey(0), 50)
    np.testing.assert_array_equal(y, y_copy)
