"""``python -m probssm forecast``: fit a model to every series of the user's CSV or Parquet file
and write the forecast table (``forecast.csv``), a plot (``forecast.png``) and the model summary
(``summary.txt``) into an output folder.

Reading and checking the file is :mod:`probssm.cli_data`'s job; this module picks the model,
fits it (many series in one panel fit) and writes the outputs. Problems with the user's data
end the command with exit code 2 and a message naming them.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .cli_data import InputError, check_lengths, read_table, series_frame

__all__ = ["MODELS", "add_parser", "run", "build_model", "fit", "forecast_table", "min_observations"]

#: ``--model`` choices and what each fits (``m`` is ``--seasonal-period``).
MODELS = {
    "sarimax": "SARIMAX(order, seasonal order with m); default the airline model (0,1,1)(0,1,1)m",
    "auto": "AutoSARIMAX(seasonal_period=m): orders chosen by information criterion",
    "auto-uc": "AutoUC(seasonal_period=m): the structural specification chosen by information criterion",
    "uc": "UnobservedComponents: local linear trend plus a dummy seasonal of period m",
    "local-level": "LocalLevel: random walk plus noise",
    "gp": "GaussianProcess: constant + Matern52 (+ QuasiPeriodic(m)) kernel, hyperparameters by MLE",
}
# The plot draws this many series at most (the table and the summary hold them all).
MAX_PLOTTED = 9


def add_parser(sub) -> argparse.ArgumentParser:
    """Register the ``forecast`` command and its arguments on ``sub`` (argparse sub-parsers)."""
    from .cli import non_negative_int, positive_int

    parser = sub.add_parser(
        "forecast", help="forecast the series of a CSV or Parquet file",
        description="Fit a model to every series of a CSV or Parquet file and write forecast.csv, "
                    "forecast.png and summary.txt into the output folder.",
        epilog="Models: " + "; ".join(f"{k}: {v}" for k, v in MODELS.items()),
    )
    parser.add_argument("data", help="the data file: .csv (also compressed, e.g. .csv.gz) or .parquet")
    parser.add_argument("--time-column", required=True, help="the column of timestamps (dates or integer steps)")
    parser.add_argument("--id-column", help="the series id column of a long table (one row per series "
                                            "and timestamp); without it the table is wide")
    parser.add_argument("--value-column", nargs="+", metavar="COLUMN",
                        help="long table: its value column; wide table: the series columns to forecast "
                             "(default: every other column)")
    parser.add_argument("--model", choices=list(MODELS), default="sarimax", help="default: sarimax")
    parser.add_argument("--horizon", type=positive_int, default=12, help="forecast steps (default: 12)")
    parser.add_argument("--level", type=_level, nargs="+", default=[80.0, 95.0], metavar="PERCENT",
                        help="prediction interval levels in percent (default: 80 95)")
    parser.add_argument("--seasonal-period", type=positive_int, default=1, metavar="M",
                        help="steps per season, e.g. 12 for monthly data with a yearly pattern "
                             "(default: 1, no seasonality)")
    parser.add_argument("--order", type=non_negative_int, nargs=3, metavar=("P", "D", "Q"),
                        help="sarimax: the ARIMA order (default: 0 1 1)")
    parser.add_argument("--seasonal-order", type=non_negative_int, nargs=3, metavar=("P", "D", "Q"),
                        help="sarimax: the seasonal order with period M (default: 0 1 1 when M > 1)")
    parser.add_argument("--freq", help="the time grid as a pandas frequency (e.g. MS, D, h; a step for "
                                       "integer timestamps); missing timestamps become missing values "
                                       "(default: inferred, every timestamp must follow it)")
    parser.add_argument("--output", default="output", help="output folder (default: output)")
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the ``forecast`` command; returns the exit code (2 for problems with the input)."""
    start = time.perf_counter()
    try:
        wide = series_frame(read_table(args.data), args.time_column, id_column=args.id_column,
                            value_columns=args.value_column, freq=args.freq, source=str(args.data))
        minimum, why = min_observations(args.seasonal_period)
        check_lengths(wide, minimum, why)
        model = build_model(args.model, wide, args.seasonal_period, args.order, args.seasonal_order)
        estimators = fit(model, wide)
    except InputError as err:
        print(f"probssm forecast: error: {err}", file=sys.stderr)
        return 2
    levels = sorted(set(args.level))
    table = forecast_table(estimators, args.horizon, levels, args.id_column or "series", args.time_column)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "forecast.csv", index=False)
    _plot(estimators, args, levels).savefig(out / "forecast.png", dpi=110)
    (out / "summary.txt").write_text(_summary(model, estimators, wide, args))
    print(f"{args.model}: {len(estimators)} series, {len(wide)} timestamps, horizon {args.horizon}")
    print(f"wrote {out / 'forecast.csv'}, {out / 'forecast.png'} and {out / 'summary.txt'} "
          f"in {time.perf_counter() - start:.1f} s")
    return 0


def min_observations(seasonal_period: int) -> tuple[int, str]:
    """The fewest observed values a series needs, and why: 10, and two seasons plus 2 with a
    seasonal period (differencing and a seasonal term each use up a season)."""
    if seasonal_period > 1 and 2 * seasonal_period + 2 > 10:
        return 2 * seasonal_period + 2, f"two seasons plus 2 with --seasonal-period {seasonal_period}"
    return 10, "at least 10 for any model"


def build_model(name: str, wide: pd.DataFrame, seasonal_period: int = 1, order=None, seasonal_order=None):
    """The unfitted estimator ``--model name`` stands for (see :data:`MODELS`)."""
    m = seasonal_period
    if name == "sarimax":
        from .structural import SARIMAX

        seasonal = (*(seasonal_order or (0, 1, 1)), m) if m > 1 else (0, 0, 0, 0)
        if m == 1 and seasonal_order is not None:
            raise InputError("--seasonal-order needs --seasonal-period M > 1")
        return SARIMAX(order=tuple(order or (0, 1, 1)), seasonal_order=seasonal)
    if order is not None or seasonal_order is not None:
        raise InputError(f"--order and --seasonal-order are sarimax's; --model {name} takes neither")
    if name == "auto":
        from .structural.auto import AutoSARIMAX

        return AutoSARIMAX(seasonal_period=m)
    if name == "auto-uc":
        from .structural.auto import AutoUC

        return AutoUC(seasonal_period=m)
    if name == "uc":
        from .structural import UnobservedComponents
        from .structural.components import Seasonal

        return UnobservedComponents(["local linear trend"] + ([Seasonal(m)] if m > 1 else []))
    if name == "local-level":
        from .structural import LocalLevel

        return LocalLevel()
    return _gaussian_process(wide, m)


def _gaussian_process(wide: pd.DataFrame, m: int):
    """A GP whose kernel starts at the data's scale: a constant for the level, a Matern-5/2 for
    smooth changes over a few seasons and, with a season, a quasi-periodic term of period m."""
    from .gp import GaussianProcess
    from .gp.kernels import Constant, Matern52, QuasiPeriodic

    values = wide.to_numpy()
    level, spread = float(np.nanmean(values ** 2)), float(np.nanmean(np.nanvar(values, axis=0)))
    spread = spread if spread > 0 else 1.0
    kernel = Constant(max(level, spread)) + Matern52(lengthscale=2.0 * max(m, 5), variance=spread)
    if m > 1:
        kernel = kernel + QuasiPeriodic(float(m), lengthscale=1.0, variance=spread / 4)
    return GaussianProcess(kernel)


def fit(model, wide: pd.DataFrame) -> dict:
    """Fit ``model`` to the series of ``wide``; returns ``{series name: fitted estimator}``.
    Several series are fitted as one panel (``(series_id, time)`` rows), a single one as a
    Series. The estimator's ``ValueError`` about the data becomes :class:`InputError`."""
    try:
        if wide.shape[1] == 1:
            name = wide.columns[0]
            return {name: model.fit(wide[name])}
        index = pd.MultiIndex.from_product([wide.columns, wide.index], names=["series_id", wide.index.name])
        model.fit(pd.Series(wide.to_numpy().T.ravel(), index=index))
    except ValueError as err:
        raise InputError(f"fitting {type(model).__name__}: {err}") from None
    # The panel holds its series sorted by id; the outputs keep the file's order.
    return {name: model.estimators_[name] for name in wide.columns}


def forecast_table(estimators: dict, horizon: int, levels, id_name: str, time_name: str) -> pd.DataFrame:
    """One row per series and forecast step: the id, the time, ``mean`` and ``lower_L`` /
    ``upper_L`` for every level ``L`` (percent)."""
    coverages = [level / 100 for level in levels]
    parts = []
    for sid, est in estimators.items():
        mean = est.predict(horizon)
        intervals = est.predict_interval(horizon, coverage=coverages)
        part = pd.DataFrame({id_name: sid, time_name: mean.index, "mean": np.asarray(mean, dtype=float)})
        for level, c in zip(levels, coverages):
            for side in ("lower", "upper"):
                column = next(col for col in intervals.columns if col[1] == c and col[2] == side)
                part[f"{side}_{_label(level)}"] = intervals[column].to_numpy()
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def _label(level: float) -> str:
    return f"{level:g}"


def _plot(estimators: dict, args, levels):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(estimators)[:MAX_PLOTTED]
    cols = min(3, len(names))
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 3.6 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        est = estimators[name]
        # GaussianProcess draws one band; the state-space forecasters draw every level.
        coverage = max(levels) / 100 if args.model == "gp" else tuple(c / 100 for c in levels)
        est.plot(fh=args.horizon, coverage=coverage, ax=ax)
        ax.set_title(str(name))
        ax.set_xlabel(args.time_column)
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    shown = f" (first {len(names)} of {len(estimators)} series)" if len(estimators) > len(names) else ""
    fig.suptitle(f"{args.model} forecast, {args.horizon} steps{shown}")
    fig.tight_layout()
    plt.close(fig)
    return fig


def _summary(model, estimators: dict, wide: pd.DataFrame, args) -> str:
    freq = getattr(wide.index, "freqstr", None) or "integer steps"
    head = [
        f"probssm forecast of {args.data}",
        f"model: {args.model} ({model!r})",
        f"series: {len(estimators)}    timestamps: {wide.index[0]} .. {wide.index[-1]} ({len(wide)}, {freq})",
        f"horizon: {args.horizon}    levels: {', '.join(_label(v) for v in sorted(set(args.level)))} %",
        "",
    ]
    blocks = [f"== series {name!r} ==\n{_describe(est)}\n" for name, est in estimators.items()]
    return "\n".join(head) + "\n".join(blocks)


def _describe(est) -> str:
    """The estimator's own summary where it has one, else its parameters and log-likelihood."""
    if callable(getattr(est, "summary", None)):
        return est.summary()
    lines = [repr(est)]
    if getattr(est, "kernel_", None) is not None:
        lines.append(f"fitted kernel: {est.kernel_!r}")
    if isinstance(getattr(est, "params_", None), pd.Series):
        lines.append(est.params_.to_string())
    for attr in ("log_marginal_likelihood_", "loglik_"):
        if getattr(est, attr, None) is not None:
            lines.append(f"{attr.rstrip('_').replace('_', ' ')}: {getattr(est, attr):.6f}")
    return "\n".join(lines)


def _level(text: str) -> float:
    """argparse type: a percentage strictly between 0 and 100."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a percentage, got {text!r}") from None
    if not 0 < value < 100:
        raise argparse.ArgumentTypeError(f"must be between 0 and 100 (percent), got {text}")
    return value
