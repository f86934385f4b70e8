"""The plot of a fitted :class:`~probssm.gp.GaussianProcess` (matplotlib, imported lazily)."""

from __future__ import annotations

import numpy as np
from scipy import stats

from ..plotting import _as_plot_x

__all__ = ["plot_gp"]

# Points at which the posterior is drawn across the data's span (more if there are more data).
_GRID = 400


def plot_gp(est, fh=None, coverage=0.95, ax=None):
    """Observations, the posterior mean of :math:`f` with a central ``coverage`` band on a grid
    over the data (and between them), and for ``fh`` the forecast of :math:`y` with its
    predictive band. First output only. Returns the Axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(9, 4))
    t = est._axis.times()
    grid = np.linspace(t.min(), t.max(), max(_GRID, 2 * len(t)))
    mean, std = est.predict(grid, return_std=True)
    mean, std = mean.reshape(len(grid), -1)[:, 0], std.reshape(len(grid), -1)[:, 0]
    z = stats.norm.ppf(0.5 + coverage / 2)
    order = np.argsort(t, kind="stable")
    if est._axis.kind == "steps":
        x_data = _as_plot_x(est._y.index)
        x_grid = _interpolated_labels(x_data, grid)
    elif est._axis.kind == "days":
        x_data = est._y.index
        x_grid = est._y.index[0] + np.asarray(grid * 86400e9, dtype="timedelta64[ns]")
    else:
        x_data, x_grid = t, grid
    ax.plot(np.asarray(x_data)[order], est._y.values[order, 0], ".", color="0.2", ms=3, label="observed")
    ax.plot(x_grid, mean, color="C0", lw=1.5, label="posterior mean of f")
    ax.fill_between(x_grid, mean - z * std, mean + z * std, color="C0", alpha=0.2, lw=0,
                    label=f"{coverage:.0%} band of f")
    if fh is not None:
        intervals = est.predict_interval(fh, coverage=coverage)
        forecast = est.predict(fh, include_noise=True)
        variable = est._y.columns[0]
        x_fc = _as_plot_x(intervals.index) if hasattr(intervals.index, "to_timestamp") else intervals.index
        forecast = forecast if np.ndim(forecast) == 1 else forecast.iloc[:, 0]
        ax.plot(x_fc, np.asarray(forecast), color="C1", lw=1.5, marker="o", ms=3, label="forecast")
        ax.fill_between(x_fc, intervals[(variable, coverage, "lower")], intervals[(variable, coverage, "upper")],
                        color="C1", alpha=0.25, lw=0, label=f"{coverage:.0%} prediction band")
    ax.set_xlabel("time" if est._axis.kind != "values" else "t")
    ax.set_ylabel(str(est._y.columns[0]))
    ax.legend(loc="best", fontsize="small")
    return ax


def _interpolated_labels(labels, positions):
    """Plot coordinates at fractional positions of a regular index (dates interpolated)."""
    labels = np.asarray(labels)
    if np.issubdtype(labels.dtype, np.datetime64):
        ns = labels.astype("datetime64[ns]").astype(np.int64).astype(float)
        return np.interp(positions, np.arange(len(labels)), ns).astype(np.int64).astype("datetime64[ns]")
    return np.interp(positions, np.arange(len(labels)), labels.astype(float))
