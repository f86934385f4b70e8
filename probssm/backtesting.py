r"""Backtesting: forecasts from several cutoffs of one series, scored against what followed.

:func:`backtest` places ``n_windows`` cutoffs ``step`` apart so that the last window's ``h``
forecast steps end with the data (statsforecast's ``cross_validation`` rule), trains the
estimator on an expanding or sliding window before each cutoff (refitting it, or fitting once
and absorbing the later observations with ``update``), and returns a
:class:`BacktestResult`: the tidy forecast table, the metrics of :mod:`probssm.metrics` per
window and overall, and a plot.

With :math:`T` observations and ``test_size`` :math:`= h + \text{step}\,(n_\text{windows} - 1)`,
window :math:`i = 0, \dots, n_\text{windows} - 1` trains on the observations before position
:math:`c_i = T - \text{test\_size} + i\,\text{step}` and forecasts positions
:math:`c_i, \dots, c_i + h - 1`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import _data, distributed, metrics
from ._progress import progress
from .frontend_fit import clone

__all__ = ["backtest", "BacktestResult", "interval_score"]

WINDOWS = ("expanding", "sliding")
STRATEGIES = ("refit", "update")


@dataclass
class BacktestResult:
    """What :func:`backtest` returns.

    Attributes
    ----------
    forecasts : DataFrame
        One row per window, forecast step (and variable, for a multivariate ``y``): columns
        ``window`` (0, 1, ...), ``cutoff`` (the last training label), ``time`` (the forecast
        label), ``step`` (1..h), ``variable`` (multivariate ``y`` only), ``y`` (the observed
        value, NaN where missing), ``mean`` (the predictive mean), ``std`` (the predictive
        standard deviation, for estimators with ``predict_var``), ``lower_<p>`` / ``upper_<p>``
        (the bounds of the central ``p`` % interval for each coverage, e.g. ``lower_80``).
    metrics : DataFrame
        One row per window (index ``window``): ``cutoff``, ``mase`` (scaled by the training
        window's in-sample seasonal naive error, season ``sp``), ``crps`` (of the Gaussian with
        the predictive mean and standard deviation: exact for Gaussian predictive distributions;
        only with ``std``), and per coverage ``coverage_<p>`` (the fraction of observations inside
        the interval) and ``interval_score_<p>`` (Gneiting and Raftery's interval score, lower is
        better).
    summary : Series
        The same metrics over all windows: ``mase`` the mean of the windows' (each window has its
        own scale), the others the mean over every forecast point.
    y : Series or DataFrame
        The backtested data (for :meth:`plot`).
    """

    forecasts: pd.DataFrame
    metrics: pd.DataFrame
    summary: pd.Series
    y: pd.Series | pd.DataFrame

    def plot(self, ax=None, variable=None, coverage=None, history=None):
        """The data, every window's forecast mean with its ``coverage`` band (the widest
        coverage by default) and the cutoffs as dotted vertical lines; ``history``
        observations before the first cutoff are shown (default: three times the backtested
        span). Returns the matplotlib Axes."""
        return _plot_backtest(self, ax=ax, variable=variable, coverage=coverage, history=history)


def backtest(estimator, y, h: int, n_windows: int, step: int = 1, *, X=None, window="expanding",
             window_length=None, strategy="refit", coverage=(0.8, 0.95), sp: int = 1,
             verbose: bool = True) -> BacktestResult:
    r"""Backtest ``estimator`` on ``y`` from ``n_windows`` cutoffs.

    Parameters
    ----------
    estimator : probssm estimator
        Never fitted itself: clones are.
    y : Series, DataFrame or array
        One series (a DataFrame: its columns are the variables of one multivariate series),
        on a time index forecasts can continue. For many series use
        :meth:`probssm.Forecaster.cross_validation`.
    h : int
        Forecast steps per window, :math:`h \ge 1`.
    n_windows : int
        Number of cutoffs.
    step : int, default 1
        Observations between consecutive cutoffs.
    X : DataFrame or array, optional
        Exogenous regressors for every row of ``y`` (for estimators that take them).
    window : {"expanding", "sliding"}
        ``"expanding"``: train on every observation before the cutoff; ``"sliding"``: on the
        last ``window_length`` of them.
    window_length : int, optional
        Training length of a sliding window (default: the first window's, :math:`c_0`).
    strategy : {"refit", "update"}
        ``"refit"``: fit a clone on every window; ``"update"``: fit once on the first window,
        then :meth:`~probssm.base.BaseForecaster.update` it with the observations between
        cutoffs (the parameters stay, the states are filtered on). ``"update"`` needs an
        expanding window.
    coverage : float or sequence of float
        Coverages of the prediction intervals, in (0, 1).
    sp : int, default 1
        Seasonal period of MASE's naive benchmark.
    verbose : bool, default True
        A progress bar over the windows (only when stderr is a terminal; not with Dask).

    Returns
    -------
    BacktestResult

    Raises
    ------
    ValueError
        For ``h``, ``n_windows``, ``step`` or ``window_length`` below 1, fewer observations
        than the windows need, an unknown ``window`` or ``strategy``, ``"update"`` with a
        sliding window, or a panel ``y``.

    Notes
    -----
    Missing observations (NaN) are left out of the metrics; MASE's scale uses the training
    window's observed values. A window whose forecast period has no observed value gets NaN
    metrics.

    With ``strategy="refit"`` and an estimator set to ``set_config(backend="dask")`` (see
    :mod:`probssm.distributed`), each window's fit and forecast is one task on the estimator's
    Dask client (:func:`probssm.distributed.dask.map_ordered`); the result is the same.
    """
    h = _data.check_int(h, "h", 1)
    n_windows = _data.check_int(n_windows, "n_windows", 1)
    step = _data.check_int(step, "step", 1)
    sp = _data.check_int(sp, "sp", 1)
    coverages = _data.check_coverage(coverage)
    if window not in WINDOWS:
        raise ValueError(f"window must be one of {WINDOWS}, got {window!r}")
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    y, X = _series(y, X)
    cutoffs = _cutoff_positions(len(y), h, n_windows, step)
    length = _window_length(window, window_length, strategy, cutoffs[0])
    config = estimator.get_config() if callable(getattr(estimator, "get_config", None)) else {}
    if strategy == "refit" and distributed.uses_dask(config):
        from .distributed.dask import map_ordered

        template = clone(estimator).set_config(backend="local", client=None)
        refit = functools.partial(_refit_window, template, y, X, cutoffs, length, h, coverages, sp)
        rows, window_metrics = zip(*map_ordered(refit, range(n_windows), client=config["client"]))
    else:
        rows, window_metrics = [], []
        fitted = None
        for i in progress(range(n_windows), show=verbose, desc="backtest", unit="window"):
            stop = cutoffs[i]
            start = 0 if length is None else stop - length
            if strategy == "refit" or fitted is None:
                fitted = _fit(clone(estimator), y.iloc[start:stop], _rows(X, start, stop))
            else:
                fitted = _absorb(fitted, y.iloc[cutoffs[i - 1]:stop], _rows(X, cutoffs[i - 1], stop))
            table = _window_forecast(fitted, y, stop, h, coverages, _rows(X, stop, stop + h))
            rows.append(table.assign(window=i).pipe(_first_columns))
            window_metrics.append(_window_metrics(table, y.iloc[start:stop], coverages, sp))
    forecasts = pd.concat(rows, ignore_index=True)
    per_window = pd.DataFrame(window_metrics, index=pd.RangeIndex(n_windows, name="window"))
    per_window.insert(0, "cutoff", y.index[cutoffs - 1])
    return BacktestResult(forecasts, per_window, _summary(forecasts, per_window, coverages), y)


# -- windows ----------------------------------------------------------------------------------
def _series(y, X):
    """``y`` as a Series / DataFrame on a continuable time index (a copy), ``X`` as a DataFrame
    on the same index (or None)."""
    if _data.is_panel(y, univariate=False):
        raise ValueError("backtest takes one series; for a panel or long frame use "
                         "probssm.Forecaster(...).cross_validation(df, h, n_windows, step_size)")
    data = _data.as_series_data(y)
    out = pd.Series(data.values[:, 0], index=data.index, name=data.columns[0]) if data.is_series \
        else pd.DataFrame(data.values, index=data.index, columns=data.columns)
    if X is None:
        return out, None
    values, columns = _data.as_exog(X, data.index)
    return out, pd.DataFrame(values, index=data.index, columns=columns)


def _cutoff_positions(T: int, h: int, n_windows: int, step: int) -> np.ndarray:
    """Training ends :math:`c_i` (positions, exclusive) of the windows."""
    test_size = h + step * (n_windows - 1)
    if T - test_size < 1:
        raise ValueError(
            f"y has {T} observations, too few for h={h}, n_windows={n_windows}, step={step}: the "
            f"windows span h + step * (n_windows - 1) = {test_size} observations and at least one "
            "must precede them"
        )
    return T - test_size + step * np.arange(n_windows)


def _window_length(window: str, window_length, strategy: str, first: int):
    """Sliding windows' training length (None for expanding windows)."""
    if window == "expanding":
        if window_length is not None:
            raise ValueError("window_length applies to window='sliding' only")
        return None
    if strategy == "update":
        raise ValueError("strategy='update' keeps every observation it has seen, so it needs "
                         "window='expanding'; use strategy='refit' for sliding windows")
    length = first if window_length is None else _data.check_int(window_length, "window_length", 1)
    if length > first:
        raise ValueError(f"window_length={length} is longer than the {first} observations before "
                         "the first cutoff")
    return length


def _rows(X, start: int, stop: int):
    """Rows ``start:stop`` of the regressors (None without)."""
    return None if X is None else X.iloc[start:stop]


def _refit_window(estimator, y, X, cutoffs, length, h: int, coverages: list, sp: int, i: int):
    """Window ``i`` of a refitting backtest on its own (a task on a Dask worker): a clone of
    ``estimator`` fitted before cutoff ``cutoffs[i]``, its forecast table and metrics."""
    stop = cutoffs[i]
    start = 0 if length is None else stop - length
    fitted = _fit(clone(estimator), y.iloc[start:stop], _rows(X, start, stop))
    table = _window_forecast(fitted, y, stop, h, coverages, _rows(X, stop, stop + h))
    return (table.assign(window=i).pipe(_first_columns),
            _window_metrics(table, y.iloc[start:stop], coverages, sp))


def _fit(estimator, y, X):
    return estimator.fit(y) if X is None else estimator.fit(y, X=X)


def _absorb(estimator, y_new, X_new):
    """``estimator.update`` with the observations after its data (and their regressors)."""
    return estimator.update(y_new) if X_new is None else estimator.update(y_new, X_new=X_new)


# -- one window ----------------------------------------------------------------------------------
def _window_forecast(est, y, stop: int, h: int, coverages: list, X) -> pd.DataFrame:
    """The forecast of steps ``1..h`` after position ``stop`` against the observations, long
    over variables: columns ``cutoff``, ``time``, ``step``, ``variable``, ``y``, ``mean``,
    (``std``), ``lower_<p>``, ``upper_<p>``."""
    variables = [y.name] if isinstance(y, pd.Series) else list(y.columns)
    m = len(variables)
    observed = y.iloc[stop:stop + h].to_numpy(dtype=np.float64).reshape(h, m)
    mean = np.asarray(est.predict(h, X=X), dtype=np.float64).reshape(h, m)
    columns = {"y": observed, "mean": mean}
    std = _predictive_std(est, h, X)
    if std is not None:
        columns["std"] = std.reshape(h, m)
    bands = est.predict_interval(h, X=X, coverage=coverages)
    for c in coverages:
        for side in ("lower", "upper"):
            columns[f"{side}_{_percent(c)}"] = np.column_stack(
                [bands[(var, c, side)].to_numpy(dtype=np.float64) for var in _band_variables(bands)])
    frame = {"cutoff": y.index[[stop - 1]].repeat(h * m), "time": y.index[stop:stop + h].repeat(m),
             "step": np.repeat(np.arange(1, h + 1), m), "variable": np.tile(variables, h)}
    frame.update({name: values.reshape(-1) for name, values in columns.items()})
    return pd.DataFrame(frame)


def _band_variables(bands: pd.DataFrame) -> list:
    """The variables of a ``(variable, coverage, side)`` interval frame, in column order."""
    return list(dict.fromkeys(key[0] for key in bands.columns))


def _predictive_std(est, h: int, X):
    """:math:`\\sqrt{\\mathrm{Var}[y_{c+k}]}` ``(h, m)`` from ``predict_var``, or None for an
    estimator without predictive variances."""
    predict_var = getattr(est, "predict_var", None)
    if predict_var is None:
        return None
    try:
        var = predict_var(h) if X is None else predict_var(h, X=X)
    except (NotImplementedError, AttributeError):  # families whose forecasts are not moments
        return None
    return np.sqrt(np.asarray(var, dtype=np.float64))


def _percent(c: float) -> str:
    return f"{100 * c:g}"


def _first_columns(table: pd.DataFrame) -> pd.DataFrame:
    """``window`` first; ``variable`` only for multivariate data."""
    order = ["window", *[c for c in table.columns if c != "window"]]
    table = table[order]
    return table.drop(columns="variable") if table["variable"].nunique() == 1 else table


def _window_metrics(table: pd.DataFrame, train, coverages: list, sp: int) -> dict:
    """MASE of one window, then :func:`_scores` of its rows."""
    m = table["variable"].nunique()
    train_values = np.asarray(train, dtype=np.float64).reshape(len(train), m)
    train_values = train_values[~np.isnan(train_values).any(axis=1)]
    return {"mase": _mase(table, train_values, m, sp), **_scores(table, coverages)}


def _scores(table: pd.DataFrame, coverages: list) -> dict:
    """CRPS (with ``std``), coverage and interval score over the observed rows of ``table``
    (NaN when none was observed)."""
    names = [*(["crps"] if "std" in table else []),
             *[f"{kind}_{_percent(c)}" for c in coverages for kind in ("coverage", "interval_score")]]
    rows = table[table["y"].notna()]
    if not len(rows):
        return dict.fromkeys(names, np.nan)
    obs = rows["y"].to_numpy()
    out = {}
    if "std" in rows:
        out["crps"] = metrics.crps_gaussian(obs, rows["mean"].to_numpy(), rows["std"].to_numpy())
    for c in coverages:
        p = _percent(c)
        lower, upper = rows[f"lower_{p}"].to_numpy(), rows[f"upper_{p}"].to_numpy()
        out[f"coverage_{p}"] = metrics.interval_coverage(obs, lower, upper)
        out[f"interval_score_{p}"] = interval_score(obs, lower, upper, c)
    return {name: out[name] for name in names}


def _mase(table: pd.DataFrame, train_values: np.ndarray, m: int, sp: int) -> float:
    """MASE of the window's observed forecast rows (a multivariate window keeps the steps where
    every variable was observed)."""
    obs = table["y"].to_numpy().reshape(-1, m)
    mean = table["mean"].to_numpy().reshape(-1, m)
    rows = ~np.isnan(obs).any(axis=1)
    if not rows.any():
        return np.nan
    return metrics.mase(obs[rows], mean[rows], train_values, sp=sp)


def interval_score(y, lower, upper, coverage: float) -> float:
    r"""Mean interval score of central intervals of coverage :math:`1 - \alpha`
    (Gneiting and Raftery 2007, eq. 43):

    .. math::

        S_\alpha(l, u; y) = (u - l) + \tfrac{2}{\alpha}(l - y)\,1\{y < l\}
            + \tfrac{2}{\alpha}(y - u)\,1\{y > u\}
            = \tfrac{2}{\alpha}\big[\rho_{\alpha/2}(y - l) + \rho_{1 - \alpha/2}(y - u)\big],

    computed by the second form with :func:`probssm.metrics.pinball_loss` (:math:`\rho` the
    pinball loss). ``y``, ``lower``, ``upper``: arrays of one shape. Lower is better.
    """
    alpha = 1.0 - float(coverage)
    return float(2.0 / alpha * (metrics.pinball_loss(y, lower, alpha / 2)
                                + metrics.pinball_loss(y, upper, 1.0 - alpha / 2)))


def _summary(forecasts: pd.DataFrame, per_window: pd.DataFrame, coverages: list) -> pd.Series:
    """Metrics over all windows: the mean MASE of the windows, the others over every point."""
    return pd.Series({"mase": float(per_window["mase"].mean()), **_scores(forecasts, coverages)},
                     name="overall")


# -- plot ------------------------------------------------------------------------------------
def _plot_backtest(result: BacktestResult, ax=None, variable=None, coverage=None, history=None):
    """See :meth:`BacktestResult.plot`."""
    import matplotlib.pyplot as plt

    from .plotting import _as_plot_x

    y = result.y if isinstance(result.y, pd.DataFrame) else result.y.to_frame()
    variable = y.columns[0] if variable is None else variable
    if variable not in y.columns:
        raise ValueError(f"variable {variable!r} not among {list(y.columns)}")
    bands = sorted(float(c[len("coverage_"):]) / 100 for c in result.metrics if c.startswith("coverage_"))
    c = max(bands) if coverage is None else float(coverage)
    if c not in bands:
        raise ValueError(f"coverage {c} was not backtested; choose one of {bands}")
    table = result.forecasts
    if "variable" in table:
        table = table[table["variable"] == variable]
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 4))
    first = int(np.searchsorted(y.index, result.metrics["cutoff"].iloc[0])) + 1
    history = 3 * (len(y) - first) if history is None else _data.check_int(history, "history", 0)
    shown = y.iloc[max(0, first - history):]
    ax.plot(_as_plot_x(shown.index), shown[variable].to_numpy(), color="0.2", lw=1.2, label="observed")
    for i, (_, part) in enumerate(table.groupby("window", sort=True)):
        x = _as_plot_x(pd.Index(part["time"]))
        ax.plot(x, part["mean"], color=f"C{i % 10}", lw=1.5, marker="o", ms=3)
        ax.fill_between(x, part[f"lower_{_percent(c)}"], part[f"upper_{_percent(c)}"],
                        color=f"C{i % 10}", alpha=0.2, lw=0)
        ax.axvline(_as_plot_x(pd.Index(part["cutoff"].iloc[:1]))[0], color=f"C{i % 10}", ls=":", lw=1)
    ax.set_title(f"backtest: {table['window'].nunique()} windows, {_percent(c)} % intervals")
    ax.set_ylabel(str(variable))
    return ax
