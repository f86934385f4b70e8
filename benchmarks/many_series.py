"""Many series at once: one batched probssm fit against a loop of statsmodels fits.

Simulates ``--n-series`` series of length ``--T`` from local linear trend + dummy seasonal(12)
models with random variances (seeded), then fits the same model to all of them

* with probssm: ``UnobservedComponents(["local linear trend", Seasonal(12)]).fit(panel)``, one
  vmapped, jitted L-BFGS over every series (timed cold, including compilation, and warm: the
  median of ``--warm-runs`` refits);
* with statsmodels: ``UnobservedComponents(y, "lltrend", seasonal=12).fit()`` in a Python loop
  (the first ``--sm-series`` series; the per-series time is scaled to all series if fewer).

Both use the approximate diffuse initialisation (variance 1e6, burn 13), so the maximised
log-likelihoods are comparable; the script prints the time ratio and how the log-likelihoods
compare (ours minus statsmodels', evaluated by statsmodels' exact filter at each library's
estimates). Run: ``python benchmarks/many_series.py [--n-series 1000 --T 200] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings

import numpy as np
import pandas as pd


def simulate(n_series: int, T: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    index = pd.period_range("2000-01", periods=T, freq="M")
    cols = {}
    for i in range(n_series):
        s_irr, s_lvl, s_trd, s_sea = np.exp(rng.uniform(np.log([0.1, 0.01, 1e-4, 1e-3]), np.log([1.0, 0.2, 1e-2, 0.05])))
        slope = np.cumsum(rng.normal(scale=np.sqrt(s_trd), size=T)) + rng.normal(scale=0.05)
        level = 10 + np.cumsum(slope + rng.normal(scale=np.sqrt(s_lvl), size=T))
        season = np.zeros(T + 11)
        season[:11] = rng.normal(size=11)
        for t in range(11, T + 11):
            season[t] = -season[t - 11:t].sum() + rng.normal(scale=np.sqrt(s_sea))
        cols[f"series_{i}"] = level + season[11:] + rng.normal(scale=np.sqrt(s_irr), size=T)
    return pd.DataFrame(cols, index=index)


def fit_probssm(panel: pd.DataFrame):
    from probssm.structural import Seasonal, UnobservedComponents

    model = UnobservedComponents(["local linear trend", Seasonal(12)], initialization="approximate_diffuse")
    t0 = time.perf_counter()
    model.fit(panel)
    return model, time.perf_counter() - t0


def fit_statsmodels(panel: pd.DataFrame, n: int):
    import statsmodels.api as sm

    fits, t0 = [], time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for col in panel.columns[:n]:
            fits.append(sm.tsa.UnobservedComponents(panel[col], "lltrend", seasonal=12).fit(disp=0))
    return fits, time.perf_counter() - t0


def exact_loglike(series: pd.Series, params) -> float:
    """statsmodels' log-likelihood at ``params`` with its exact filter (no steady-state switch)."""
    import statsmodels.api as sm

    model = sm.tsa.UnobservedComponents(series, "lltrend", seasonal=12)
    model.ssm.tolerance = 0
    return float(model.loglike(np.asarray(params)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-series", type=int, default=1000)
    parser.add_argument("--T", type=int, default=200)
    parser.add_argument("--sm-series", type=int, default=None, help="statsmodels fits to time (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warm-runs", type=int, default=3, help="warm refits timed (the median is reported)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    n_sm = args.n_series if args.sm_series is None else min(args.sm_series, args.n_series)

    load_at_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    panel = simulate(args.n_series, args.T, args.seed)
    model, cold = fit_probssm(panel)
    warm_runs = [fit_probssm(panel)[1] for _ in range(max(1, args.warm_runs))]
    warm = float(np.median(warm_runs))
    fits, sm_seconds = fit_statsmodels(panel, n_sm)
    sm_total = sm_seconds * args.n_series / n_sm

    diffs = []
    for col, ref in zip(panel.columns[:n_sm], fits):
        ours = exact_loglike(panel[col], model.params_.loc[col].to_numpy())
        theirs = exact_loglike(panel[col], ref.params)
        diffs.append(ours - theirs)
    diffs = np.asarray(diffs)
    rel = diffs / np.abs([r.llf for r in fits])

    import jax

    result = {
        "machine": platform.processor() or platform.machine(), "device": str(jax.devices()[0]),
        "n_series": args.n_series, "T": args.T, "statsmodels_series_timed": n_sm,
        "probssm_seconds_cold": cold, "probssm_seconds_warm": warm, "probssm_seconds_warm_runs": warm_runs,
        "load_average_at_start": load_at_start,
        "statsmodels_seconds": sm_total, "speedup_cold": sm_total / cold, "speedup_warm": sm_total / warm,
        "probssm_converged": float(model.converged_.mean()),
        "loglik_minus_statsmodels": {
            "median": float(np.median(diffs)), "min": float(diffs.min()), "max": float(diffs.max()),
            "share_within_1e-4_rel": float(np.mean(np.abs(rel) <= 1e-4)),
            "share_ours_lower_by_1e-4_rel": float(np.mean(rel < -1e-4)),
        },
    }
    print(f"{args.n_series} series x T={args.T}, local linear trend + seasonal(12), device {result['device']}")
    print(f"  probssm panel fit   cold {cold:8.2f} s   warm {warm:8.2f} s (median of {len(warm_runs)})   "
          f"converged {result['probssm_converged']:.1%}")
    print(f"  statsmodels loop         {sm_total:8.2f} s   ({n_sm} fits timed)")
    print(f"  speed-up: {result['speedup_cold']:.2f}x cold, {result['speedup_warm']:.2f}x warm (target 20x)")
    ll = result["loglik_minus_statsmodels"]
    print(f"  log-likelihood, probssm minus statsmodels (exact filter at each estimate): median {ll['median']:.2e}, "
          f"min {ll['min']:.2e}, max {ll['max']:.2e}; within 1e-4 relative: {ll['share_within_1e-4_rel']:.1%}, "
          f"probssm lower by more: {ll['share_ours_lower_by_1e-4_rel']:.1%}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
