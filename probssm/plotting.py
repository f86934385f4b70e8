"""Plots shared by all estimators (matplotlib, imported lazily)."""

from __future__ import annotations

import numpy as np


def _as_plot_x(index):
    return index.to_timestamp() if hasattr(index, "to_timestamp") else index


def plot_forecast(est, fh=10, coverage=(0.8, 0.95), ax=None, variable=None, show_smoothed=True, X=None):
    """History, smoothed signal with a 95 % band (where the estimator has one) and forecasts with
    nested prediction bands, for one variable of a fitted estimator. Each forecast step gets a
    marker and an error bar spanning the widest band, so that a 1-step forecast shows too.
    Returns the Axes."""
    import matplotlib.pyplot as plt

    columns = est._y.columns
    variable = columns[0] if variable is None else variable
    if variable not in columns:
        raise ValueError(f"variable {variable!r} not among {columns}")
    j = columns.index(variable)
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 4))
    x_hist = _as_plot_x(est._y.index)
    ax.plot(x_hist, est._y.values[:, j], color="0.2", lw=1.2, label="observed")
    if show_smoothed and hasattr(est, "smoothed_signal"):
        sig = est.smoothed_signal()
        m, s = sig[(variable, "mean")].to_numpy(), sig[(variable, "std")].to_numpy()
        ax.plot(x_hist, m, color="C0", lw=1.5, label="smoothed")
        ax.fill_between(x_hist, m - 1.96 * s, m + 1.96 * s, color="C0", alpha=0.2, lw=0,
                        label="smoothed 95 %")
    coverages = sorted(np.atleast_1d(coverage), reverse=True)
    intervals = est.predict_interval(fh, X=X, coverage=coverages)
    mean = est.predict(fh, X=X)
    mean = mean if mean.ndim == 1 else mean[variable]
    x_fc = _as_plot_x(intervals.index)
    for k, c in enumerate(coverages):
        ax.fill_between(x_fc, intervals[(variable, c, "lower")], intervals[(variable, c, "upper")],
                        color="C1", alpha=0.18 + 0.17 * k, lw=0, label=f"{c:.0%} interval")
    _draw_forecast_points(ax, x_fc, mean.to_numpy(), intervals, variable, coverages[0])
    ax.set_ylabel(variable)
    ax.legend(loc="best", fontsize="small", frameon=False)
    return ax


def _draw_forecast_points(ax, x, mean, intervals, variable, coverage):
    """The forecast line with a marker and an error bar (the widest interval) at every step:
    bands and lines drawn over a single step are invisible, so a 1-step forecast needs these."""
    lower = mean - intervals[(variable, coverage, "lower")].to_numpy()
    upper = intervals[(variable, coverage, "upper")].to_numpy() - mean
    ax.plot(x, mean, color="C1", lw=1.8, marker="o", ms=4, label="forecast")
    ax.errorbar(x, mean, yerr=np.vstack([lower, upper]), fmt="none", ecolor="C1", elinewidth=1.0,
                capsize=3)


def plot_components(est, coverage=0.9, fig=None):
    """One panel for the data with the smoothed signal, then one per smoothed component of
    ``est.components()`` with a central ``coverage`` band. Returns the Figure."""
    import matplotlib.pyplot as plt
    from scipy import stats

    comps = est.components()
    names = list(dict.fromkeys(name for name, _ in comps.columns))
    if fig is None:
        fig = plt.figure(figsize=(9, 2.2 * (len(names) + 1)))
    axes = fig.subplots(len(names) + 1, 1, sharex=True, squeeze=False)[:, 0]
    x = _as_plot_x(est._y.index)
    z = stats.norm.ppf(0.5 + coverage / 2)
    variable = est._y.columns[0]
    sig = est.smoothed_signal()
    axes[0].plot(x, est._y.values[:, 0], color="0.2", lw=1.0, label="observed")
    axes[0].plot(x, sig[(variable, "mean")], color="C0", lw=1.4, label="smoothed signal")
    axes[0].legend(loc="best", fontsize="small", frameon=False)
    for ax, name in zip(axes[1:], names):
        m, s = comps[(name, "mean")].to_numpy(), comps[(name, "std")].to_numpy()
        ax.plot(x, m, color="C0", lw=1.3)
        ax.fill_between(x, m - z * s, m + z * s, color="C0", alpha=0.2, lw=0)
        ax.set_title(f"{name} (smoothed, {coverage:.0%} band)", fontsize="small", loc="left")
    fig.tight_layout()
    return fig
