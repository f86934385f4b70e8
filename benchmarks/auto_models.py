"""Automatic model selection on the US employment panel: probssm ``AutoSARIMAX`` and ``AutoUC``
next to statsforecast's ``AutoARIMA`` and ``AutoETS``, side by side in one process on the CPU.

Data: fpp3's ``us_employment`` as bundled in probssm (:func:`probssm.datasets.load_us_employment`:
monthly, January 2000 - September 2019) without the one series that ends in December 2017 (it
has no values in most of the held-out window): 147 series, the last 24 months held out, every
model fitted on the rest (series that start later on their observed span) and asked for a
24-step forecast with 80 % and 95 % intervals. ``--quick``: the first four series.

Models (season length 12 throughout): probssm ``AutoSARIMAX(12)`` and ``AutoUC(12)`` fitted on
the panel (one selection per series; each round's candidates of all series in one batched
program); statsforecast ``AutoARIMA(season_length=12)`` and ``AutoETS(season_length=12)``
(``n_jobs=1``).

Metrics (:mod:`probssm.metrics`), averaged over series as in ``deep_accuracy.py``: MASE with the
in-sample seasonal-naive scale (``sp=12``); CRPS of the Gaussian predictive distribution (every
model here has one; statsforecast's standard deviation is recovered from its 95 % interval)
divided by the series' mean absolute seasonal difference; the empirical coverage of the 80 %
and 95 % intervals over all held-out values; ``fit s``, the wall time of fitting and selecting
(forecasting included for statsforecast, whose ``forecast`` does both). The times include
compilation (JAX's persistent cache, numba's cache) as a user's first call in a new process
would.

Usage::

    python benchmarks/auto_models.py                 # table on stdout
    python benchmarks/auto_models.py --json          # and results/auto_models.json
    python benchmarks/auto_models.py --quick --json out.json
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
H, SP, DROP = 24, 12, "CEU4245210001"
Z80, Z95 = 1.2815515655446004, 1.959963984540054


def panel(quick: bool):
    """Training and held-out frames ``(T, B)`` with a monthly PeriodIndex."""
    from probssm.datasets import load_us_employment

    y = load_us_employment().drop(columns=DROP)
    if quick:
        y = y.iloc[:, :4]
    return y.iloc[:-H], y.iloc[-H:]


def scores(name, train, test, mean, sd, seconds):
    """One row from Gaussian forecasts ``mean``, ``sd`` ``(H, B)``."""
    from probssm import metrics

    mase, crps = [], []
    for j, c in enumerate(train.columns):
        history = train[c].dropna().to_numpy()
        y = test[c].to_numpy()
        mase.append(metrics.mase(y, mean[:, j], history, sp=SP))
        crps.append(metrics.crps_gaussian(y, mean[:, j], sd[:, j]) / np.mean(np.abs(history[SP:] - history[:-SP])))
    y = test.to_numpy()
    return {"model": name, "MASE": float(np.mean(mase)), "CRPS (scaled)": float(np.mean(crps)),
            "coverage 80%": float(metrics.interval_coverage(y, mean - Z80 * sd, mean + Z80 * sd)),
            "coverage 95%": float(metrics.interval_coverage(y, mean - Z95 * sd, mean + Z95 * sd)),
            "fit s": float(seconds)}


def wide(frame_or_series, columns):
    """A per-series forecast indexed by ``(series_id, time)`` as ``(H, B)`` in ``columns`` order."""
    values = frame_or_series if isinstance(frame_or_series, pd.Series) else frame_or_series.iloc[:, 0]
    return values.unstack(0)[list(columns)].to_numpy()


def probssm_model(name, est, train, test):
    start = time.perf_counter()
    est.fit(train)
    seconds = time.perf_counter() - start
    mean = wide(est.predict(H), train.columns)
    sd = np.sqrt(wide(est.predict_var(H), train.columns))
    return scores(name, train, test, mean, sd, seconds), est


def statsforecast_models(train, test):
    from statsforecast import StatsForecast
    from statsforecast.models import AutoARIMA, AutoETS

    long = train.to_timestamp().rename_axis("ds").reset_index().melt(
        id_vars="ds", var_name="unique_id", value_name="y").dropna()
    rows = []
    for model in (AutoARIMA(season_length=SP), AutoETS(season_length=SP)):
        sf = StatsForecast(models=[model], freq="MS", n_jobs=1)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fc = sf.forecast(df=long, h=H, level=[95])
        seconds = time.perf_counter() - start
        fc = fc.reset_index() if "unique_id" not in fc.columns else fc
        label = str(model)
        piv = {k: fc.pivot(index="ds", columns="unique_id", values=col)[list(train.columns)].to_numpy()
               for k, col in (("mean", label), ("lo", f"{label}-lo-95"), ("hi", f"{label}-hi-95"))}
        sd = (piv["hi"] - piv["lo"]) / (2 * Z95)
        rows.append(scores(f"statsforecast {label}", train, test, piv["mean"], sd, seconds))
    return rows


def cross_check(auto, train):
    """Each series' selection in the panel fit equals a fit of that series alone."""
    from probssm.structural import AutoSARIMAX

    out = []
    for sid in list(train.columns)[:2]:
        alone = AutoSARIMAX(SP, verbose=False).fit(train[sid])
        in_panel = auto.estimators_[sid]
        out.append({"series": sid, "panel": [in_panel.order_, in_panel.seasonal_order_, in_panel.trend_],
                    "alone": [alone.order_, alone.seasonal_order_, alone.trend_],
                    "passed": (alone.order_, alone.seasonal_order_, alone.trend_)
                    == (in_panel.order_, in_panel.seasonal_order_, in_panel.trend_)})
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the first four series only")
    parser.add_argument("--json", nargs="?", const=str(HERE / "results" / "auto_models.json"))
    args = parser.parse_args(argv)

    from machine import cpu_machine, table_text

    from probssm.structural import AutoSARIMAX, AutoUC

    machine = cpu_machine()
    train, test = panel(args.quick)
    rows = []
    row, auto = probssm_model("probssm AutoSARIMAX", AutoSARIMAX(SP, verbose=False), train, test)
    rows.append(row)
    print(row, file=sys.stderr, flush=True)
    row, _ = probssm_model("probssm AutoUC", AutoUC(SP, verbose=False), train, test)
    rows.append(row)
    print(row, file=sys.stderr, flush=True)
    rows += statsforecast_models(train, test)
    checks = cross_check(auto, train)
    table = pd.DataFrame(rows).set_index("model")
    arima = table.loc["statsforecast AutoARIMA"]
    ets = table.loc["statsforecast AutoETS"]
    aims = {}
    for name in ("probssm AutoSARIMAX", "probssm AutoUC"):
        ours = table.loc[name]
        aims[name] = {
            "MASE <= both": bool(ours["MASE"] <= min(arima["MASE"], ets["MASE"])),
            "CRPS <= both": bool(ours["CRPS (scaled)"] <= min(arima["CRPS (scaled)"], ets["CRPS (scaled)"])),
            "time <= AutoARIMA": bool(ours["fit s"] <= arima["fit s"]),
        }
    print(f"US employment, {train.shape[1]} series, {len(train)} training months, {H} held out; "
          f"{machine['cpu_model']}, {machine['cpus_usable']} usable cores, load average at start "
          f"{machine['load_average_start']}")
    print(table_text(table))
    for name, aim in aims.items():
        print(f"{name}: " + ", ".join(f"{k}: {'met' if v else 'not met'}" for k, v in aim.items()))
    passed = all(c["passed"] for c in checks) and all(np.isfinite(r[k]) for r in rows for k in r if k != "model")
    print("ALL CHECKS PASSED" if passed else f"CHECKS FAILED: {checks}")
    if args.json:
        import probssm

        out = {"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
               "command": " ".join(sys.argv), "python": platform.python_version(),
               "probssm": probssm.__version__, "machine": machine, "quick": args.quick,
               "series": train.shape[1], "horizon": H, "rows": rows, "aims": aims,
               "cross_checks": checks, "passed": bool(passed)}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2, default=list))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
