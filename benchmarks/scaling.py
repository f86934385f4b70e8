"""Scaling out: panel fits on a Dask cluster of 1 and 2 workers against the in-process fit.

Simulates ``--n-series`` local linear trend series of length ``--T`` (random variances,
seeded) and fits ``UnobservedComponents("local linear trend")`` to all of them

* in process (one batched compiled program; on a CPU it already runs one work queue per
  usable core in threads), on every usable core and on one core;
* with ``set_config(backend="dask")`` on a ``distributed.LocalCluster`` of 1 and of 2
  single-threaded worker processes, each worker pinned to its own core (``--no-pin`` leaves
  them unpinned: each worker then runs a queue per core of the machine), the series in chunks
  of ``--chunk-size`` (default a quarter of the panel, the same tasks for both clusters).

Each configuration is timed cold (its first fit: workers compile, or load the programs from
JAX's persistent cache) and warm: ``--repeats`` rounds in which every configuration fits once,
interleaved, so that load from other processes falls on all of them alike (median and best
reported; both clusters stay up throughout, the idle one costs nothing). The script prints
wall times, the speed-up of 2 workers over 1 and the parallel efficiency (speed-up / 2), the
largest differences of the Dask fits' parameters (each series' in units of its largest one:
variances estimated at zero differ by rounding only) and log-likelihoods from the in-process
fit, and the machine.
Run: ``python benchmarks/scaling.py [--n-series 2000 --T 100] [--quick] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pickle
import time

# One XLA compute thread per process, as in the test suite: the parallelism measured is the
# work queues' and the workers', not XLA's thread pool (set before JAX is imported).
if "xla_cpu_multi_thread_eigen" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1").strip()

import numpy as np
import pandas as pd
from machine import cpu_machine, table_text


def simulate(n_series: int, T: int, seed: int) -> pd.DataFrame:
    """``(T, n_series)`` local linear trend series with log-uniform variances, monthly index."""
    rng = np.random.default_rng(seed)
    s_irr, s_lvl, s_trd = np.exp(rng.uniform(np.log([0.1, 0.01, 1e-4]), np.log([1.0, 0.2, 1e-2]),
                                             size=(n_series, 3))).T
    slope = np.cumsum(rng.normal(size=(n_series, T)) * np.sqrt(s_trd)[:, None], axis=1)
    level = 10 + np.cumsum(slope + rng.normal(size=(n_series, T)) * np.sqrt(s_lvl)[:, None], axis=1)
    y = level + rng.normal(size=(n_series, T)) * np.sqrt(s_irr)[:, None]
    index = pd.period_range("2000-01", periods=T, freq="M")
    return pd.DataFrame(y.T, index=index, columns=[f"series_{i}" for i in range(n_series)])


def model():
    from probssm.structural import UnobservedComponents

    return UnobservedComponents("local linear trend")


def pinned(fit, cores: set | None):
    """``fit`` run with this process on ``cores`` (None: every usable core)."""
    def run():
        before = os.sched_getaffinity(0)
        if cores is not None:
            os.sched_setaffinity(0, cores)
        try:
            return fit()
        finally:
            os.sched_setaffinity(0, before)

    return run


def pickle_cost(fitted) -> dict:
    """What the fitted single-series estimators cost to send back: pickled bytes, and
    microseconds to pickle (on a worker) and unpickle (in the calling process) per series."""
    from probssm.distributed.dask import _paused_gc  # as the Dask backend does

    estimators = fitted.estimators_
    with _paused_gc():
        t0 = time.perf_counter()
        blob = pickle.dumps(estimators, protocol=pickle.HIGHEST_PROTOCOL)
        t1 = time.perf_counter()
        pickle.loads(blob)
        t2 = time.perf_counter()
    n = len(estimators)
    return {"bytes_per_series": len(blob) / n, "dumps_us_per_series": 1e6 * (t1 - t0) / n,
            "loads_us_per_series": 1e6 * (t2 - t1) / n}


def _pin(core: int) -> int:
    os.sched_setaffinity(0, {core})
    return core


def dask_cluster(stack, n_workers: int, pin: bool):
    """A Dask client of a fresh LocalCluster of ``n_workers`` single-threaded processes, each
    pinned to its own core with ``pin`` (closed when ``stack`` closes)."""
    import distributed

    cores = sorted(os.sched_getaffinity(0))
    cluster = stack.enter_context(distributed.LocalCluster(
        n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None))
    client = stack.enter_context(distributed.Client(cluster, set_as_default=False))
    if pin:
        for i, address in enumerate(sorted(client.nthreads())):
            client.run(_pin, cores[i % len(cores)], workers=[address])
    return client


def measure(settings: dict, repeats: int) -> dict:
    """Time every setting's fit: a first (cold) fit each, then ``repeats`` rounds in which
    every setting fits once, interleaved, so that load from other processes on the machine
    falls on all settings alike. Returns ``name -> (fitted, cold s, [warm s, ...])``."""
    out = {}
    for name, fit in settings.items():
        t0 = time.perf_counter()
        fitted = fit()
        out[name] = [fitted, time.perf_counter() - t0, []]
    for _ in range(repeats):
        for name, fit in settings.items():
            t0 = time.perf_counter()
            out[name][0] = fit()
            out[name][2].append(time.perf_counter() - t0)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-series", type=int, default=2000)
    parser.add_argument("--T", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5,
                        help="interleaved rounds of warm fits (median and best reported)")
    parser.add_argument("--chunk-size", type=int, default=None, help="series per task (default: a quarter)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-pin", action="store_true", help="leave the Dask workers unpinned")
    parser.add_argument("--quick", action="store_true", help="a tiny run (60 series, T=40, 1 repeat)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.n_series, args.T, args.repeats = 60, 40, 1
    chunk = args.chunk_size or -(-args.n_series // 4)
    machine = cpu_machine()
    cores = sorted(os.sched_getaffinity(0))
    pin = not args.no_pin

    panel = simulate(args.n_series, args.T, args.seed)
    with contextlib.ExitStack() as stack:
        clients = {n: dask_cluster(stack, n, pin) for n in (1, 2)}
        settings = {
            f"in process, {len(cores)} cores": (0, len(cores), pinned(lambda: model().fit(panel), None)),
            "in process, 1 core": (0, 1, pinned(lambda: model().fit(panel), {cores[0]})),
        }
        for n, client in clients.items():
            est = model().set_config(backend="dask", client=client, chunk_size=chunk)
            settings[f"dask, {n} worker{'s' * (n > 1)}"] = (n, n if pin else len(cores),
                                                           lambda est=est: est.fit(panel))
        timings = measure({name: fit for name, (_, _, fit) in settings.items()}, args.repeats)
    reference = timings[f"in process, {len(cores)} cores"][0]
    rows = []
    for name, (n_workers, n_cores, _) in settings.items():
        fitted, cold, runs = timings[name]
        row = {"setting": name, "workers": n_workers, "cores": n_cores, "cold_s": cold,
               "warm_median_s": float(np.median(runs)), "warm_min_s": float(np.min(runs)),
               "warm_runs_s": runs}
        if n_workers:
            ours, theirs = fitted.params_.to_numpy(), reference.params_.to_numpy()
            scale = np.max(np.abs(theirs), axis=1, keepdims=True)  # each series' largest parameter
            row["max_param_diff_vs_in_process"] = float(np.max(np.abs(ours - theirs) / scale))
            row["max_loglik_diff_vs_in_process"] = float(np.max(np.abs(
                fitted.loglik_.to_numpy() - reference.loglik_.to_numpy())))
        rows.append(row)
    transfer = pickle_cost(reference)
    by_name = {r["setting"]: r for r in rows}
    one, two = by_name["dask, 1 worker"], by_name["dask, 2 workers"]
    speedup = {k: one[k] / two[k] for k in ("warm_median_s", "warm_min_s")}
    result = {
        "benchmark": "scaling_dask_cpu", "model": 'UnobservedComponents("local linear trend")',
        "n_series": args.n_series, "T": args.T, "chunk_size": chunk, "repeats": args.repeats,
        "workers_pinned": pin, "xla_flags": os.environ.get("XLA_FLAGS"),
        "machine": machine, "rows": rows,
        "speedup_2_vs_1_workers": speedup, "parallel_efficiency": {k: v / 2 for k, v in speedup.items()},
        "dask_2_workers_vs_in_process_all_cores": rows[0]["warm_median_s"] / two["warm_median_s"],
        "fitted_estimator_transfer": transfer,
        "load_average_end": list(os.getloadavg()),
    }
    import dask
    import jax

    result["versions"] = {"dask": dask.__version__, "jax": jax.__version__}
    table = pd.DataFrame(rows).set_index("setting")[["cores", "cold_s", "warm_median_s", "warm_min_s"]]
    table["series_per_s"] = args.n_series / table["warm_median_s"]
    print(f"{args.n_series} series x T={args.T}, {result['model']}, chunks of {chunk}, "
          f"workers {'pinned to one core each' if pin else 'unpinned'}, {args.repeats} interleaved rounds")
    print(f"machine: {machine['cpu_model']}, {machine['cpus_usable']} usable cores, "
          f"load {machine['load_average_start']} at the start, {result['load_average_end']} at the end")
    print(table_text(table, floatfmt=".2f"))
    print(f"2 workers vs 1: speed-up {speedup['warm_median_s']:.2f}x (medians; {speedup['warm_min_s']:.2f}x "
          f"best of {args.repeats}), parallel efficiency {speedup['warm_median_s'] / 2:.0%}; 2 workers vs in "
          f"process on {len(cores)} cores: {result['dask_2_workers_vs_in_process_all_cores']:.2f}x")
    print("Dask vs in process, largest difference of a parameter (in units of the series' largest "
          "parameter) / of a log-likelihood: "
          + ", ".join(f"{r['workers']} worker(s) {r['max_param_diff_vs_in_process']:.1e} / "
                      f"{r['max_loglik_diff_vs_in_process']:.1e}" for r in rows if r["workers"]))
    print(f"a fitted series travels as {transfer['bytes_per_series']:.0f} bytes; pickling "
          f"{transfer['dumps_us_per_series']:.0f} us and unpickling {transfer['loads_us_per_series']:.0f} us "
          "a series (one core)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
