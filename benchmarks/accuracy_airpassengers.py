"""Forecast accuracy on AirPassengers: probssm next to statsmodels and statsforecast.

One process, one train/test split shared by every model: the monthly AirPassengers series
(1949-01 .. 1960-12, 144 values), the last 12 months (1960) held out, every model fitted on the
first 132 values and asked for a 12-step forecast with a 90 % central prediction interval.

Models
------
* probssm: the airline model SARIMAX(0,1,1)x(0,1,1)_12 and two basic structural models (local
  linear trend (LLT) + dummy seasonal(12); LLT + trigonometric seasonal(12) with all 6
  harmonics), all on log(passengers) by maximum likelihood, exact diffuse initialisation
  (probssm's default); and the airline model fitted with NUTS (``method="nuts"``: 2 chains,
  500 warm-up + 500 draws, seed 0), whose forecasts are the predictive mixture over posterior
  draws (so its intervals carry parameter uncertainty; left out with ``--quick``);
* statsmodels: the same three specifications on logs, with statsmodels' defaults (approximate
  diffuse initialisation);
* statsforecast: ``AutoARIMA(season_length=12)`` and ``AutoETS(season_length=12)`` on the raw
  series, as users run them, and the same two on logs (labelled ``[log]``); ``SeasonalNaive(12)``
  on the raw series as a baseline. statsforecast's model objects are used directly
  (``model.fit(y).predict(h, level=[90])``); ``StatsForecast(...).forecast`` on a one-series
  frame gives the same numbers.

Models fitted on logs are mapped back with ``exp``: the point forecast is the predictive
**median** ``exp(mu)`` (not the mean ``exp(mu + s^2/2)``), the interval bounds are ``exp`` of
the log-scale 5 % and 95 % quantiles (exact, since exp is monotone).

Metrics (``probssm.metrics``): MASE with the in-sample seasonal-naive scale of period 12
(``mase(y_test, point, y_train, sp=12)``), sMAPE in percent (0-200), the empirical coverage of
the 90 % intervals (12 points, so k/12), and the mean interval width (passengers, thousands).
``fit s`` is the wall time of ``fit`` alone: the first fit in the process (for probssm this
includes JAX tracing and XLA compilation) and, unless ``--quick``, a second fit of a fresh
estimator on the same data (warm: compiled code reused).

Cross-checks (the script exits 1 when one fails): probssm's airline model at statsmodels'
estimated parameters, with statsmodels' approximate diffuse initialisation, must reproduce
statsmodels' log-scale forecast mean and standard deviation to 1e-6 relative; probssm's exact
diffuse log-likelihood of the airline model at its MLE must equal statsmodels'
(``use_exact_diffuse=True``) at the same parameters to 1e-6 relative; and each probssm
model's own maximum-likelihood forecast (point and interval bounds, passenger scale) must agree
with statsmodels' MLE forecast of the same specification to 1e-3 relative.

The aim (from the issue): a probssm model with lower MASE than statsforecast's AutoARIMA on the
raw series and 90 % coverage in [0.83, 1.0] (i.e. at least 10 of the 12 held-out months inside).

Usage::

    python benchmarks/accuracy_airpassengers.py                 # table on stdout
    python benchmarks/accuracy_airpassengers.py --json          # also benchmarks/results/accuracy_airpassengers.json
    python benchmarks/accuracy_airpassengers.py --quick --json /tmp/acc.json   # no NUTS, no warm re-fits
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import shlex
import sys
import time
import warnings
from importlib import metadata
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax
from machine import cpu_machine
import numpy as np
import statsforecast.models as sfm
import statsmodels.api as sm

from probssm import metrics
from probssm.datasets import load_airpassengers
from probssm.structural import SARIMAX, Seasonal, TrigSeasonal, UnobservedComponents

RESULTS_DEFAULT = Path(__file__).resolve().parent / "results" / "accuracy_airpassengers.json"
HORIZON = 12
SEASON = 12
COVERAGE = 0.9
LEVEL = 90  # statsforecast's name for the 90 % interval
AIM_COVERAGE = (0.83, 1.0)
AIM_REFERENCE = "statsforecast AutoARIMA"
TOL_SAME_PARAMS = 1e-6  # probssm vs statsmodels at the same parameters (log-scale mean and std)
TOL_MLE = 1e-3  # probssm vs statsmodels, each at its own MLE (passenger-scale point and bounds)

AIRLINE = ((0, 1, 1), (0, 1, 1, SEASON))
SPECS = {  # LLT = local linear trend
    "airline": "SARIMAX(0,1,1)(0,1,1)12",
    "bsm": "UC LLT + Seasonal(12)",
    "bsm_trig": "UC LLT + TrigSeasonal(12, 6)",
}
NUTS = {"num_warmup": 500, "num_samples": 500, "num_chains": 2, "random_state": 0}


# ------------------------------------------------------------------------------------------------
# Models: each runner fits on the training series and returns a 12-step forecast on the passenger
# scale: (point, lower, upper) as float arrays, plus details.
# ------------------------------------------------------------------------------------------------
def _log_quantiles_probssm(model):
    """exp of probssm's log-scale 5 %, 50 %, 95 % predictive quantiles."""
    lo_a, hi_a = 0.5 - COVERAGE / 2, 0.5 + COVERAGE / 2
    q = model.predict_quantiles(HORIZON, alpha=(lo_a, 0.5, hi_a)).to_numpy()
    interval = model.predict_interval(HORIZON, coverage=COVERAGE).to_numpy()
    # predict_interval and predict_quantiles must describe the same interval.
    assert np.allclose(interval, q[:, [0, 2]], rtol=1e-12, atol=0), "predict_interval != predict_quantiles"
    return np.exp(q[:, 1]), np.exp(q[:, 0]), np.exp(q[:, 2])


def probssm_estimator(kind, initialization="exact_diffuse"):
    if kind == "airline":
        return SARIMAX(*AIRLINE, initialization=initialization)
    if kind == "bsm":
        return UnobservedComponents(["local linear trend", Seasonal(SEASON)], initialization=initialization)
    if kind == "bsm_trig":
        return UnobservedComponents(["local linear trend", TrigSeasonal(SEASON, harmonics=SEASON // 2)],
                                    initialization=initialization)
    raise KeyError(kind)


def make_probssm(kind, bayes=False):
    def fit(train):
        if bayes:
            return probssm_estimator(kind).set_params(method="nuts", **NUTS).fit(np.log(train))
        return probssm_estimator(kind).fit(np.log(train))

    def forecast(model):
        point, lower, upper = _log_quantiles_probssm(model)
        info = {"params": {k: float(v) for k, v in model.params_.items()}, "loglik": float(model.loglik_),
                "converged": bool(getattr(model, "converged_", True))}
        if bayes:
            summary = model.posterior_summary_
            info.update(nuts=dict(NUTS), posterior_summary=json.loads(summary.to_json(orient="index")),
                        max_r_hat=float(summary["r_hat"].max()), min_ess=float(summary["ess"].min()),
                        divergences=int(np.sum(model.divergences_)))
        return point, lower, upper, info

    return fit, forecast


def statsmodels_model(kind, log_train):
    if kind == "airline":
        return sm.tsa.SARIMAX(log_train, order=AIRLINE[0], seasonal_order=AIRLINE[1])
    if kind == "bsm":
        return sm.tsa.UnobservedComponents(log_train, level="local linear trend", seasonal=SEASON)
    if kind == "bsm_trig":
        return sm.tsa.UnobservedComponents(log_train, level="local linear trend",
                                           freq_seasonal=[{"period": SEASON, "harmonics": SEASON // 2}])
    raise KeyError(kind)


def make_statsmodels(kind):
    def fit(train):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return statsmodels_model(kind, np.log(train)).fit(disp=False)

    def forecast(res):
        f = res.get_forecast(HORIZON)
        ci = np.asarray(f.conf_int(alpha=1 - COVERAGE))
        point = np.exp(np.asarray(f.predicted_mean))
        return point, np.exp(ci[:, 0]), np.exp(ci[:, 1]), {
            "params": {k: float(v) for k, v in res.params.items()}, "loglik": float(res.llf),
            "converged": bool(res.mle_retvals.get("converged", True)) if res.mle_retvals else True}

    return fit, forecast


def _arima_label(model):
    p, q, P, Q, s, d, D = model.model_["arma"]
    return f"ARIMA({p},{d},{q})({P},{D},{Q})[{s}]"


def make_statsforecast(cls_name, log=False):
    def fit(train):
        y = np.log(train) if log else train
        return getattr(sfm, cls_name)(season_length=SEASON).fit(np.asarray(y, dtype=float))

    def forecast(model):
        f = model.predict(h=HORIZON, level=[LEVEL])
        back = np.exp if log else (lambda a: a)
        point = back(np.asarray(f["mean"], dtype=float))
        lower = back(np.asarray(f[f"lo-{LEVEL}"], dtype=float))
        upper = back(np.asarray(f[f"hi-{LEVEL}"], dtype=float))
        info = {}
        if cls_name == "AutoARIMA":
            info["selected"] = _arima_label(model)
        elif cls_name == "AutoETS":
            info["selected"] = str(model.model_["method"])
        return point, lower, upper, info

    return fit, forecast


def model_table(quick=False):
    """(name, library, scale, specification, fit, forecast, refit) for every model, in table order.

    ``refit``: whether to time a second (warm) fit; not for the NUTS fit, whose cost is the sampler.
    The Bayesian airline model is left out with ``quick``.
    """
    rows = []
    for kind, spec in SPECS.items():
        rows.append((f"probssm {spec}", "probssm", "log", spec, *make_probssm(kind), True))
    if not quick:
        rows.append((f"probssm {SPECS['airline']} NUTS", "probssm", "log",
                     f"{SPECS['airline']}, method='nuts', predictive mixture over posterior draws",
                     *make_probssm("airline", bayes=True), False))
    for kind, spec in SPECS.items():
        rows.append((f"statsmodels {spec}", "statsmodels", "log", spec, *make_statsmodels(kind), True))
    for cls_name in ("AutoARIMA", "AutoETS"):
        rows.append((f"statsforecast {cls_name}", "statsforecast", "raw", f"{cls_name}(season_length=12)",
                     *make_statsforecast(cls_name), True))
    for cls_name in ("AutoARIMA", "AutoETS"):
        rows.append((f"statsforecast {cls_name} [log]", "statsforecast", "log", f"{cls_name}(season_length=12)",
                     *make_statsforecast(cls_name, log=True), True))
    rows.append(("statsforecast SeasonalNaive", "statsforecast", "raw", "SeasonalNaive(season_length=12), baseline",
                 *make_statsforecast("SeasonalNaive"), True))
    return rows


# ------------------------------------------------------------------------------------------------
# Cross-checks against statsmodels
# ------------------------------------------------------------------------------------------------
def _max_rel(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b) / np.abs(b)))


def airline_at_statsmodels_params(train):
    """probssm's airline model at statsmodels' MLE, statsmodels' initialisation: log-scale moments."""
    log_train = np.log(train)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = statsmodels_model("airline", log_train).fit(disp=False)
    f = res.get_forecast(HORIZON)
    sm_mean, sm_std = np.asarray(f.predicted_mean), np.sqrt(np.asarray(f.var_pred_mean))
    ours = probssm_estimator("airline", "approximate_diffuse").fit(log_train, params=res.params.to_dict())
    mean = ours.predict(HORIZON).to_numpy()
    std = np.sqrt(ours.predict_var(HORIZON).to_numpy()[:, 0])
    rel_mean, rel_std = _max_rel(mean, sm_mean), _max_rel(std, sm_std)
    return {
        "check": "probssm airline at statsmodels' MLE (approximate diffuse, as statsmodels) "
                 "vs statsmodels get_forecast: log-scale mean and std",
        "params": {k: float(v) for k, v in res.params.items()},
        "max_rel_diff_mean": rel_mean, "max_rel_diff_std": rel_std,
        "loglik_probssm": float(ours.loglik_), "loglik_statsmodels": float(res.llf),
        "tol": TOL_SAME_PARAMS, "passed": bool(max(rel_mean, rel_std) <= TOL_SAME_PARAMS),
    }


def airline_exact_diffuse_loglik(rows, train):
    """probssm's exact diffuse log-likelihood at its MLE vs statsmodels' ``use_exact_diffuse=True``."""
    ours = next((r for r in rows if r["model"] == f"probssm {SPECS['airline']}"), None)
    if ours is None:
        return []
    mod = sm.tsa.SARIMAX(np.log(train), order=AIRLINE[0], seasonal_order=AIRLINE[1], use_exact_diffuse=True)
    ref = float(mod.loglike(np.array([ours["params"][n] for n in mod.param_names])))
    rel = abs(ours["loglik"] - ref) / abs(ref)
    return [{
        "check": "probssm airline log-likelihood (exact diffuse) at its MLE vs statsmodels "
                 "SARIMAX(use_exact_diffuse=True).loglike at the same parameters",
        "loglik_probssm": ours["loglik"], "loglik_statsmodels": ref, "max_rel_diff_loglik": rel,
        "tol": TOL_SAME_PARAMS, "passed": bool(rel <= TOL_SAME_PARAMS),
    }]


def mle_agreement(rows):
    """Each probssm model's MLE forecast vs statsmodels' MLE forecast of the same specification."""
    by_name = {r["model"]: r for r in rows}
    out = []
    for spec in SPECS.values():
        ours, theirs = by_name.get(f"probssm {spec}"), by_name.get(f"statsmodels {spec}")
        if ours is None or theirs is None:
            continue
        diffs = {k: _max_rel(ours["forecast"][k], theirs["forecast"][k]) for k in ("point", "lower", "upper")}
        out.append({
            "check": f"MLE forecast, probssm vs statsmodels: {spec} (passenger scale)",
            **{f"max_rel_diff_{k}": v for k, v in diffs.items()},
            "tol": TOL_MLE, "passed": bool(max(diffs.values()) <= TOL_MLE),
        })
    return out


# ------------------------------------------------------------------------------------------------
# Machine and versions
# ------------------------------------------------------------------------------------------------
def machine_info():
    return cpu_machine(jax_devices=[str(d) for d in jax.devices()])


def versions():
    out = {"python": platform.python_version()}
    for dist in ("probssm", "jax", "jaxlib", "numpy", "scipy", "pandas", "statsmodels", "statsforecast"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


# ------------------------------------------------------------------------------------------------
# Main
# ------------------------------------------------------------------------------------------------
def _fmt_s(s):
    return "-" if s is None else f"{s:.2f}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", nargs="?", const=str(RESULTS_DEFAULT), default=None, metavar="PATH",
                        help="write results as JSON (PATH defaults to benchmarks/results/accuracy_airpassengers.json)")
    parser.add_argument("--quick", action="store_true",
                        help="leave out the NUTS fit and the warm re-fits (timings: first fit only); for the smoke test")
    args = parser.parse_args(argv)

    y = load_airpassengers()
    train, test = y.iloc[:-HORIZON], y.iloc[-HORIZON:]
    y_train, y_test = train.to_numpy(dtype=float), test.to_numpy(dtype=float)

    now = _dt.datetime.now(_dt.timezone.utc)
    meta = {
        "benchmark": "accuracy_airpassengers",
        "date_utc": now.isoformat(timespec="seconds"),
        "command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]),
        "machine": machine_info(),
        "versions": versions(),
        "settings": {
            "data": "probssm.datasets.load_airpassengers() (monthly, 1949-01..1960-12, 144 values)",
            "train": f"{train.index[0]}..{train.index[-1]} ({len(train)} values)",
            "test": f"{test.index[0]}..{test.index[-1]} ({len(test)} values)",
            "horizon": HORIZON, "coverage": COVERAGE, "mase_sp": SEASON,
            "log_models": "fitted on log(y); point = exp(median) = exp(mu), interval = exp of log-scale quantiles",
            "fit_seconds": "wall time of fit only; first = first fit in the process (probssm: incl. JIT "
                           "compilation); warm = a second fit of a fresh estimator (skipped with --quick)",
            "quick": args.quick,
        },
        "y_train": y_train.tolist(),
        "y_test": y_test.tolist(),
    }
    print("== AirPassengers forecast accuracy (last 12 months held out) ==")
    print(f"date (UTC): {meta['date_utc']}")
    print(f"command:    {meta['command']}")
    mi = meta["machine"]
    print(f"machine:    lscpu model name={mi['cpu_model']!r}  cores={mi['cpu_count']} (usable {mi['cpus_usable']})  "
          f"{mi['platform']}  JAX devices {mi['jax_devices']}  load average {mi['load_average_start']}")
    print("versions:   " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()))
    print(f"train {meta['settings']['train']}, test {meta['settings']['test']}")
    print("Models marked 'log' are fitted on log(passengers); their point forecast is the median exp(mu) and "
          "their interval exp of the log-scale 5 %/95 % quantiles.\n")

    rows, failures = [], []
    for name, library, scale, spec, fit, forecast, refit in model_table(args.quick):
        t0 = time.perf_counter()
        fitted = fit(train)
        first = time.perf_counter() - t0
        warm = None
        if refit and not args.quick:
            t0 = time.perf_counter()
            fitted = fit(train)
            warm = time.perf_counter() - t0
        point, lower, upper, info = forecast(fitted)
        row = {"model": name, "library": library, "scale": scale, "spec": spec,
               "fit_seconds_first": first, "fit_seconds_warm": warm, **info,
               "forecast": {"point": point.tolist(), "lower": lower.tolist(), "upper": upper.tolist()}}
        try:
            row.update(
                mase=metrics.mase(y_test, point, y_train, sp=SEASON),
                smape=metrics.smape(y_test, point),
                coverage90=metrics.interval_coverage(y_test, lower, upper),
                mean_interval_width=float(np.mean(upper - lower)),
            )
        except ValueError as exc:  # non-finite forecast or crossed bounds
            failures.append(f"{name}: {exc}")
            row.update(mase=None, smape=None, coverage90=None, mean_interval_width=None)
        rows.append(row)
        sel = f"  -> {info['selected']}" if "selected" in info else ""
        print(f"fitted {name:40s} first {first:6.2f} s" + (f", warm {warm:6.2f} s" if warm is not None else "") + sel)

    # Table.
    label = {id(r): r["model"] + (f" -> {r['selected']}" if "selected" in r else "") for r in rows}
    w = max(len(v) for v in label.values())
    header = (f"{'model':{w}s} {'scale':>5} {'MASE':>7} {'sMAPE %':>8} {'cov90':>6} {'width':>7} "
              f"{'fit s (1st)':>11} {'fit s (warm)':>12}")
    print("\n" + header)
    print("-" * len(header))
    for r in rows:
        name = label[id(r)]
        if r["mase"] is None:
            print(f"{name:{w}s} {r['scale']:>5} FAILED")
            continue
        print(f"{name:{w}s} {r['scale']:>5} {r['mase']:7.4f} {r['smape']:8.3f} {r['coverage90']:6.3f} "
              f"{r['mean_interval_width']:7.1f} {_fmt_s(r['fit_seconds_first']):>11} {_fmt_s(r['fit_seconds_warm']):>12}")
    print("MASE: seasonal-naive (period 12) in-sample scale; sMAPE in percent (0-200); cov90: share of the 12 "
          "held-out months inside the 90 % interval; width: mean interval width (thousands of passengers).")

    scored = [r for r in rows if r["mase"] is not None and all(math.isfinite(r[k]) for k in
                                                               ("mase", "smape", "coverage90", "mean_interval_width"))]
    for r in rows:
        if r not in scored and r["mase"] is not None:
            failures.append(f"{r['model']}: non-finite metric")
    winner = min(scored, key=lambda r: r["mase"]) if scored else None
    probssm_rows = [r for r in scored if r["library"] == "probssm"]
    best_probssm = min(probssm_rows, key=lambda r: r["mase"]) if probssm_rows else None
    reference = next((r for r in scored if r["model"] == AIM_REFERENCE), None)
    meeting = [r["model"] for r in probssm_rows
               if reference is not None and r["mase"] < reference["mase"]
               and AIM_COVERAGE[0] <= r["coverage90"] <= AIM_COVERAGE[1]]
    aim = {
        "statement": f"a probssm model with MASE below {AIM_REFERENCE} (raw series) and 90 % coverage in "
                     f"[{AIM_COVERAGE[0]}, {AIM_COVERAGE[1]}]",
        "reference_mase": None if reference is None else reference["mase"],
        "models_meeting_aim": meeting,
        "met": bool(meeting),
    }
    print(f"\nwinner (lowest MASE): {winner['model'] if winner else None} "
          f"(MASE {winner['mase']:.4f})" if winner else "\nwinner: none")
    if best_probssm:
        print(f"best probssm model:   {best_probssm['model']} (MASE {best_probssm['mase']:.4f}, "
              f"coverage {best_probssm['coverage90']:.3f})")
    print(f"aim ({aim['statement']}): {'MET' if aim['met'] else 'NOT MET'}"
          + (f" by {', '.join(meeting)}" if meeting else "")
          + (f"; {AIM_REFERENCE} MASE {reference['mase']:.4f}" if reference else ""))

    # Cross-checks.
    checks = [airline_at_statsmodels_params(train)] + airline_exact_diffuse_loglik(rows, train) + mle_agreement(rows)
    print("\ncross-checks against statsmodels:")
    for c in checks:
        diffs = ", ".join(f"{k[len('max_rel_diff_'):]} {v:.2e}" for k, v in c.items() if k.startswith("max_rel_diff_"))
        print(f"  [{'ok' if c['passed'] else 'FAIL'}] {c['check']}: max rel. diff {diffs} (tol {c['tol']:g})")
        if not c["passed"]:
            failures.append(f"cross-check failed: {c['check']} ({diffs})")

    meta.update(results=rows, winner=None if winner is None else winner["model"],
                best_probssm=None if best_probssm is None else best_probssm["model"], aim=aim,
                cross_checks=checks, passed=not failures, failures=failures)
    try:
        meta["machine"]["load_average_end"] = list(os.getloadavg())
    except OSError:
        meta["machine"]["load_average_end"] = None
    print(f"machine: {mi['cpu_model']} ({mi['cpu_count']} cores), load average at end "
          f"{meta['machine']['load_average_end']}")
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(meta, indent=2) + "\n")
        print(f"wrote {path}")
    if failures:
        print("CHECKS FAILED:\n  " + "\n  ".join(failures))
        return 1
    print("ALL CHECKS PASSED (finite metrics for every model; probssm agrees with statsmodels)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
