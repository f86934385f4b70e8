"""Compile and run time of the exact score (:mod:`probssm.kalman.score`) alone, by variant.

The backward adjoint recursion as probssm computes it ("chunked": sequential inside chunks of 32
steps, recursive doubling across them), as ``lax.associative_scan`` (``2 log2 T`` unrolled
levels, :math:`O(T)` work) or as recursive doubling over all steps (one compiled level,
:math:`O(T \\log T)` work); the small per-step products as sums of outer products of sliced
columns and rows ("outer", :func:`probssm.kalman._linalg.matmul`, what probssm uses), as dots
(``precision="highest"``: batched GEMMs that XLA autotunes on a GPU) or as one broadcast
multiply-and-sum (a reduction fusion).
Inputs: float32 filtered moments of the right shapes (identity covariances, random
observations), one model. Checks that every variant gives the same gradient as the first.

Usage (GPU)::

    PYTHONPATH=$PWD python benchmarks/score_compile_probe.py --json $OUT/score.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from probssm import kalman
from probssm.kalman import score

def _associative(elements, algebra):
    return jax.lax.associative_scan(algebra.compose, tuple(elements), reverse=True, axis=1)


PRODUCTS = {
    "outer": (score.matmul, score.matvec),
    "dots": (lambda a, b: jnp.matmul(a, b, precision="highest"),
             lambda a, x: jnp.matmul(a, x[..., None], precision="highest")[..., 0]),
    "sum": (lambda a, b: jnp.sum(a[..., :, :, None] * b[..., None, :, :], axis=-2),
            lambda a, x: jnp.sum(a * x[..., None, :], axis=-1)),
}
SCANS = {"chunked": score._suffix_compositions, "associative": _associative,
         "doubling": score._suffix_doubling}


def problem(B, T, n, m=2, seed=0):
    """A model and float32 inputs of the score's shapes."""
    rng = np.random.default_rng(seed)
    eye = np.eye(n, dtype=np.float32)
    model = kalman.LGSSM(0.5 * eye, eye, rng.normal(size=(m, n)).astype(np.float32),
                         np.eye(m, dtype=np.float32), np.zeros(n, np.float32), eye)
    y = jnp.asarray(rng.normal(size=(B, T, m)), jnp.float32)
    mean = jnp.zeros((B, T, n), jnp.float32)
    cov = jnp.broadcast_to(jnp.eye(n, dtype=jnp.float32), (B, T, n, n))
    states = dict(predicted_mean=mean, predicted_cov=2 * cov, mean=mean, cov=cov)
    return model, y, states, jnp.ones(B, jnp.float32)


def time_variant(args_, runs):
    """Trace+lower, XLA compile and median run time of the score under the current variant."""
    t0 = time.perf_counter()
    lowered = jax.jit(lambda *a: score.log_likelihood_vjp(*a)).lower(*args_)
    t1 = time.perf_counter()
    compiled = lowered.compile()
    t2 = time.perf_counter()
    out = jax.block_until_ready(compiled(*args_))
    times = []
    for _ in range(runs):
        s = time.perf_counter()
        jax.block_until_ready(compiled(*args_))
        times.append(time.perf_counter() - s)
    return out, dict(trace_lower_s=t1 - t0, xla_compile_s=t2 - t1, compile_s=t2 - t0,
                     run_ms=1e3 * statistics.median(times))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", nargs="+", default=["1000000:1:4", "1000000:1:8", "1000:1024:4"],
                    metavar="T:batch:n")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    device = jax.devices()[0]
    result = dict(device=getattr(device, "device_kind", str(device)), jax=jax.__version__,
                  entries=[])
    print(f"device: {result['device']}, jax {jax.__version__}", flush=True)
    originals = (score.matmul, score.matvec, score._suffix_compositions)
    for size in args.sizes:
        T, B, n = (int(float(v)) for v in size.split(":"))
        problem_args = problem(B, T, n)
        first = None
        for scan_name, scan in SCANS.items():
            for prod_name, (mm, mv) in PRODUCTS.items():
                score.matmul, score.matvec, score._suffix_compositions = mm, mv, scan
                try:
                    out, info = time_variant(problem_args, args.runs)
                finally:
                    score.matmul, score.matvec, score._suffix_compositions = originals
                leaves = [np.asarray(x, np.float64) for x in jax.tree_util.tree_leaves(out)]
                if first is None:
                    first = leaves
                info["max_rel_diff"] = max(
                    float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))
                    for a, b in zip(leaves, first))
                info.update(T=T, batch=B, n=n, scan=scan_name, products=prod_name)
                result["entries"].append(info)
                print(f"T={T} B={B} n={n} {scan_name:11s} {prod_name:5s} trace+lower "
                      f"{info['trace_lower_s']:5.2f} s  xla {info['xla_compile_s']:5.2f} s  "
                      f"run {info['run_ms']:7.3f} ms  diff {info['max_rel_diff']:.1e}", flush=True)
                if args.json:
                    Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
