"""Run time and compile time of the kernel filter, log-likelihood and smoother by chunk length,
chunk-scan group size and top level (GPU).

Calls :func:`probssm.kalman.ops.filter_kernel.filter_batch` (``log_likelihood_batch``,
``smooth_batch``) directly with ``chunk``, ``group`` and ``top`` (``--configs CHUNK:GROUP[:TOP] ...``, ``None``
for the default; :func:`probssm.kalman.ops.chunk_scan.chunk_scan`) on a random stable float32
(``--dtype``) model (``n = --n``, ``m = 2``) and standard normal ``y`` of ``--B`` series of
``--T`` steps with 2 % NaN rows, all in one process: ``lower_s`` (tracing and lowering), ``xla_s`` (XLA
compile), ``run_ms`` (median of ``--runs`` calls ending in ``block_until_ready``),
``pipelined_ms`` (``--runs`` calls queued back to back, then one wait, per call: the device's
time once dispatch overlaps), the log-likelihood, and ``max_rel_diff``: the largest relative
difference of every output from the first configuration's (a wrong chunk scan, a race between
lanes of the top level's doubling among them, shows there). One JSON line per configuration and
mode on stdout, appended to ``--json`` if given. Run it from a checkout root (``--tag`` names the
checkout), e.g. an older commit's worktree beside the current one for an A/B comparison.

Usage (GPU)::

    python benchmarks/probes/kernel_geometry_sweep.py --configs 64:4 32:4 128:8 --modes loglik filter
    python benchmarks/probes/kernel_geometry_sweep.py --configs 64:4:0 64:4:256 32:4:256 --B 1 --T 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
sys.path.insert(0, os.getcwd())
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # benchmarks/: parallel_kalman

import jax
import numpy as np

from parallel_kalman import mean_err
from probssm import kalman
from probssm.kalman.ops import filter_kernel as kernel


def parse_args(argv=None):
    """The command line (module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tag", default="current")
    ap.add_argument("--T", type=int, default=1_000_000)
    ap.add_argument("--B", type=int, default=1)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--configs", nargs="+", default=["None:None"], metavar="CHUNK:GROUP[:TOP]")
    ap.add_argument("--modes", nargs="+", default=["loglik", "filter"],
                    choices=["loglik", "filter", "smooth"])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    ap.add_argument("--json", default=None)
    return ap.parse_args(argv)


def problem(n, B, T, m=2, seed=0, dtype=np.float32):
    """A random stable model and ``y`` ``(B, T, m)`` with 2 % NaN rows, of ``dtype``."""
    rng = np.random.default_rng(seed)
    F = rng.normal(size=(n, n))
    F *= 0.9 / np.max(np.abs(np.linalg.eigvals(F)))

    def pd(k):
        a = rng.normal(size=(k, k))
        return a @ a.T / k + 0.1 * np.eye(k)

    model = kalman.LGSSM(*(np.asarray(v, dtype) for v in (
        F, pd(n), rng.normal(size=(m, n)), pd(m), np.zeros(n), pd(n))))
    y = rng.normal(size=(B, T, m)).astype(dtype)
    y[:, rng.uniform(size=T) < 0.02] = np.nan
    return model, jax.device_put(y)


def program(model, mode, kw):
    """The jitted function of one mode."""
    if mode == "loglik":
        return jax.jit(lambda y_: kernel.log_likelihood_batch(model, y_, **kw))
    if mode == "filter":
        return jax.jit(lambda y_: kernel.filter_batch(model, y_, **kw))
    return jax.jit(lambda y_: kernel.smooth_batch(model, y_, **kw))


def keywords(config):
    """``CHUNK:GROUP[:TOP]`` as keyword arguments of the kernel programs (``None``: the
    default)."""
    values = [None if v == "None" else int(v) for v in config.split(":")]
    return {k: v for k, v in zip(("chunk", "group", "top"), values) if v is not None}


def max_rel_diff(out, reference):
    """The largest :func:`parallel_kalman.mean_err` of the arrays of ``out`` from
    ``reference``'s."""
    return max(mean_err(a, b) for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(reference)))


def main(argv=None):
    """Time every configuration and mode (module docstring)."""
    args = parse_args(argv)
    if args.dtype == "float64":  # the exactness check: outputs agree to ~1e-12, or a scan is wrong
        jax.config.update("jax_enable_x64", True)
    model, y = problem(args.n, args.B, args.T, dtype=np.dtype(args.dtype))
    records, first = [], {}
    for config in args.configs:
        kw = keywords(config)
        for mode in args.modes:
            t0 = time.perf_counter()
            lowered = program(model, mode, kw).lower(y)
            t1 = time.perf_counter()
            compiled = lowered.compile()
            t2 = time.perf_counter()
            out = jax.block_until_ready(compiled(y))
            times = []
            for _ in range(args.runs):
                start = time.perf_counter()
                jax.block_until_ready(compiled(y))
                times.append(time.perf_counter() - start)
            start = time.perf_counter()
            jax.block_until_ready([compiled(y) for _ in range(args.runs)])
            pipelined = (time.perf_counter() - start) / args.runs
            filtered = out.filtered if mode == "smooth" else out
            loglik = out if mode == "loglik" else filtered.log_likelihood_terms
            first.setdefault(mode, out)
            record = dict(tag=args.tag, T=args.T, B=args.B, n=args.n, config=config, **kw,
                          mode=mode, lower_s=t1 - t0, xla_s=t2 - t1,
                          run_ms=1e3 * statistics.median(times), min_ms=1e3 * min(times),
                          pipelined_ms=1e3 * pipelined, ll=float(np.sum(loglik)),
                          max_rel_diff=max_rel_diff(out, first[mode]))
            records.append(record)
            print(json.dumps(record), flush=True)
    if args.json:
        with open(args.json, "a") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in records)


if __name__ == "__main__":
    main()
