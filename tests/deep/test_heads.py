"""The output heads against scipy's distributions and probssm.metrics' pinball loss."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("pyro")

from scipy import stats

from probssm import metrics
from probssm.deep.heads import (
    NegativeBinomialHead,
    NormalHead,
    QuantileHead,
    StudentTHead,
    make_head,
)

ALPHAS = [0.05, 0.25, 0.5, 0.9]


@pytest.fixture
def parts():
    g = torch.Generator().manual_seed(0)
    raw = torch.randn(3, 4, 9, generator=g, dtype=torch.float64)
    loc = torch.tensor([10.0, -2.0, 0.5], dtype=torch.float64)
    scale = torch.tensor([2.0, 0.5, 3.0], dtype=torch.float64)
    return raw, loc, scale


def _softplus(x):
    return np.log1p(np.exp(x))


def test_normal_head_matches_scipy(parts):
    raw, loc, scale = parts
    head = NormalHead()
    r = raw[..., :2].numpy()
    mu = loc.numpy()[:, None] + scale.numpy()[:, None] * r[..., 0]
    sd = scale.numpy()[:, None] * (_softplus(r[..., 1]) + 1e-4)
    y = mu + 0.7
    np.testing.assert_allclose(head.log_prob(raw[..., :2], loc, scale, torch.as_tensor(y)).numpy(),
                               stats.norm.logpdf(y, mu, sd), rtol=1e-12)
    np.testing.assert_allclose(head.quantiles(raw[..., :2], loc, scale, ALPHAS),
                               stats.norm.ppf(ALPHAS, mu[..., None], sd[..., None]), rtol=1e-10)
    np.testing.assert_allclose(head.mean(raw[..., :2], loc, scale), mu, rtol=1e-12)


def test_normal_loss_is_normalised_nll(parts):
    raw, loc, scale = parts
    head = NormalHead()
    y = loc[:, None] + scale[:, None] * torch.linspace(-1, 1, 4, dtype=torch.float64)
    mask = torch.ones(3, 4, dtype=torch.bool)
    mask[0, 1] = False
    logp = head.log_prob(raw[..., :2], loc, scale, y) + torch.log(scale)[:, None]
    expected = -logp[mask].mean()
    assert float(head.loss(raw[..., :2], y, loc, scale, mask)) == pytest.approx(float(expected), rel=1e-12)


def test_student_t_head_matches_scipy(parts):
    raw, loc, scale = parts
    head = StudentTHead()
    r = raw[..., :3].numpy()
    df = 2 + _softplus(r[..., 2])
    mu = loc.numpy()[:, None] + scale.numpy()[:, None] * r[..., 0]
    sd = scale.numpy()[:, None] * (_softplus(r[..., 1]) + 1e-4)
    y = mu - 1.3
    np.testing.assert_allclose(head.log_prob(raw[..., :3], loc, scale, torch.as_tensor(y)).numpy(),
                               stats.t.logpdf(y, df, mu, sd), rtol=1e-10)
    np.testing.assert_allclose(head.quantiles(raw[..., :3], loc, scale, ALPHAS),
                               stats.t.ppf(ALPHAS, df[..., None], mu[..., None], sd[..., None]), rtol=1e-10)


def test_negative_binomial_head_mean_dispersion(parts):
    raw, _, _ = parts
    head = NegativeBinomialHead()
    scale = torch.tensor([4.0, 1.0, 25.0], dtype=torch.float64)
    r = raw[..., :2].numpy()
    mean = scale.numpy()[:, None] * _softplus(r[..., 0]) + 1e-4
    alpha = (_softplus(r[..., 1]) + 1e-4) / np.sqrt(scale.numpy())[:, None]
    n, p = 1 / alpha, 1 / (1 + alpha * mean)  # scipy: mean n(1-p)/p, variance mean + alpha mean^2
    y = np.round(mean) + 1
    d = head.distribution(raw[..., :2], torch.zeros(3, dtype=torch.float64), scale)
    np.testing.assert_allclose(d.mean.numpy(), mean, rtol=1e-10)
    np.testing.assert_allclose(d.variance.numpy(), mean + alpha * mean**2, rtol=1e-10)
    np.testing.assert_allclose(d.log_prob(torch.as_tensor(y)).numpy(), stats.nbinom.logpmf(y, n, p), rtol=1e-8)
    np.testing.assert_array_equal(head.quantiles(raw[..., :2], None, scale, ALPHAS),
                                  stats.nbinom.ppf(ALPHAS, n[..., None], p[..., None]))


def test_quantile_head_pinball_monotone_and_interpolation(parts):
    raw, loc, scale = parts
    levels = (0.1, 0.5, 0.9)
    head = QuantileHead(levels)
    r = raw[..., :3]
    q = head.quantiles(r, loc, scale, levels)
    assert np.all(np.diff(q, axis=-1) > 0)
    y = loc[:, None] + scale[:, None] * torch.linspace(-2, 2, 4, dtype=torch.float64)
    mask = torch.ones(3, 4, dtype=torch.bool)
    z = ((y - loc[:, None]) / scale[:, None]).numpy()
    qz = (q - loc.numpy()[:, None, None]) / scale.numpy()[:, None, None]
    # metrics.pinball_loss averages over values for each level; the head sums the levels
    expected = sum(metrics.pinball_loss(z, qz[..., k], a) for k, a in enumerate(levels))
    assert float(head.loss(r, y, loc, scale, mask)) == pytest.approx(expected, rel=1e-10)
    mid = head.quantiles(r, loc, scale, [0.3])[..., 0]
    np.testing.assert_allclose(mid, 0.5 * (q[..., 0] + q[..., 1]), rtol=1e-12)
    np.testing.assert_allclose(head.mean(r, loc, scale), q[..., 1], rtol=1e-12)
    with pytest.raises(ValueError, match="outside the head's levels"):
        head.quantiles(r, loc, scale, [0.05])
    with pytest.raises(ValueError, match="no density"):
        head.log_prob(r, loc, scale, y)


def test_quantile_head_samples_follow_its_quantiles(parts):
    raw, loc, scale = parts
    head = QuantileHead((0.1, 0.5, 0.9))
    torch.manual_seed(0)
    draws = head.sample(raw[..., :3], loc, scale, 4000)
    q = head.quantiles(raw[..., :3], loc, scale, [0.3, 0.5, 0.7])
    # u ~ U(0.1, 0.9): the empirical 0.5 quantile of the draws is the head's 0.5 quantile
    np.testing.assert_allclose(np.quantile(draws, 0.5, axis=0), q[..., 1],
                               atol=0.05 * float(scale.max()))


def test_head_settings_are_checked():
    with pytest.raises(ValueError, match="likelihood must be one of"):
        make_head("poisson")
    with pytest.raises(ValueError, match="include 0.5"):
        QuantileHead((0.1, 0.9))
    with pytest.raises(ValueError, match="increasing"):
        QuantileHead((0.5, 0.1))
