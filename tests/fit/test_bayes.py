"""NUTS over unconstrained parameters: a conjugate check of the sampler with its Jacobian term,
and Bayesian local-level fits whose predictive intervals integrate over the posterior."""

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest

from probssm.datasets import load_nile
from probssm.fit.bayes import posterior_summary, sample_posterior
from probssm.structural import LocalLevel


def test_inverse_gamma_posterior_through_a_log_transform():
    """y_i ~ N(0, v), v ~ InvGamma(a, b): the posterior is InvGamma(a + n/2, b + sum y^2 / 2).
    Sampling log v exercises the log-Jacobian of the transform."""
    rng = np.random.default_rng(0)
    y = rng.normal(scale=2.0, size=40)
    a, b = 3.0, 4.0

    def loglik(psi, y):
        return jnp.sum(-0.5 * jnp.log(2 * jnp.pi * psi[0]) - 0.5 * y**2 / psi[0])

    draws, divergences = sample_posterior(
        loglik, jnp.exp, [dist.InverseGamma(a, b).log_prob], np.log([4.0]), jnp.asarray(y),
        num_warmup=400, num_samples=2000, num_chains=2, seed=1,
    )
    post_a, post_b = a + len(y) / 2, b + np.sum(y**2) / 2
    exact_mean = post_b / (post_a - 1)
    exact_sd = exact_mean / np.sqrt(post_a - 2)
    summary = posterior_summary(draws, ["v"])
    assert divergences == 0
    assert abs(summary.loc["v", "mean"] - exact_mean) < 4 * exact_sd / np.sqrt(summary.loc["v", "ess"])
    assert abs(summary.loc["v", "sd"] / exact_sd - 1) < 0.1
    assert summary.loc["v", "r_hat"] < 1.05


@pytest.fixture(scope="module")
def nile_fits():
    nile = load_nile()
    mle = LocalLevel().fit(nile)
    bayes = LocalLevel(method="nuts", num_warmup=300, num_samples=300, num_chains=2,
                       random_state=1).fit(nile)
    return nile, mle, bayes


def test_local_level_posterior_near_mle(nile_fits):
    _, mle, bayes = nile_fits
    s = bayes.posterior_summary_
    assert list(s.index) == ["sigma2.irregular", "sigma2.level"]
    assert np.all(np.abs(s["mean"] - mle.params_) < 2 * s["sd"])
    assert np.all(s["r_hat"] < 1.1) and np.all(s["ess"] > 50)
    assert bayes.posterior_.shape == (600, 2)
    np.testing.assert_allclose(bayes.params_, s["mean"], rtol=1e-12)


def test_predictive_intervals_integrate_over_the_posterior(nile_fits):
    _, mle, bayes = nile_fits
    plug = mle.predict_interval(10, coverage=[0.5, 0.9])
    post = bayes.predict_interval(10, coverage=[0.5, 0.9])
    for c in (0.5, 0.9):
        width_plug = plug[("volume", c, "upper")] - plug[("volume", c, "lower")]
        width_post = post[("volume", c, "upper")] - post[("volume", c, "lower")]
        assert np.all(width_post >= width_plug)
    # the mixture's quantiles: P(y <= q) = alpha under the posterior predictive, checked by sampling
    paths = bayes.sample(10, n_samples=4000, random_state=0)["volume"].unstack("time")
    q = bayes.predict_quantiles(10, alpha=[0.05, 0.95])
    inside = ((paths >= q[("volume", 0.05)].to_numpy()) & (paths <= q[("volume", 0.95)].to_numpy())).mean()
    assert np.all(np.abs(inside - 0.9) < 0.03)


def test_bayesian_fit_round_trips_and_rejects_bad_priors(nile_fits, tmp_path):
    import probssm

    nile, _, bayes = nile_fits
    loaded = probssm.load(bayes.save(tmp_path / "b"))
    np.testing.assert_allclose(loaded.predict_interval(3).to_numpy(), bayes.predict_interval(3).to_numpy())
    with pytest.raises(ValueError, match="unknown parameters"):
        LocalLevel(method="nuts", priors={"sigma2.slope": dist.HalfNormal(1.0)}).fit(nile)
    with pytest.raises(ValueError, match="method must be"):
        LocalLevel(method="hmc").fit(nile)


def test_summary_after_nuts_is_the_posterior_table(nile_fits):
    _, mle, bayes = nile_fits
    text = bayes.summary()
    for word in ("posterior", "r_hat", "ess", "5%", "95%", "divergences"):
        assert word in text
    for word in ("std err", "P>|z|", "converged"):
        assert word not in text
    assert f"{bayes.posterior_summary_.loc['sigma2.level', 'mean']:.6g}" in text
    assert "std err" in mle.summary() and "r_hat" not in mle.summary()


@pytest.mark.parametrize("seed", [np.random.default_rng, int])
def test_random_state_takes_an_int_or_a_generator(seed):
    nile = load_nile()[:40]

    def posterior(random_state):
        est = LocalLevel(method="nuts", num_warmup=30, num_samples=20, num_chains=1, random_state=random_state)
        return est.fit(nile).posterior_.to_numpy()

    np.testing.assert_array_equal(posterior(seed(5)), posterior(seed(5)))
    assert not np.array_equal(posterior(seed(5)), posterior(seed(6)))


def test_random_state_of_the_wrong_type_is_named():
    with pytest.raises(TypeError, match="random_state must be None, an int or a numpy Generator"):
        LocalLevel(method="nuts", random_state="seven").fit(load_nile())
