r"""Training and forecast windows of the deep forecasters: calendar features, reversible instance
normalisation and the tensors of a batch of windows.

A *window* of series :math:`b` at origin :math:`t` is the lookback :math:`y_{b,t-L:t}` (the
network's input) and the targets :math:`y_{b,t:t+H}`. Reversible instance normalisation (RevIN,
Kim et al. 2022, without its learned affine map) standardises each window by the mean and
standard deviation of its observed lookback values,

.. math::

    z_{b,s} = (y_{b,s} - \ell_{b,t}) / s_{b,t}, \qquad
    \ell_{b,t} = \overline{y}_{b,t-L:t}, \quad
    s_{b,t} = \max\big(\operatorname{sd}(y_{b,t-L:t}),\ 10^{-4}\max(|\ell_{b,t}|, 1)\big),

and the head maps the forecast back (:mod:`probssm.deep.heads`); a count head scales by the
mean level only (:math:`\ell = 0`, :math:`s = 1 + \overline{y}`), and ``revin=False`` leaves the
data as they are (:math:`\ell = 0`, :math:`s = 1`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

__all__ = ["WindowBatch", "calendar_features", "gather_windows", "window_stats"]


def _cycle(position, period) -> list:
    angle = 2 * np.pi * np.asarray(position, dtype=np.float64) / period
    return [np.sin(angle), np.cos(angle)]


def calendar_features(index: pd.Index) -> np.ndarray:
    """Calendar features ``(len(index), c)``: sine and cosine of the position in the cycles the
    index's frequency has (month of year for monthly data; quarter of year; week of year; day
    of week and of year for daily data; hour of day and day of week for hourly and finer data).
    Integer and yearly indices have none (``c = 0``)."""
    if not isinstance(index, (pd.PeriodIndex, pd.DatetimeIndex)):
        return np.zeros((len(index), 0))
    code = (index.freqstr or "").lstrip("0123456789")
    if code.startswith(("M", "SM", "BM")) and not code.startswith("min"):
        cols = _cycle(index.month - 1, 12)
    elif code.startswith(("Q", "BQ")):
        cols = _cycle(index.quarter - 1, 4)
    elif code.startswith("W"):
        cols = _cycle(np.asarray(index.isocalendar().week if hasattr(index, "isocalendar")
                                 else index.week) - 1, 52.18)
    elif code.startswith(("D", "B", "C")):
        cols = _cycle(index.dayofweek, 7) + _cycle(index.dayofyear - 1, 365.25)
    elif code.startswith(("h", "H", "min", "T", "s", "S", "ms", "L", "us", "U", "ns", "N")):
        cols = _cycle(index.hour, 24) + _cycle(index.dayofweek, 7)
    else:
        cols = []
    return np.stack(cols, axis=-1) if cols else np.zeros((len(index), 0))


def window_stats(lookback: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Location and scale ``(n,)`` of lookback windows ``(n, L)`` (NaN missing) for ``mode``
    ``"revin"`` (mean, standard deviation with a floor), ``"mean"`` (0, 1 + mean) or ``"none"``
    (0, 1). A window without observed values gets (0, 1)."""
    n = lookback.shape[0]
    if mode == "none":
        return np.zeros(n), np.ones(n)
    observed = ~np.isnan(lookback)
    count = np.maximum(observed.sum(axis=1), 1)
    filled = np.where(observed, lookback, 0.0)
    loc = filled.sum(axis=1) / count
    if mode == "mean":
        return np.zeros(n), 1.0 + np.abs(loc)
    sd = np.sqrt(np.where(observed, (filled - loc[:, None]) ** 2, 0.0).sum(axis=1) / count)
    return loc, np.maximum(sd, 1e-4 * np.maximum(np.abs(loc), 1.0))


class WindowBatch(dict):
    """Tensors of a batch of ``n`` windows (a dict):

    ``inputs`` ``(n, L, 2 + c)``: normalised value (0 where missing), observed flag, covariates;
    ``mask`` ``(n, L)`` bool: observed lookback steps; ``future`` ``(n, H, c)``: covariates of the
    target steps; ``target`` ``(n, H)`` (0 where missing) and ``target_mask`` ``(n, H)``;
    ``loc``, ``scale`` ``(n,)``."""


def gather_windows(values: np.ndarray, covariates: np.ndarray, series: np.ndarray,
                   origins: np.ndarray, lookback: int, horizon: int, mode: str,
                   dtype: torch.dtype) -> WindowBatch:
    """The windows of ``series[i]`` at ``origins[i]`` from ``values`` ``(B, T)`` (NaN missing,
    targets past ``T`` missing) and ``covariates`` ``(B, T + horizon, c)``."""
    B = values.shape[0]
    padded = np.concatenate([values, np.full((B, horizon), np.nan)], axis=1)
    steps = origins[:, None] + np.arange(-lookback, horizon)[None, :]
    y = padded[series[:, None], steps]
    past, future = y[:, :lookback], y[:, lookback:]
    loc, scale = window_stats(past, mode)
    observed = ~np.isnan(past)
    z = np.where(observed, (np.nan_to_num(past) - loc[:, None]) / scale[:, None], 0.0)
    cov = covariates[series[:, None], steps]
    inputs = np.concatenate([z[..., None], observed[..., None].astype(np.float64), cov[:, :lookback]], axis=-1)
    as_t = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=dtype)
    return WindowBatch(
        inputs=as_t(inputs), mask=torch.as_tensor(observed), future=as_t(cov[:, lookback:]),
        target=as_t(np.nan_to_num(future)), target_mask=torch.as_tensor(~np.isnan(future)),
        loc=as_t(loc), scale=as_t(scale))
