"""PMMH: exact on a one-parameter linear-Gaussian model (whose posterior is computed on a grid
from the exact Kalman likelihood) and recovering stochastic-volatility parameters."""

import jax
import numpy as np
import numpyro.distributions as dist
import pytest

from probssm import smc
from probssm.smc import models as smc_models

from .models import exact_log_likelihoods, linear_data, linear_model


@pytest.fixture(scope="module")
def linear_posterior():
    y = linear_data(T=40, seed=5, missing=())
    res = smc.pmmh(linear_model(0.9), y, jax.random.PRNGKey(0), {"scale": dist.Uniform(0.0, 1.4)},
                   n_particles=100, num_warmup=300, num_samples=700, num_chains=4)
    grid = np.linspace(0.3, 1.4, 1101)
    ll = exact_log_likelihoods(grid, y)
    w = np.exp(ll - ll.max())
    w /= w.sum()
    mean = (w * grid).sum()
    sd = np.sqrt((w * (grid - mean) ** 2).sum())
    return res, mean, sd


def test_pmmh_matches_the_exact_posterior(linear_posterior):
    res, mean, sd = linear_posterior
    draws = res.samples["scale"]
    assert draws.shape == (4, 700)
    row = res.summary.loc["scale"]
    mcse = row["sd"] / np.sqrt(row["ess"])
    assert abs(row["mean"] - mean) < 4 * mcse, (row["mean"], mean, mcse)
    assert abs(row["sd"] / sd - 1) < 0.25, (row["sd"], sd)
    assert row["r_hat"] < 1.05 and row["ess"] > 100
    assert np.all((res.acceptance_rate > 0.05) & (res.acceptance_rate < 0.6)), res.acceptance_rate
    assert res.theta.shape == (4, 700, 1) and res.log_likelihood.shape == (4, 700)
    assert list(res.draws.columns) == ["scale"] and len(res.draws) == 2800


def test_pmmh_recovers_stochastic_volatility_parameters():
    truth = {"mu": -1.0, "rho": 0.9, "sigma": 0.35}
    model = smc_models.stochastic_volatility(**truth)
    _, y = model.sample(jax.random.PRNGKey(1), 150)
    priors = {"mu": dist.Normal(0.0, 2.0), "rho": dist.Uniform(-1.0, 1.0), "sigma": dist.HalfNormal(1.0)}
    start = smc_models.stochastic_volatility(-0.5, 0.7, 0.6)    # chains start away from the truth
    res = smc.pmmh(start, y, jax.random.PRNGKey(2), priors, n_particles=64, num_warmup=500,
                   num_samples=500, num_chains=4)
    s = res.summary
    for name, value in truth.items():
        lo, hi = np.quantile(res.samples[name], [0.01, 0.99])    # 98 % credible intervals
        assert lo < value < hi, (name, lo, value, hi)
    assert np.all(s["r_hat"] < 1.2), s
    assert np.all(res.samples["sigma"] > 0) and np.all(np.abs(res.samples["rho"]) < 1)


def test_pmmh_input_errors():
    model = linear_model()
    y = linear_data(T=10, missing=(3,))
    key = jax.random.PRNGKey(0)
    with pytest.raises(ValueError, match="unknown parameter 'bogus'"):
        smc.pmmh(model, y, key, {"bogus": dist.Normal()})
    with pytest.raises(TypeError, match="numpyro Distribution"):
        smc.pmmh(model, y, key, {"scale": lambda v: 0.0})
    with pytest.raises(ValueError, match="outside the prior's support"):
        smc.pmmh(model, y, key, {"scale": dist.Uniform(2.0, 3.0)})
    with pytest.raises(ValueError, match="num_chains must be a positive integer"):
        smc.pmmh(model, y, key, {"scale": dist.Normal()}, num_chains=0)
    with pytest.raises(ValueError, match="proposal_cov: expected shape"):
        smc.pmmh(model, y, key, {"scale": dist.Normal()}, proposal_cov=np.eye(2))
