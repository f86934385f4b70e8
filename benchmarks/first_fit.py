"""First fits: how long a user waits for probssm's first answer, beside statsmodels.

Measured in one run, on the same data, for both libraries:

(a) **import + first use**, each library in a fresh interpreter (a child process, so nothing is
    imported or compiled yet): ``import probssm`` then ``probssm.LocalLevel().fit(nile)``;
    ``import statsmodels.api`` then ``UnobservedComponents(nile, "local level").fit(disp=False)``.
(b) **first fit of a new length**, local level model on the Nile series: one warm-up fit at
    ``--ll-warmup`` observations, then one fit at each of ``--ll-lengths`` (each length new to
    the process, so probssm traces and compiles for it unless it can reuse a program).
(c) the same for the **airline model** on ``log(airpassengers[:k])``:
    ``probssm.structural.SARIMAX((0, 1, 1), (0, 1, 1, 12))`` against statsmodels'
    ``SARIMAX(order=(0, 1, 1), seasonal_order=(0, 1, 1, 12))``.

Each timing is one call (a *first* fit cannot be repeated); a second fit at the last length is
reported too (``warm``). probssm keeps compiled programs in JAX's persistent compilation cache
(``PROBSSM_CACHE_DIR``): ``--compilation-cache cold`` (default) measures with an empty one, as
on a user's first day; ``warm`` first runs the same measurement once in a child process to fill
it, as in every later process. Target: the first fit of a new length under 0.2 s for both
models. Ratios are ``statsmodels time / probssm time`` (above 1: probssm faster).

Agreement: probssm's default is the exact diffuse initialisation, so every fit is checked
against statsmodels' ``use_exact_diffuse=True`` fit of the same data (an extra fit, not
timed): the maximised log-likelihoods must agree to ``1e-6`` relative, and statsmodels'
log-likelihood evaluated at probssm's estimates is recorded as well. The script exits 1 when a
check fails.

Usage::

    python benchmarks/first_fit.py                                  # table on stdout
    python benchmarks/first_fit.py --output                         # also benchmarks/results/first_fit_cpu.json
    python benchmarks/first_fit.py --quick --output /tmp/ff.json    # one length each (smoke test)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from machine import cpu_machine
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the checkout's probssm, in this process and (PYTHONPATH) in the children
DEFAULT_OUTPUT = ROOT / "benchmarks" / "results" / "first_fit_cpu.json"
TARGET_SECONDS = 0.2
REL_TOL = 1e-6

# Child-process programs for (a): they print a JSON line of timings.
_COLD = {
    "probssm": (
        "import time, json, numpy as np\n"
        "t0 = time.perf_counter()\n"
        "import probssm\n"
        "t1 = time.perf_counter()\n"
        "m = probssm.LocalLevel().fit(np.asarray(Y))\n"
        "t2 = time.perf_counter()\n"
        "print(json.dumps({'import_s': t1 - t0, 'first_fit_s': t2 - t1, 'loglik': float(m.loglik_)}))\n"
    ),
    "statsmodels": (
        "import time, json, warnings, numpy as np\n"
        "t0 = time.perf_counter()\n"
        "import statsmodels.api as sm\n"
        "t1 = time.perf_counter()\n"
        "with warnings.catch_warnings():\n"
        "    warnings.simplefilter('ignore')\n"
        "    r = sm.tsa.UnobservedComponents(np.asarray(Y), 'local level').fit(disp=False)\n"
        "t2 = time.perf_counter()\n"
        "print(json.dumps({'import_s': t1 - t0, 'first_fit_s': t2 - t1, 'loglik': float(r.llf)}))\n"
    ),
}


def load_data():
    """Nile (100 values) and AirPassengers (144 values) as float64 arrays, read without
    importing probssm (so the cold import in (a) and the first use in (b) are probssm's own)."""
    import pandas as pd
    import statsmodels.datasets.nile as nile_module

    nile = pd.read_csv(Path(nile_module.__file__).with_name("nile.csv"))["volume"].to_numpy(float)
    air_csv = ROOT / "probssm" / "datasets" / "airpassengers.csv"
    air = pd.read_csv(air_csv)["passengers"].to_numpy(float)
    return nile, air


def cold_start(library: str, y: np.ndarray) -> dict:
    code = f"Y = {y.tolist()!r}\n" + _COLD[library]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=600, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"cold start of {library} failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_wall_s"] = wall
    return out


# ------------------------------------------------------------------------------------------------
# The two models, each library
# ------------------------------------------------------------------------------------------------
def probssm_fit(model: str, y: np.ndarray):
    import probssm

    est = probssm.LocalLevel() if model == "local level" else probssm.structural.SARIMAX((0, 1, 1), (0, 1, 1, 12))
    t0 = time.perf_counter()
    est.fit(y)
    return time.perf_counter() - t0, float(est.loglik_), est.params_


def _sm_model(model: str, y: np.ndarray, exact_diffuse: bool = False):
    import statsmodels.api as sm

    kw = {"use_exact_diffuse": True} if exact_diffuse else {}
    if model == "local level":
        return sm.tsa.UnobservedComponents(y, "local level", **kw)
    return sm.tsa.SARIMAX(y, order=(0, 1, 1), seasonal_order=(0, 1, 1, 12), **kw)


def statsmodels_fit(model: str, y: np.ndarray):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        res = _sm_model(model, y).fit(disp=False)
        seconds = time.perf_counter() - t0
    return seconds, float(res.llf)


def statsmodels_check(model: str, y: np.ndarray, probssm_params) -> dict:
    """statsmodels' exact diffuse MLE and its log-likelihood at probssm's estimates (untimed)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mod = _sm_model(model, y, exact_diffuse=True)
        res = mod.fit(disp=False)
        at_ours = float(mod.loglike(np.asarray(probssm_params.reindex(mod.param_names), float)))
    return {"loglik_exact_diffuse": float(res.llf), "loglik_at_probssm_params": at_ours}


def run_model(model: str, series: np.ndarray, warmup: int, lengths: list[int]) -> dict:
    """Warm-up fit at ``warmup`` observations, then first fits at each new length, then a second
    (warm) fit at the last length; the same sequence for each library."""
    out = {"model": model, "warmup_length": warmup, "fits": []}
    p_warm, _, _ = probssm_fit(model, series[:warmup])
    s_warm, _ = statsmodels_fit(model, series[:warmup])
    out["warmup"] = {"probssm_s": p_warm, "statsmodels_s": s_warm}
    for k in lengths:
        y = series[:k]
        p_s, p_ll, p_params = probssm_fit(model, y)
        s_s, s_ll = statsmodels_fit(model, y)
        check = statsmodels_check(model, y, p_params)
        rel = abs(p_ll - check["loglik_exact_diffuse"]) / abs(check["loglik_exact_diffuse"])
        out["fits"].append({
            "length": k, "probssm_s": p_s, "statsmodels_s": s_s, "ratio": s_s / p_s,
            "target_s": TARGET_SECONDS, "met": p_s < TARGET_SECONDS,
            "probssm_loglik": p_ll, "statsmodels_loglik": s_ll, **check,
            "loglik_rel_diff": rel, "agrees": rel <= REL_TOL,
        })
    k = lengths[-1]
    p_s, _, _ = probssm_fit(model, series[:k])
    s_s, _ = statsmodels_fit(model, series[:k])
    out["warm"] = {"length": k, "probssm_s": p_s, "statsmodels_s": s_s, "ratio": s_s / p_s}
    return out


# ------------------------------------------------------------------------------------------------
# Machine and versions
# ------------------------------------------------------------------------------------------------
def machine_info() -> dict:
    return cpu_machine(jax_compilation_cache_dir=os.environ.get("PROBSSM_CACHE_DIR"))


def versions() -> dict:
    out = {"python": platform.python_version()}
    for dist in ("probssm", "jax", "jaxlib", "numpy", "scipy", "pandas", "statsmodels"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    try:
        out["probssm_git"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                            capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        out["probssm_git"] = None
    return out


# ------------------------------------------------------------------------------------------------
# Main
# ------------------------------------------------------------------------------------------------
def print_table(result: dict) -> None:
    mi, v = result["machine"], result["versions"]
    print(f"machine:  {mi['cpu_model']}, {mi['cpu_count']} cores ({mi['cpus_usable']} usable), "
          f"load {mi['load_average_start']}")
    print("versions: " + ", ".join(f"{k} {val}" for k, val in v.items()))
    print(f"persistent compilation cache: {result['compilation_cache']}")
    print()
    cold = result["cold_start"]
    print("(a) import + first use, fresh process (LocalLevel on Nile, 100 values):")
    for lib, c in cold.items():
        print(f"    {lib:12s} import {c['import_s']:.2f} s + first fit {c['first_fit_s']:.2f} s "
              f"= {c['import_s'] + c['first_fit_s']:.2f} s")
    print()
    print(f"| model | length | probssm s | statsmodels s | ratio (sm / probssm) | target | met |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for m in result["models"]:
        w = m["warmup"]
        print(f"| {m['model']} (warm-up) | {m['warmup_length']} | {w['probssm_s']:.3f} | "
              f"{w['statsmodels_s']:.3f} | {w['statsmodels_s'] / w['probssm_s']:.3g} | | |")
        for f in m["fits"]:
            print(f"| {m['model']} | {f['length']} | {f['probssm_s']:.3f} | {f['statsmodels_s']:.3f} | "
                  f"{f['ratio']:.3g} | < {f['target_s']} s | {'met' if f['met'] else '**not met**'} |")
        w = m["warm"]
        print(f"| {m['model']} (second fit) | {w['length']} | {w['probssm_s']:.3f} | "
              f"{w['statsmodels_s']:.3f} | {w['ratio']:.3g} | | |")
    print()
    worst = max(f["loglik_rel_diff"] for m in result["models"] for f in m["fits"])
    print(f"log-likelihood agreement with statsmodels (exact diffuse): worst {worst:.1e} relative "
          f"(tolerance {REL_TOL:g})")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one new length per model (smoke test)")
    parser.add_argument("--ll-warmup", type=int, default=80)
    parser.add_argument("--ll-lengths", type=int, nargs="+", default=[97, 100, 60, 45, 90])
    parser.add_argument("--air-warmup", type=int, default=96)
    parser.add_argument("--air-lengths", type=int, nargs="+", default=[132, 144, 120, 108, 84])
    parser.add_argument("--compilation-cache", choices=["cold", "warm"], default="cold",
                        help="measure with an empty persistent compilation cache, or one filled by "
                             "a first run of the same measurement (default: cold)")
    parser.add_argument("--output", nargs="?", const=str(DEFAULT_OUTPUT), default=None, metavar="PATH",
                        help=f"write results as JSON (PATH defaults to {DEFAULT_OUTPUT.relative_to(ROOT)})")
    parser.add_argument("--keep-cache", action="store_true", help=argparse.SUPPRESS)  # the warm run's filler
    args = parser.parse_args(argv)
    if args.quick:
        args.ll_warmup, args.ll_lengths = 60, [70]
        args.air_warmup, args.air_lengths = 72, [84]

    if not args.keep_cache:
        os.environ["PROBSSM_CACHE_DIR"] = tempfile.mkdtemp(prefix="probssm-first-fit-cache-")
    os.environ.pop("PROBSSM_NO_COMPILATION_CACHE", None)
    if args.compilation_cache == "warm":
        lengths = ["--ll-warmup", str(args.ll_warmup), "--ll-lengths", *map(str, args.ll_lengths),
                   "--air-warmup", str(args.air_warmup), "--air-lengths", *map(str, args.air_lengths)]
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        fill = [sys.executable, str(Path(__file__).resolve()), "--keep-cache", *lengths]
        subprocess.run(fill, check=True, env=env, stdout=subprocess.DEVNULL)
    nile, air = load_data()
    result = {
        "benchmark": "first_fit",
        "date_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine_info(),
        "versions": versions(),
        "target": f"first fit of a new length (after a warm-up fit at another length) < {TARGET_SECONDS} s",
        "rel_tol": REL_TOL,
        "compilation_cache": args.compilation_cache,
        "cold_start": {lib: cold_start(lib, nile) for lib in ("probssm", "statsmodels")},
    }
    t0 = time.perf_counter()
    result["models"] = [
        run_model("local level", nile, args.ll_warmup, args.ll_lengths),
        run_model("airline", np.log(air), args.air_warmup, args.air_lengths),
    ]
    result["seconds_models"] = time.perf_counter() - t0
    try:
        result["machine"]["load_average_end"] = list(os.getloadavg())
    except OSError:
        pass
    failures = [f"{m['model']} T={f['length']}: rel diff {f['loglik_rel_diff']:.1e}"
                for m in result["models"] for f in m["fits"] if not f["agrees"]]
    result["agreement"] = {"passed": not failures, "failures": failures}
    result["all_met"] = all(f["met"] for m in result["models"] for f in m["fits"])

    print_table(result)
    if args.output:
        path = Path(args.output)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=1) + "\n")
        print(f"\nJSON: {path}")
    if failures:
        print("AGREEMENT CHECK FAILED: " + "; ".join(failures))
        return 1
    print("AGREEMENT CHECK PASSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
