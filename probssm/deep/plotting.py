"""Forecast plot of one series of a deep forecaster (matplotlib, imported lazily)."""

from __future__ import annotations

import numpy as np

from ..plotting import _as_plot_x


def plot_series_forecast(est, series, fh, coverage, ax, X, history):
    """The history of ``series`` (its last ``history`` steps) and the forecast with nested
    central bands at ``coverage``; returns the Axes."""
    import matplotlib.pyplot as plt

    ids = est.series_
    series = ids[0] if series is None else series
    if series not in ids:
        raise ValueError(f"series {series!r} is not among the fitted series {ids[:5]}{'...' if len(ids) > 5 else ''}")
    b = ids.index(series)
    coverages = sorted(np.atleast_1d(coverage), reverse=True)
    alphas = sorted({a for c in coverages for a in (0.5 - c / 2, 0.5 + c / 2)})
    mean, q, index = est._forecast_bands(fh, X, alphas)
    mean, q = mean[b], q[b]
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 3.5))
    y = est._y.values[:, b]
    start = 0 if history is None else max(0, len(y) - int(history))
    ax.plot(_as_plot_x(est._y.index[start:]), y[start:], color="0.2", lw=1.2, label="observed")
    x = _as_plot_x(index)
    for k, c in enumerate(coverages):
        ax.fill_between(x, q[:, alphas.index(0.5 - c / 2)], q[:, alphas.index(0.5 + c / 2)],
                        color="C1", alpha=0.18 + 0.17 * k, lw=0, label=f"{c:.0%} interval")
    ax.plot(x, mean, color="C1", lw=1.8, marker="o", ms=3, label="forecast")
    ax.set_title(str(series), fontsize="small", loc="left")
    ax.legend(loc="best", fontsize="small", frameon=False)
    return ax
