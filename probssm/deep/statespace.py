r"""The linear-Gaussian model of :class:`~probssm.deep.DeepStateForecaster`, in PyTorch: its
structure (local linear trend and dummy seasonality), the exact likelihood through
``pyro.distributions.GaussianHMM``, filtering and the predictive moments.

Per series, with state :math:`x_t \in \mathbb R^n` (level, slope, :math:`s - 1` seasonal
effects) and the time-varying parameters :math:`\theta_t = (\sigma^\text{level}_t,
\sigma^\text{slope}_t, \sigma^\text{season}_t, \sigma^\text{obs}_t, d_t)` that the network emits:

.. math::

    x_0 &\sim \mathcal N(F m_0, F P_0 F^\top + Q_0), \qquad
    x_t = F x_{t-1} + \eta_t, \quad \eta_t \sim \mathcal N(0, Q_t), \\
    y_t &= H x_t + d_t + \varepsilon_t, \qquad \varepsilon_t \sim \mathcal N(0, (\sigma^\text{obs}_t)^2),

:math:`Q_t = \operatorname{diag}\big((\sigma^\text{level}_t)^2, (\sigma^\text{slope}_t)^2,
(\sigma^\text{season}_t)^2, 0, \dots\big) + 10^{-4} I` (the floor keeps every
:math:`Q_t` well conditioned: ``GaussianHMM`` works with precisions, and with a floor of
:math:`10^{-8}` its log-likelihood was off by :math:`10^{-6}` in float64), :math:`F` the local-linear-trend block
:math:`\begin{psmallmatrix}1 & 1\\ 0 & 1\end{psmallmatrix}` beside the dummy-seasonal block
(first row :math:`-1`, identity below), :math:`H = (1, 0, 1, 0, \dots, 0)`. This is
``GaussianHMM``'s convention: its initial state :math:`z_{-1} \sim \mathcal N(m_0, P_0)` is moved
once by :math:`F` before the first observation. In :mod:`probssm.kalman`'s convention (transition
from :math:`t` to :math:`t + 1` stored at :math:`t`) it is the model with initial moments
:math:`(F m_0, F P_0 F^\top + Q_0)` and transition covariance :math:`Q_{t+1}` at :math:`t`
(:func:`to_kalman`).

A missing :math:`y_t` (NaN) enters ``GaussianHMM`` as :math:`y_t = 0` with :math:`H_t = 0` and
unit noise: the step then carries no information on the state and contributes the constant
:math:`\log \mathcal N(0; 0, 1)`, which :func:`log_likelihood` subtracts, so the result is the
exact likelihood of the observed values.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from pyro import distributions as dist

__all__ = [
    "N_OUTPUTS",
    "Structure",
    "filter_smooth",
    "filtered",
    "log_likelihood",
    "observation_vector",
    "predictive_moments",
    "simulate",
    "time_varying",
    "to_kalman",
    "transition_matrix",
]

N_OUTPUTS = 5
"""Raw network outputs per step: level, slope and season noise, observation noise, offset."""
_JITTER = 1e-4
_LOG_UNIT = -0.5 * math.log(2 * math.pi)


class Structure:
    """Which components the state holds: ``trend`` (a slope) and ``season_length`` :math:`s`
    (1: no seasonality). ``n`` is the state dimension."""

    def __init__(self, trend: bool, season_length: int):
        self.trend, self.season_length = bool(trend), int(season_length)
        self.n = 1 + int(self.trend) + max(self.season_length - 1, 0)
        self.season_start = 1 + int(self.trend)


def transition_matrix(s: Structure, dtype=torch.float64) -> torch.Tensor:
    """:math:`F` ``(n, n)`` (column convention :math:`x_t = F x_{t-1}`)."""
    F = torch.zeros(s.n, s.n, dtype=dtype)
    F[0, 0] = 1.0
    if s.trend:
        F[0, 1] = F[1, 1] = 1.0
    k = s.season_start
    if s.season_length > 1:
        F[k, k:] = -1.0
        for j in range(1, s.season_length - 1):
            F[k + j, k + j - 1] = 1.0
    return F


def observation_vector(s: Structure, dtype=torch.float64) -> torch.Tensor:
    """:math:`H` as a vector ``(n,)``."""
    H = torch.zeros(s.n, dtype=dtype)
    H[0] = 1.0
    if s.season_length > 1:
        H[s.season_start] = 1.0
    return H


def time_varying(s: Structure, raw: torch.Tensor):
    """The per-step parameters from raw outputs ``(B, T, 5)``: transition covariances
    :math:`Q_t` ``(B, T, n, n)``, observation standard deviations :math:`\\sigma^\\text{obs}_t`
    ``(B, T)`` and offsets :math:`d_t` ``(B, T)`` (softplus keeps the deviations positive)."""
    sd = torch.nn.functional.softplus(raw[..., :4]) + 1e-4
    diag = torch.zeros(raw.shape[:-1] + (s.n,), dtype=raw.dtype, device=raw.device)
    diag[..., 0] = sd[..., 0] ** 2
    if s.trend:
        diag[..., 1] = sd[..., 1] ** 2
    if s.season_length > 1:
        diag[..., s.season_start] = sd[..., 2] ** 2
    Q = torch.diag_embed(diag + _JITTER)
    return Q, sd[..., 3], raw[..., 4]


def _hmm(s: Structure, initial: dist.MultivariateNormal, Q, obs_sd, offset, y):
    """``GaussianHMM`` over ``y`` ``(B, T)`` (NaN missing) and the observations it reads."""
    B, T = y.shape
    observed = ~torch.isnan(y)
    F = transition_matrix(s, Q.dtype).to(Q.device)
    H = observation_vector(s, Q.dtype).to(Q.device)
    obs_matrix = torch.where(observed[..., None], H, torch.zeros_like(H))[..., None]  # (B, T, n, 1)
    noise = torch.where(observed, obs_sd, torch.ones_like(obs_sd))[..., None, None]
    value = torch.where(observed, y - offset, torch.zeros_like(y))[..., None]
    hmm = dist.GaussianHMM(
        initial, F.T.expand(B, T, s.n, s.n), dist.MultivariateNormal(torch.zeros_like(Q[..., 0]), Q),
        obs_matrix, dist.MultivariateNormal(torch.zeros_like(value), scale_tril=noise), duration=T)
    return hmm, value, observed


def log_likelihood(s: Structure, initial, Q, obs_sd, offset, y) -> torch.Tensor:
    """:math:`\\log p(y_{0:T})` per series ``(B,)`` of ``y`` ``(B, T)`` (NaN missing) given the
    state :math:`z_{-1} \\sim` ``initial`` and the per-step parameters."""
    hmm, value, observed = _hmm(s, initial, Q, obs_sd, offset, y)
    return hmm.log_prob(value) - _LOG_UNIT * (~observed).sum(-1).to(value.dtype)


def filtered(s: Structure, initial, Q, obs_sd, offset, y) -> dist.MultivariateNormal:
    """:math:`p(x_{T-1} \\mid y_{0:T})`, batch ``(B,)``: the next call's ``initial``."""
    hmm, value, _ = _hmm(s, initial, Q, obs_sd, offset, y)
    return hmm.filter(value)


def filter_smooth(s: Structure, initial, Q, obs_sd, offset, y, smooth: bool = False):
    r"""Filtered (or, with ``smooth``, RTS-smoothed) state means ``(B, T, n)`` and covariances
    ``(B, T, n, n)`` of ``y`` ``(B, T)`` (NaN missing) by the sequential Kalman recursions:
    predict :math:`m^-_t = F m_{t-1}`, :math:`P^-_t = F P_{t-1} F^\top + Q_t`; at an observed
    step update with the gain :math:`K_t = P^-_t H^\top / (H P^-_t H^\top + \sigma_t^2)`; smooth
    backwards with :math:`G_t = P_t F^\top (P^-_{t+1})^{-1}`."""
    F = transition_matrix(s, Q.dtype).to(Q.device)
    H = observation_vector(s, Q.dtype).to(Q.device)
    m, P = initial.loc, initial.covariance_matrix
    means, covs, pred = [], [], []
    for t in range(y.shape[1]):
        m, P = m @ F.T, F @ P @ F.T + Q[:, t]
        pred.append((m, P))
        observed = ~torch.isnan(y[:, t])
        PH = P @ H
        S = PH @ H + obs_sd[:, t] ** 2
        K = PH / S[:, None]
        innovation = torch.where(observed, y[:, t] - m @ H - offset[:, t], torch.zeros_like(S))
        m = m + K * innovation[:, None]
        P = torch.where(observed[:, None, None], P - K[:, :, None] * K[:, None, :] * S[:, None, None], P)
        P = 0.5 * (P + P.transpose(-1, -2))
        means.append(m)
        covs.append(P)
    if smooth:
        for t in range(y.shape[1] - 2, -1, -1):
            m_next, P_next = pred[t + 1]
            G = torch.linalg.solve(P_next, F @ covs[t]).transpose(-1, -2)
            means[t] = means[t] + ((means[t + 1] - m_next)[:, None, :] @ G.transpose(-1, -2))[:, 0]
            covs[t] = covs[t] + G @ (covs[t + 1] - P_next) @ G.transpose(-1, -2)
    return torch.stack(means, 1), torch.stack(covs, 1)


def predictive_moments(s: Structure, state: dist.MultivariateNormal, Q, obs_sd, offset):
    """Means and variances ``(B, h)`` of :math:`y_{T+k}` for the ``h`` steps of ``Q``
    ``(B, h, n, n)``, ``obs_sd``, ``offset`` ``(B, h)`` from the filtered ``state``."""
    F = transition_matrix(s, Q.dtype).to(Q.device)
    H = observation_vector(s, Q.dtype).to(Q.device)
    m, P = state.loc, state.covariance_matrix
    means, variances = [], []
    for k in range(Q.shape[1]):
        m = m @ F.T
        P = F @ P @ F.T + Q[:, k]
        means.append(m @ H + offset[:, k])
        variances.append(H @ P @ H + obs_sd[:, k] ** 2)
    return torch.stack(means, 1), torch.stack(variances, 1)


def simulate(s: Structure, state: dist.MultivariateNormal, Q, obs_sd, offset, n_samples: int):
    """Joint paths ``(n_samples, B, h)`` from the filtered ``state`` (torch's global generator)."""
    F = transition_matrix(s, Q.dtype).to(Q.device)
    H = observation_vector(s, Q.dtype).to(Q.device)
    x = state.sample((n_samples,))
    noise = dist.MultivariateNormal(torch.zeros_like(Q[..., 0]), Q)
    paths = []
    for k in range(Q.shape[1]):
        x = x @ F.T + noise.sample((n_samples,))[:, :, k]
        eps = torch.randn((n_samples,) + offset[:, k].shape, dtype=offset.dtype, device=offset.device)
        paths.append(x @ H + offset[:, k] + obs_sd[:, k] * eps)
    return torch.stack(paths, -1)


def to_kalman(s: Structure, m0, P0, Q, obs_sd, offset) -> dict:
    """The same model for series ``b`` in :mod:`probssm.kalman`'s convention, as NumPy arrays
    for :class:`probssm.kalman.LGSSM`: ``transition_matrix`` ``(n, n)``, ``transition_cov``
    ``(T, n, n)`` (:math:`Q_{t+1}` at :math:`t`; the last entry, used only past the data, repeats
    :math:`Q_{T-1}`), ``observation_matrix`` ``(1, n)``, ``observation_cov`` ``(T, 1, 1)``,
    ``observation_offset`` ``(T, 1)``, ``initial_mean`` ``(n,)``, ``initial_cov`` ``(n, n)``.
    Inputs as in :func:`log_likelihood` for one series: ``m0`` ``(n,)``, ``P0`` ``(n, n)``,
    ``Q`` ``(T, n, n)``, ``obs_sd``, ``offset`` ``(T,)``."""
    F = transition_matrix(s, Q.dtype).numpy()
    Q, m0, P0 = Q.detach().numpy(), m0.detach().numpy(), P0.detach().numpy()
    return {
        "transition_matrix": F,
        "transition_cov": np.concatenate([Q[1:], Q[-1:]]),
        "observation_matrix": observation_vector(s, torch.float64).numpy()[None, :],
        "observation_cov": (obs_sd.detach().numpy() ** 2)[:, None, None],
        "observation_offset": offset.detach().numpy()[:, None],
        "initial_mean": F @ m0,
        "initial_cov": F @ P0 @ F.T + Q[0],
    }
