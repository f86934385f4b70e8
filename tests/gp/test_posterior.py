"""NUTS over GP hyperparameters against the posterior by quadrature on a grid."""

import numpy as np
import pytest
from scipy import stats

from probssm.gp import GaussianProcess, Matern12



@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    t = np.sort(rng.uniform(0, 20, 30))
    y = np.sin(t / 2) + 0.3 * rng.standard_normal(30)
    return t, y


def test_posterior_means_match_grid_quadrature(problem):
    t, y = problem
    prior = {"lengthscale": stats.lognorm(s=1.0, scale=2.0), "variance": stats.lognorm(s=1.0, scale=1.0)}
    gp = GaussianProcess(Matern12(2.0), noise=0.09, method="nuts", num_warmup=250, num_samples=500,
                         num_chains=1, random_state=0,
                         priors={k: (lambda v, d=d: _logpdf(d, v)) for k, d in prior.items()}).fit(t, y)
    # Quadrature of the same posterior on a log-spaced grid.
    log_l, log_v = np.meshgrid(np.linspace(-3, 4, 90), np.linspace(-4, 3, 90), indexing="ij")
    log_post = _dense_log_likelihoods(t, y, np.exp(log_l), np.exp(log_v), 0.09)
    log_post += prior["lengthscale"].logpdf(np.exp(log_l)) + prior["variance"].logpdf(np.exp(log_v)) + log_l + log_v
    weights = np.exp(log_post - log_post.max())
    weights /= weights.sum()
    summary = gp.posterior_summary_
    for name, grid in (("lengthscale", log_l), ("variance", log_v)):
        draws = np.log(gp.posterior_[name].to_numpy())
        expected = np.sum(weights * grid)
        sd = np.sqrt(np.sum(weights * (grid - expected) ** 2))
        standard_error = sd / np.sqrt(summary.loc[name, "ess"])
        assert abs(draws.mean() - expected) < 4 * standard_error, (name, draws.mean(), expected, standard_error)
        assert abs(draws.std() - sd) < 0.15 * sd
    assert summary.loc["lengthscale", "r_hat"] < 1.05
    # Predictions integrate over the posterior: the mixture's mean lies between draws' means.
    mean, std = gp.predict(np.array([5.0, 25.0]), return_std=True)
    assert np.all(np.isfinite(mean)) and np.all(std > 0)


def _dense_log_likelihoods(t, y, lengthscales, variances, noise):
    """The exact Matérn-1/2 log marginal likelihood on a grid of hyperparameters (batched dense
    Cholesky factorisations)."""
    distance = np.abs(t[:, None] - t[None, :])
    K = variances[..., None, None] * np.exp(-distance / lengthscales[..., None, None]) + noise * np.eye(len(t))
    L = np.linalg.cholesky(K)
    z = np.linalg.solve(L, np.broadcast_to(y[:, None], K.shape[:-1] + (1,)))[..., 0]
    log_det = np.log(np.diagonal(L, axis1=-2, axis2=-1)).sum(-1)
    return -0.5 * (z**2).sum(-1) - log_det - 0.5 * len(t) * np.log(2 * np.pi)


def _logpdf(distribution, value):
    import jax.numpy as jnp

    s, scale = distribution.kwds["s"], distribution.kwds["scale"]
    return (-0.5 * ((jnp.log(value) - np.log(scale)) / s) ** 2 - jnp.log(value * s * np.sqrt(2 * np.pi)))
