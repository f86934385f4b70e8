r"""Output heads of the deep forecasters: raw network outputs -> a predictive distribution.

A head turns the network's raw outputs ``raw`` ``(batch, horizon, n_params)`` into a predictive
distribution for each of the ``horizon`` steps, in the units of the data. The forecaster
normalises each window by a location :math:`\ell` and a scale :math:`s` ``(batch,)`` (reversible
instance normalisation) and hands both to the head, so that

.. math::

    y_{t+k} = \ell + s \, z_{t+k}, \qquad z_{t+k} \sim p_\phi(\cdot \mid \text{raw}_{k})

for the location-scale heads (:class:`NormalHead`, :class:`StudentTHead`,
:class:`QuantileHead`); :class:`NegativeBinomialHead` scales the mean of a count distribution
instead (:math:`\ell = 0`, :math:`s` the window's mean level). Every head gives the point
forecast, quantiles, joint sample paths (independent over steps given the window) and, except
the quantile head, the log-density; the likelihood heads are ``pyro.distributions`` objects.

Heads hold no parameters: the forecaster's last linear layer emits their ``n_params`` raw values
per step.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from pyro import distributions as dist
from scipy import stats

__all__ = ["Head", "NegativeBinomialHead", "NormalHead", "QuantileHead", "StudentTHead", "make_head"]

_MIN_SCALE = 1e-4


class Head:
    """Interface of an output head (see the module docstring for the maths).

    Shapes: ``raw`` ``(batch, horizon, n_params)``; ``loc``, ``scale`` ``(batch,)``; targets ``y``
    ``(batch, horizon)`` in data units; ``mask`` ``(batch, horizon)`` bool, False where the target
    is missing."""

    n_params: int = 0
    location_scale: bool = True
    """Whether windows are normalised by mean and standard deviation (False: by the mean level
    only, :math:`\\ell = 0`)."""

    def distribution(self, raw, loc, scale) -> dist.Distribution:
        """The predictive distribution in data units, batch shape ``(batch, horizon)``."""
        raise NotImplementedError

    def loss(self, raw, y, loc, scale, mask) -> torch.Tensor:
        """Mean negative log-likelihood over the observed targets, in normalised units (the
        log-Jacobian :math:`\\log s` is dropped: a constant per window, it would only weight
        series by their scale)."""
        z = torch.where(mask, (y - loc[:, None]) / scale[:, None], 0.0)
        nll = -self.distribution(raw, torch.zeros_like(loc), torch.ones_like(scale)).log_prob(z)
        return _masked_mean(nll, mask)

    def log_prob(self, raw, loc, scale, y) -> torch.Tensor:
        """:math:`\\log p(y_{t+k})` in data units, ``(batch, horizon)``."""
        return self.distribution(raw, loc, scale).log_prob(y)

    def mean(self, raw, loc, scale) -> np.ndarray:
        """The point forecast (predictive mean) ``(batch, horizon)``."""
        return self.distribution(raw, loc, scale).mean.detach().cpu().double().numpy()

    def quantiles(self, raw, loc, scale, alphas) -> np.ndarray:
        """Predictive quantiles ``(batch, horizon, len(alphas))``."""
        raise NotImplementedError

    def sample(self, raw, loc, scale, n_samples: int) -> np.ndarray:
        """``n_samples`` paths ``(n_samples, batch, horizon)``, drawn with torch's global
        generator (seed it, or fork it, for reproducible draws)."""
        return self.distribution(raw, loc, scale).sample((n_samples,)).detach().cpu().double().numpy()

    def config(self) -> dict:
        """The head's settings (for the estimator's hyper-parameters)."""
        return {}


def _masked_mean(values, mask):
    count = mask.sum()
    if count == 0:
        return values.sum() * 0.0
    return torch.where(mask, values, 0.0).sum() / count


def _as_numpy(t) -> np.ndarray:
    return t.detach().cpu().double().numpy()


class NormalHead(Head):
    r"""Gaussian steps: :math:`y_{t+k} \sim \mathcal N(\ell + s\mu_k, (s\sigma_k)^2)` with
    :math:`\sigma_k = \operatorname{softplus}(\text{raw}_{k,1}) + 10^{-4}`."""

    n_params = 2

    def distribution(self, raw, loc, scale):
        mu, sigma = raw[..., 0], F.softplus(raw[..., 1]) + _MIN_SCALE
        return dist.Normal(loc[:, None] + scale[:, None] * mu, scale[:, None] * sigma)

    def quantiles(self, raw, loc, scale, alphas):
        d = self.distribution(raw, loc, scale)
        z = stats.norm.ppf(np.asarray(alphas, dtype=np.float64))
        return _as_numpy(d.mean)[..., None] + _as_numpy(d.stddev)[..., None] * z


class StudentTHead(Head):
    r"""Student-t steps, for heavy tails: :math:`y_{t+k} = \ell + s(\mu_k + \sigma_k T_k)`,
    :math:`T_k \sim t_{\nu_k}`, :math:`\nu_k = 2 + \operatorname{softplus}(\text{raw}_{k,2})`
    (above 2, so the variance exists). The point forecast is :math:`\ell + s\mu_k`."""

    n_params = 3

    def distribution(self, raw, loc, scale):
        mu, sigma = raw[..., 0], F.softplus(raw[..., 1]) + _MIN_SCALE
        df = 2.0 + F.softplus(raw[..., 2])
        return dist.StudentT(df, loc[:, None] + scale[:, None] * mu, scale[:, None] * sigma)

    def quantiles(self, raw, loc, scale, alphas):
        d = self.distribution(raw, loc, scale)
        df, mu, sig = _as_numpy(d.df), _as_numpy(d.loc), _as_numpy(d.scale)
        z = stats.t.ppf(np.asarray(alphas, dtype=np.float64), df[..., None])
        return mu[..., None] + sig[..., None] * z


class NegativeBinomialHead(Head):
    r"""Counts: :math:`y_{t+k} \sim \operatorname{NB}(\text{mean } m_k, \text{dispersion }
    \alpha_k)`, variance :math:`m_k + \alpha_k m_k^2`, with
    :math:`m_k = s \operatorname{softplus}(\text{raw}_{k,0}) + 10^{-4}` scaled by the window's
    mean level :math:`s` and :math:`\alpha_k = \operatorname{softplus}(\text{raw}_{k,1}) /
    \sqrt{s}` (larger series are relatively less dispersed, as in DeepAR). As a
    ``pyro.distributions.NegativeBinomial``: ``total_count`` :math:`= 1/\alpha`, ``logits``
    :math:`= \log(\alpha m)`. Targets must be non-negative integers."""

    n_params = 2
    location_scale = False

    def distribution(self, raw, loc, scale):
        mean = scale[:, None] * F.softplus(raw[..., 0]) + _MIN_SCALE
        alpha = (F.softplus(raw[..., 1]) + _MIN_SCALE) / torch.sqrt(scale)[:, None]
        return dist.NegativeBinomial(total_count=1.0 / alpha, logits=torch.log(alpha * mean))

    def loss(self, raw, y, loc, scale, mask):
        counts = torch.where(mask, y, 0.0)
        return _masked_mean(-self.distribution(raw, loc, scale).log_prob(counts), mask)

    def quantiles(self, raw, loc, scale, alphas):
        d = self.distribution(raw, loc, scale)
        n, p = _as_numpy(d.total_count), _as_numpy(d.probs)
        # scipy's p is the probability of a "success" that stops the count: 1 - torch's probs.
        return stats.nbinom.ppf(np.asarray(alphas, dtype=np.float64), n[..., None], 1.0 - p[..., None])


class QuantileHead(Head):
    r"""Quantiles at fixed levels :math:`\tau_1 < \dots < \tau_K` (``levels``), trained by the
    pinball loss :math:`\sum_j \rho_{\tau_j}(z - q_j)`, :math:`\rho_\tau(u) = u(\tau -
    \mathbb 1[u < 0])`, in normalised units. Monotone by construction:
    :math:`q_1 = \text{raw}_1`, :math:`q_j = q_{j-1} + \operatorname{softplus}(\text{raw}_j)`.

    Quantiles between levels are interpolated linearly in :math:`\tau`; levels outside
    :math:`[\tau_1, \tau_K]` raise ``ValueError``. The point forecast is the median (0.5 must be
    a level). Samples are drawn by inverting the interpolated quantile function at
    :math:`u \sim U(\tau_1, \tau_K)` (the tails beyond the outer levels are cut), independently
    over steps. There is no density, so ``log_prob`` raises ``ValueError``."""

    location_scale = True

    def __init__(self, levels=(0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.975)):
        levels = tuple(float(a) for a in levels)
        if len(levels) < 2 or any(not 0 < a < 1 for a in levels) or list(levels) != sorted(set(levels)):
            raise ValueError(f"quantile levels must be increasing, distinct and in (0, 1), got {levels}")
        if 0.5 not in levels:
            raise ValueError(f"quantile levels must include 0.5 (the point forecast), got {levels}")
        self.levels = levels
        self.n_params = len(levels)

    def config(self) -> dict:
        return {"levels": self.levels}

    def _quantiles(self, raw, loc, scale):
        q = torch.cumsum(torch.cat([raw[..., :1], F.softplus(raw[..., 1:])], dim=-1), dim=-1)
        return loc[:, None, None] + scale[:, None, None] * q  # (batch, horizon, K)

    def distribution(self, raw, loc, scale):
        raise ValueError("the quantile head has no distribution; use a likelihood head "
                         "(normal, studentt, negbinomial) for densities")

    def loss(self, raw, y, loc, scale, mask):
        q = self._quantiles(raw, torch.zeros_like(loc), torch.ones_like(scale))
        z = torch.where(mask, (y - loc[:, None]) / scale[:, None], 0.0)[..., None]
        tau = torch.tensor(self.levels, dtype=q.dtype, device=q.device)
        u = z - q
        pinball = torch.maximum(tau * u, (tau - 1) * u).sum(-1)
        return _masked_mean(pinball, mask)

    def log_prob(self, raw, loc, scale, y):
        raise ValueError("the quantile head has no density, so no log predictive score; use "
                         "probssm.metrics.pinball_loss or crps_samples on its forecasts")

    def mean(self, raw, loc, scale):
        return _as_numpy(self._quantiles(raw, loc, scale))[..., self.levels.index(0.5)]

    def quantiles(self, raw, loc, scale, alphas):
        alphas = np.asarray(alphas, dtype=np.float64)
        lo, hi = self.levels[0], self.levels[-1]
        outside = alphas[(alphas < lo) | (alphas > hi)]
        if outside.size:
            raise ValueError(f"quantile level {outside[0]} is outside the head's levels "
                             f"[{lo}, {hi}]; refit with quantile levels covering it")
        q = _as_numpy(self._quantiles(raw, loc, scale))
        return _interpolate(q, np.asarray(self.levels), alphas)

    def sample(self, raw, loc, scale, n_samples):
        q = _as_numpy(self._quantiles(raw, loc, scale))
        u = torch.rand((n_samples,) + q.shape[:-1], dtype=torch.float64).numpy()
        u = self.levels[0] + u * (self.levels[-1] - self.levels[0])
        return _interpolate_at(q, np.asarray(self.levels), u)


def _interpolate(q, levels, alphas):
    """Piecewise-linear quantile function ``q`` ``(..., K)`` at ``levels`` read at ``alphas``."""
    j = np.clip(np.searchsorted(levels, alphas, side="right") - 1, 0, len(levels) - 2)
    w = (alphas - levels[j]) / (levels[j + 1] - levels[j])
    return q[..., j] * (1 - w) + q[..., j + 1] * w


def _interpolate_at(q, levels, u):
    """The same at per-draw levels ``u`` ``(n, ...)``: returns ``(n, ...)``."""
    j = np.clip(np.searchsorted(levels, u, side="right") - 1, 0, len(levels) - 2)
    w = (u - levels[j]) / (levels[j + 1] - levels[j])
    lower = np.take_along_axis(np.broadcast_to(q, u.shape + q.shape[-1:]), j[..., None], -1)[..., 0]
    upper = np.take_along_axis(np.broadcast_to(q, u.shape + q.shape[-1:]), j[..., None] + 1, -1)[..., 0]
    return lower * (1 - w) + upper * w


HEADS = {"normal": NormalHead, "studentt": StudentTHead, "negbinomial": NegativeBinomialHead,
         "quantile": QuantileHead}


def make_head(name: str, quantile_levels=None) -> Head:
    """The head called ``name`` (``"normal"``, ``"studentt"``, ``"negbinomial"``,
    ``"quantile"``); ``quantile_levels`` for the quantile head."""
    if name not in HEADS:
        raise ValueError(f"likelihood must be one of {sorted(HEADS)}, got {name!r}")
    if name == "quantile":
        return QuantileHead() if quantile_levels is None else QuantileHead(quantile_levels)
    return HEADS[name]()

