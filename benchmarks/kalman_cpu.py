"""CPU benchmark: Kalman-filter log-likelihood of probssm against statsmodels, pykalman, filterpy.

One process, one simulated data set shared by every library. The model is a 4-state,
2-observation, stable, time-invariant linear-Gaussian state-space model with random (seeded)
positive-definite covariances and a proper prior on ``x_0``::

    x_0 ~ N(m0, P0),   y_t = H x_t + eps_t (R),   x_{t+1} = F x_t + eta_t (Q).

For each series length ``T`` the script first checks that every library returns the same
log-likelihood as probssm (relative difference <= 1e-6, about 1e-12 expected), then reports the
median wall time of repeated runs. The process exits with status 1 when any library disagrees.

Usage::

    python benchmarks/kalman_cpu.py                     # T = 1e3, 1e4, 1e5
    python benchmarks/kalman_cpu.py --quick             # T = 1e3 only (smoke test)
    python benchmarks/kalman_cpu.py --json              # also write benchmarks/results/kalman_cpu.json
    python benchmarks/kalman_cpu.py --sizes 1000 5000 --json /tmp/out.json

Conventions (see benchmarks/README.md): times are medians of repeated ``time.perf_counter``
runs; ``ratio`` is ``peer time / probssm time`` (> 1: probssm is faster); the probssm reference
row is ``kalman.log_likelihood`` wrapped in ``jax.jit`` with the data already on the device,
its compile time reported separately.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

# One thread per library, set before numpy/JAX load their thread pools (``--default-threads``
# leaves the environment alone). A Kalman filter is a sequential recursion on 4x4 matrices, so
# extra threads only add synchronisation, and on the shared 2-core VM these numbers come from
# they hurt badly: a threaded OpenBLAS made statsmodels' univariate filter stall ~8 ms per call
# (0.4 ms -> 8 ms at T=1000) and XLA's multi-threaded CPU runtime made probssm's scan ~2x slower.
SINGLE_THREAD_ENV = {
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
}
DEFAULT_THREADS = "--default-threads" in sys.argv[1:]
if not DEFAULT_THREADS:
    for _var, _value in SINGLE_THREAD_ENV.items():
        os.environ.setdefault(_var, _value)
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np  # noqa: E402

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)  # every library computes in float64

import jax.numpy as jnp  # noqa: E402

from machine import cpu_machine, load_average  # noqa: E402
from probssm import kalman  # noqa: E402

RESULTS_DEFAULT = Path(__file__).resolve().parent / "results" / "kalman_cpu.json"
REL_TOL = 1e-6
REFERENCE = "probssm (jit)"


# ------------------------------------------------------------------------------------------------
# Model and data
# ------------------------------------------------------------------------------------------------
def make_model(seed: int, n: int = 4, m: int = 2, spectral_radius: float = 0.9):
    """Random stable time-invariant model with PD covariances and a proper prior (numpy float64)."""
    rng = np.random.default_rng(seed)
    F = rng.normal(size=(n, n))
    F *= spectral_radius / np.max(np.abs(np.linalg.eigvals(F)))

    def pd(k, floor):
        a = rng.normal(size=(k, k))
        return a @ a.T / k + floor * np.eye(k)

    Q = pd(n, 0.1)
    H = rng.normal(size=(m, n))
    R = pd(m, 0.1)
    m0 = rng.normal(size=n)
    P0 = pd(n, 1.0)
    return dict(F=F, Q=Q, H=H, R=R, m0=m0, P0=P0)


def simulate(p, T: int, seed: int) -> np.ndarray:
    """Observations ``(T, m)`` drawn from the model (x_0 from the prior), float64.

    Separate random streams for x_0, the state noise and the observation noise, so a shorter
    series is a prefix of a longer one: ``T=1000`` is the same data in every run of the script.
    """
    r0, r_eta, r_eps = (np.random.default_rng(s) for s in np.random.SeedSequence(seed + 1).spawn(3))
    n, m = p["F"].shape[0], p["H"].shape[0]
    cq, cr, c0 = (np.linalg.cholesky(p[k]) for k in ("Q", "R", "P0"))
    eta = r_eta.standard_normal(size=(T, n)) @ cq.T
    eps = r_eps.standard_normal(size=(T, m)) @ cr.T
    x = p["m0"] + c0 @ r0.standard_normal(size=n)
    states = np.empty((T, n))
    F = p["F"]
    for t in range(T):
        states[t] = x
        x = F @ x + eta[t]
    return np.ascontiguousarray(states @ p["H"].T + eps)


# ------------------------------------------------------------------------------------------------
# Library runners: each ``make_*`` returns a zero-argument callable computing log p(y)
# ------------------------------------------------------------------------------------------------
def make_probssm_jit(p, y, info):
    """``jax.jit(kalman.log_likelihood)``, compiled ahead of the timed calls."""
    model = kalman.LGSSM(p["F"], p["Q"], p["H"], p["R"], p["m0"], p["P0"])
    y_dev = jax.device_put(jnp.asarray(y, dtype=jnp.float64))
    fn = jax.jit(lambda model_, y_: kalman.log_likelihood(model_, y_))
    t0 = time.perf_counter()
    lowered = fn.lower(model, y_dev)
    t1 = time.perf_counter()
    compiled = lowered.compile()
    t2 = time.perf_counter()
    out = compiled(model, y_dev).block_until_ready()
    t3 = time.perf_counter()
    info.update(trace_lower_seconds=t1 - t0, compile_seconds=t2 - t1, first_run_seconds=t3 - t2)
    assert out.dtype == jnp.float64, out.dtype
    return lambda: float(compiled(model, y_dev).block_until_ready())


def make_probssm_parallel(p, y, info):
    """``method="parallel"`` (associative scan), jitted like the reference; informative on CPU,
    where ``"auto"`` picks the sequential filter."""
    model = kalman.LGSSM(p["F"], p["Q"], p["H"], p["R"], p["m0"], p["P0"])
    y_dev = jax.device_put(jnp.asarray(y, dtype=jnp.float64))
    fn = jax.jit(lambda model_, y_: kalman.log_likelihood(model_, y_, method="parallel"))
    t0 = time.perf_counter()
    lowered = fn.lower(model, y_dev)
    t1 = time.perf_counter()
    compiled = lowered.compile()
    t2 = time.perf_counter()
    compiled(model, y_dev).block_until_ready()
    info.update(trace_lower_seconds=t1 - t0, compile_seconds=t2 - t1,
                first_run_seconds=time.perf_counter() - t2)
    return lambda: float(compiled(model, y_dev).block_until_ready())


def make_probssm_api(p, y, info):
    """The public call as a user writes it: ``kalman.log_likelihood(model, y_numpy)``.

    ``log_likelihood`` is jitted internally (``_filter_jit``) but returns through a jit boundary
    that materialises the whole ``FilterResult``; each call also checks ``y`` on the host and
    copies it to the device.
    """
    model = kalman.LGSSM(p["F"], p["Q"], p["H"], p["R"], p["m0"], p["P0"])
    t0 = time.perf_counter()
    float(kalman.log_likelihood(model, y).block_until_ready())
    info.update(first_call_seconds=time.perf_counter() - t0)
    return lambda: float(kalman.log_likelihood(model, y).block_until_ready())


def _statsmodels_filter(p, y, *, univariate: bool, tolerance: float | None = None):
    from statsmodels.tsa.statespace.kalman_filter import KalmanFilter

    n, m = p["F"].shape[0], p["H"].shape[0]
    kwargs = {} if tolerance is None else {"tolerance": tolerance}
    kf = KalmanFilter(k_endog=m, k_states=n, k_posdef=n, **kwargs)
    kf["design"] = p["H"]
    kf["obs_cov"] = p["R"]
    kf["transition"] = p["F"]
    kf["selection"] = np.eye(n)
    kf["state_cov"] = p["Q"]
    kf.bind(y)  # (nobs, k_endog) C-ordered: bound without a copy
    kf.initialize_known(p["m0"], p["P0"])  # prior of x_0, as in probssm
    kf.set_filter_method(filter_conventional=True, filter_univariate=univariate)
    return kf


def make_statsmodels(univariate: bool, tolerance: float | None = None):
    def make(p, y, info):
        kf = _statsmodels_filter(p, y, univariate=univariate, tolerance=tolerance)
        res = kf.filter()
        info.update(
            filter_method=int(kf.filter_method),
            tolerance=float(kf.tolerance),
            steady_state_converged=bool(res.converged),
            period_converged=int(res.period_converged),
        )
        return lambda: float(kf.loglike())

    return make


def make_pykalman(p, y, info):
    from pykalman import KalmanFilter

    n, m = p["F"].shape[0], p["H"].shape[0]
    kf = KalmanFilter(
        transition_matrices=p["F"], observation_matrices=p["H"],
        transition_covariance=p["Q"], observation_covariance=p["R"],
        transition_offsets=np.zeros(n), observation_offsets=np.zeros(m),
        initial_state_mean=p["m0"], initial_state_covariance=p["P0"],  # prior of x_0
    )
    return lambda: float(kf.loglikelihood(y))


def make_filterpy(p, y, info):
    """filterpy's ``KalmanFilter``: ``update`` then ``predict`` per step.

    filterpy's ``x, P`` are the prior of the next measurement, so the prior of ``x_0`` goes in
    as ``x, P`` and each step runs ``update`` first. ``kf.log_likelihood`` is (lazily)
    ``scipy.stats.multivariate_normal.logpdf(y - H x, cov=S)`` of the last update.
    """
    from filterpy.kalman import KalmanFilter

    n, m = p["F"].shape[0], p["H"].shape[0]

    def run():
        kf = KalmanFilter(dim_x=n, dim_z=m)
        kf.x, kf.P = p["m0"].copy(), p["P0"].copy()
        kf.F, kf.Q, kf.H, kf.R = p["F"], p["Q"], p["H"], p["R"]
        total = 0.0
        for z in y:
            kf.update(z)
            total += kf.log_likelihood
            kf.predict()
        return float(total)

    return run


if "parallel" not in getattr(kalman, "METHODS", ()):
    make_probssm_parallel = None  # an older probssm without the associative-scan filter

LIBRARIES = {
    # name: (factory, jitted?)
    REFERENCE: (make_probssm_jit, True),
    "probssm (API call)": (make_probssm_api, True),
    "probssm (parallel, jit)": (make_probssm_parallel, True),
    "statsmodels (conventional)": (make_statsmodels(False), False),
    "statsmodels (univariate)": (make_statsmodels(True), False),
    "statsmodels (univariate, no steady state)": (make_statsmodels(True, tolerance=0.0), False),
    "pykalman": (make_pykalman, False),
    "filterpy": (make_filterpy, False),
}
LIBRARIES = {name: entry for name, entry in LIBRARIES.items() if entry[0] is not None}


# ------------------------------------------------------------------------------------------------
# Timing
# ------------------------------------------------------------------------------------------------
def time_runs(fn, *, first_seconds, target_seconds, min_repeats, max_repeats):
    """Median of repeated runs; enough repeats to fill ``target_seconds`` (within the bounds)."""
    repeats = int(np.clip(math.ceil(target_seconds / max(first_seconds, 1e-9)), min_repeats, max_repeats))
    times, values = [], []
    gc.collect()
    for _ in range(repeats):
        t0 = time.perf_counter()
        values.append(fn())
        times.append(time.perf_counter() - t0)
    return times, values


def machine_info():
    return cpu_machine(
        processor=platform.processor(), machine=platform.machine(),
        jax_devices=[str(d) for d in jax.devices()],
        threads="library defaults" if DEFAULT_THREADS else "pinned to one thread",
        threads_env={k: os.environ.get(k) for k in SINGLE_THREAD_ENV},
    )


def _git_revision():
    """probssm's git commit and whether the working tree differs (read-only git commands)."""
    root = Path(__file__).resolve().parents[1]
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "probssm"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return rev + (" (probssm/ modified)" if dirty else "")


def versions():
    out = {"python": platform.python_version(), "probssm_git": _git_revision(),
           "jax_backend": jax.default_backend()}
    for dist in ("probssm", "jax", "jaxlib", "numpy", "scipy", "statsmodels", "pykalman", "filterpy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def fmt_seconds(s):
    if s is None:
        return "-"
    return f"{s * 1e3:.3g} ms" if s < 1 else f"{s:.3g} s"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000],
                        help="series lengths T (default: 1000 10000 100000)")
    parser.add_argument("--quick", action="store_true", help="T=1000 only, short timing budget")
    parser.add_argument("--json", nargs="?", const=str(RESULTS_DEFAULT), default=None, metavar="PATH",
                        help="write results as JSON (PATH defaults to benchmarks/results/kalman_cpu.json)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-repeats", type=int, default=3)
    parser.add_argument("--max-repeats", type=int, default=50)
    parser.add_argument("--target-seconds", type=float, default=None,
                        help="timing budget per (library, T) that sets the repeat count (default 2, 0.2 with --quick)")
    parser.add_argument("--max-run-seconds", type=float, default=60.0,
                        help="skip a non-JAX library at a size where one run is predicted to take longer; "
                             "report an extrapolated time instead (default 60)")
    parser.add_argument("--default-threads", action="store_true",
                        help="do not pin BLAS/OpenMP/XLA to one thread (measure each library's default threading)")
    parser.add_argument("--libraries", nargs="+", default=list(LIBRARIES), choices=list(LIBRARIES), metavar="NAME",
                        help="subset of libraries to run (the probssm reference always runs)")
    args = parser.parse_args(argv)
    sizes = [1000] if args.quick else sorted(set(args.sizes))
    target = args.target_seconds if args.target_seconds is not None else (0.2 if args.quick else 2.0)
    libs = [REFERENCE] + [name for name in args.libraries if name != REFERENCE]
    min_repeats = max(3, args.min_repeats)

    now = _dt.datetime.now(_dt.timezone.utc)
    meta = {
        "benchmark": "kalman_cpu",
        "date_utc": now.isoformat(timespec="seconds"),
        "command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]),
        "machine": machine_info(),
        "versions": versions(),
        "settings": {
            "sizes": sizes, "seed": args.seed, "dtype": "float64", "min_repeats": min_repeats,
            "max_repeats": args.max_repeats, "target_seconds": target,
            "max_run_seconds": args.max_run_seconds, "rel_tol": REL_TOL,
            "statistic": "median of repeated time.perf_counter runs (warm-up run excluded for runs < 5 s)",
            "ratio": "peer seconds / probssm (jit) seconds",
        },
    }
    print("== Kalman log-likelihood benchmark (CPU, float64) ==")
    print(f"date (UTC): {meta['date_utc']}")
    print(f"command:    {meta['command']}")
    mi = meta["machine"]
    print(f"machine:    processor={mi['processor']!r}  lscpu model name={mi['cpu_model']!r}  "
          f"cores={mi['cpu_count']} (usable {mi['cpus_usable']})  {mi['platform']}")
    print(f"JAX devices: {mi['jax_devices']}   threads: {mi['threads']} {mi['threads_env']}")
    print(f"load average at start (1, 5, 15 min): {mi['load_average_start']}")
    print("versions:   " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()))

    p = make_model(args.seed)
    n, m = p["F"].shape[0], p["H"].shape[0]
    meta["model"] = {
        "state_dim": n, "observation_dim": m,
        "spectral_radius_F": float(np.max(np.abs(np.linalg.eigvals(p["F"])))),
        "prior": "proper, x_0 ~ N(m0, P0)",
    }
    print(f"model:      n={n} states, m={m} observations, spectral radius of F "
          f"{meta['model']['spectral_radius_F']:.3f}, seed {args.seed}")
    y_all = simulate(p, max(sizes), args.seed)

    rows = []
    per_step = {}  # library -> seconds per time step at the largest measured T (for extrapolation)
    failures = []
    for T in sizes:
        y = y_all[:T]
        print(f"\n-- T = {T} --")
        ref_value = None
        for name in libs:
            factory, jitted = LIBRARIES[name]
            info = {}
            row = {"T": T, "library": name}
            predicted = per_step.get(name, None)
            if not jitted and predicted is None and T > 2000:
                # Calibrate on a short prefix before committing to a long run.
                calib = factory(p, y_all[:1000], {})
                t0 = time.perf_counter()
                calib()
                predicted = (time.perf_counter() - t0) / 1000
            if not jitted and predicted is not None and predicted * T > args.max_run_seconds:
                est = predicted * T
                row.update(seconds=est, extrapolated=True, runs=0, loglik=None, abs_diff=None, rel_diff=None,
                           note=f"skipped: one run predicted to take {est:.0f} s > {args.max_run_seconds:.0f} s; "
                                f"time extrapolated linearly from {predicted * 1e6:.1f} us/step")
                print(f"{name:44s} skipped (predicted {est:.1f} s per run > {args.max_run_seconds:.0f} s); "
                      f"extrapolated")
                rows.append(row)
                continue

            fn = factory(p, y, info)
            t0 = time.perf_counter()
            value = fn()  # warm-up (and, for probssm, the first call after compilation)
            first = time.perf_counter() - t0
            if not jitted and first >= 5.0:
                # Slow pure-Python/Cython runs: no warm-up effect to remove, so the run counts.
                more, more_values = time_runs(fn, first_seconds=first, target_seconds=0,
                                              min_repeats=min_repeats - 1, max_repeats=min_repeats - 1)
                times, values = [first] + more, [value] + more_values
            else:
                times, values = time_runs(fn, first_seconds=first, target_seconds=target,
                                          min_repeats=min_repeats, max_repeats=args.max_repeats)
            if len(set(values)) > 1 and max(values) - min(values) > 1e-9 * abs(value):
                failures.append(f"{name} T={T}: repeated runs disagree ({min(values)} .. {max(values)})")
            med = statistics.median(times)
            per_step[name] = med / T
            if name == REFERENCE:
                ref_value = value
            abs_diff = abs(value - ref_value)
            rel_diff = abs_diff / abs(ref_value)
            row.update(seconds=med, min_seconds=min(times), max_seconds=max(times), runs=len(times),
                       extrapolated=False, loglik=value, abs_diff=abs_diff, rel_diff=rel_diff, **info)
            rows.append(row)
            if rel_diff > REL_TOL or not math.isfinite(value):
                failures.append(f"{name} T={T}: loglik {value!r} vs probssm {ref_value!r} "
                                f"(relative difference {rel_diff:.3g} > {REL_TOL:g})")
            extra = ""
            if "compile_seconds" in info:
                extra = (f"  [trace+lower {fmt_seconds(info['trace_lower_seconds'])}, "
                         f"compile {fmt_seconds(info['compile_seconds'])}]")
            elif "first_call_seconds" in info:
                extra = f"  [first call incl. compile {fmt_seconds(info['first_call_seconds'])}]"
            elif "steady_state_converged" in info:
                extra = (f"  [steady state reached: {info['steady_state_converged']}"
                         + (f" at t={info['period_converged']}" if info["steady_state_converged"] else "")
                         + "]")
            print(f"{name:44s} loglik {value:+.12e}  rel.diff {rel_diff:.2e}  "
                  f"median {fmt_seconds(med)} of {len(times)}{extra}")

    # Ratios against the probssm reference of the same T.
    ref_time = {r["T"]: r["seconds"] for r in rows if r["library"] == REFERENCE}
    for r in rows:
        r["ratio"] = r["seconds"] / ref_time[r["T"]]

    print("\n== Results (median wall time; ratio = library time / probssm (jit) time, "
          ">1 means probssm is faster) ==")
    header = (f"{'T':>7}  {'library':44s} {'median s':>12} {'min s':>10} {'runs':>5} {'ratio':>8} "
              f"{'|dloglik|':>10} {'rel.diff':>9}")
    print(header)
    print("-" * len(header))
    for r in rows:
        secs = f"{r['seconds']:.4g}" + ("*" if r["extrapolated"] else "")
        ad = "-" if r["abs_diff"] is None else f"{r['abs_diff']:.2e}"
        rd = "-" if r["rel_diff"] is None else f"{r['rel_diff']:.1e}"
        mn = "-" if r.get("min_seconds") is None else f"{r['min_seconds']:.4g}"
        print(f"{r['T']:>7}  {r['library']:44s} {secs:>12} {mn:>10} {r['runs']:>5} {r['ratio']:>8.3g} "
              f"{ad:>10} {rd:>9}")
    if any(r["extrapolated"] for r in rows):
        print("* extrapolated, not measured: " + "; ".join(
            f"{r['library']} T={r['T']}: {r['note']}" for r in rows if r["extrapolated"]))
    for r in rows:
        if "compile_seconds" in r:
            print(f"{r['library']} compile at T={r['T']}: trace+lower {fmt_seconds(r['trace_lower_seconds'])}, "
                  f"XLA compile {fmt_seconds(r['compile_seconds'])}")

    checked = [r for r in rows if r["rel_diff"] is not None and r["library"] != REFERENCE]
    max_rel = max((r["rel_diff"] for r in checked), default=0.0)
    max_abs = max((r["abs_diff"] for r in checked), default=0.0)
    passed = not failures
    meta["agreement"] = {"passed": passed, "rel_tol": REL_TOL, "max_rel_diff": max_rel,
                         "max_abs_diff": max_abs, "failures": failures}
    meta["results"] = rows
    meta["machine"]["load_average_end"] = load_average()
    print(f"\nload average at end (1, 5, 15 min): {meta['machine']['load_average_end']}")
    print(f"max |loglik - probssm|: {max_abs:.3e} (relative {max_rel:.3e}) over {len(checked)} checks")
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(meta, indent=2) + "\n")
        print(f"wrote {path}")
    if passed:
        print(f"AGREEMENT CHECK PASSED (all libraries within {REL_TOL:g} relative of probssm)")
        return 0
    print("AGREEMENT CHECK FAILED:\n  " + "\n  ".join(failures))
    return 1


if __name__ == "__main__":
    sys.exit(main())
