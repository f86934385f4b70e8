"""CPU benchmark: GP log marginal likelihood and its gradient, probssm against tinygp,
scikit-learn and a dense Cholesky GP.

One process, one data set shared by every library: irregular, sorted time stamps (gaps drawn
from an exponential distribution with mean 1) and observations drawn from the model below.
Every library computes ``(log p(y | theta), d log p / d theta)`` for the log-hyperparameters
``theta`` (natural logarithms) in float64, under ``jax.jit(jax.value_and_grad(...))`` for the
JAX libraries. Two models:

``full``: Matérn-5/2 + Cosine x Matérn-3/2 + noise (7 hyperparameters, state dimension
3 + 2 * 2 = 7)::

    k(tau) = v1 m52(tau / l1) + v2 cos(2 pi tau / p) v3 m32(tau / l2),   y = f + N(0, s2)

``matern52``: Matérn-5/2 + noise (3 hyperparameters, state dimension 3), the part of ``full``
that scikit-learn's kernels express exactly (it has no plain cosine kernel; ``ExpSineSquared``
is ``exp(-2 sin^2(pi tau / p) / l^2)``, another covariance).

Who computes what (the hyperparameter mapping is exact; ``theta`` is the log of these values):

============================  ======  ======================================================
library                       models  parameterisation
============================  ======  ======================================================
probssm (sequential, parallel) both   ``Matern52(l1, variance=v1) + Cosine(p, variance=v2)
                                      * Matern32(l2, variance=v3)``;
                                      ``gp.log_marginal_likelihood(kernel, t, y, s2, method=...)``
dense JAX Cholesky            both    probssm's closed-form covariance ``kernel(t) + s2 I``,
                                      ``jax.scipy.linalg.cho_factor`` / ``cho_solve``, the
                                      gradient by the trace formula (``dense_lml``): the
                                      O(T^3) reference of the value check (T <= 1e4)
tinygp quasisep               both    ``quasisep.Matern52(scale=l1, sigma=sqrt(v1))
                                      + quasisep.Cosine(scale=p, sigma=sqrt(v2))
                                      * quasisep.Matern32(scale=l2, sigma=sqrt(v3))``,
                                      ``GaussianProcess(kernel, t, diag=s2,
                                      assume_sorted=True).log_probability(y)``
scikit-learn                  matern52 ``ConstantKernel(v1) * Matern(l1, nu=2.5)
                                      + WhiteKernel(s2)``, ``GaussianProcessRegressor(alpha=0,
                                      optimizer=None)``, ``log_marginal_likelihood(theta,
                                      eval_gradient=True)`` (its ``theta`` is the same log
                                      vector), T <= 1e4
============================  ======  ======================================================

For every model and ``T`` the script first checks that each library's value equals probssm's
sequential one and the dense computation's (relative difference <= 1e-8) and that its gradient
agrees (largest component difference / largest component <= 1e-6); it exits with status 1
otherwise. Then it reports the median wall time of repeated calls; compilation is timed
separately (ahead-of-time ``lower`` / ``compile``) and a warm-up call is excluded.

Usage::

    python benchmarks/gp.py                      # T = 1e3, 5e3, 1e4, 1e5; writes nothing
    python benchmarks/gp.py --json               # also benchmarks/results/gp_cpu.json
    python benchmarks/gp.py --quick              # T = 300 only (smoke test)
    python benchmarks/gp.py --sizes 1000 5000 --models full --json /tmp/gp.json

Conventions (benchmarks/README.md): ratio = peer seconds / probssm sequential seconds of the
same model and ``T`` (> 1: probssm is faster); one thread per library unless
``--default-threads``.
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

# One thread per library (as kalman_cpu.py), set before numpy/JAX start their thread pools: the
# 2-core machine these numbers come from is shared, and a sequential recursion gains nothing
# from threads. ``--default-threads`` leaves the environment alone (the dense O(T^3) peers are
# the ones that could use a second core).
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


def _one_thread_xla_pool():
    """Start JAX's CPU client while the process may run on one CPU only, then give every thread
    all the CPUs back. XLA sizes its intra-op thread pool by the CPUs the process may use when
    the client starts: a pool of one. With the pool of two of the 2-core machine, probssm's
    ``method="parallel"`` program hung for good (every thread asleep) within 300 calls at
    T = 5000: two batched LAPACK custom calls (``dorgqr``, ``trsm``) ran at once, each waiting in
    ``ParallelBatchMap`` for work items that only the other's thread could run. Returns the
    intra-op pool size."""
    cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cpus)})
    try:
        jax.devices()
    finally:
        for tid in os.listdir("/proc/self/task"):
            try:
                os.sched_setaffinity(int(tid), cpus)
            except OSError:  # a thread that has exited since the listing
                pass
    return _xla_pool_threads()


def _xla_pool_threads():
    try:
        return sum(Path(f"/proc/self/task/{tid}/comm").read_text().strip() == "tf_XLAEigen"
                   for tid in os.listdir("/proc/self/task"))
    except OSError:
        return None


XLA_POOL_THREADS = (_one_thread_xla_pool() if not DEFAULT_THREADS and hasattr(os, "sched_setaffinity")
                    else _xla_pool_threads())

import jax.numpy as jnp  # noqa: E402

from machine import cpu_machine, load_average  # noqa: E402
from probssm import gp, kalman  # noqa: E402
from probssm.gp import kernels as pk  # noqa: E402
from probssm.gp.model import state_space_model  # noqa: E402

RESULTS_DEFAULT = Path(__file__).resolve().parent / "results" / "gp_cpu.json"
VALUE_TOL = 1e-8   # relative, on log p(y | theta)
GRAD_TOL = 1e-6    # max_i |g_i - g_ref,i| / max_i |g_ref,i|
REFERENCE = "probssm sequential"
DENSE = "dense JAX Cholesky"
DEFAULT_SIZES = [1000, 5000, 10000, 100000]
QUICK_SIZES = [300]

# Hyperparameters (natural scale; theta = log of these). The time unit is the mean gap.
MODELS = {
    "full": {
        "description": "Matern52 + Cosine x Matern32 + noise",
        "names": ("m52_variance", "m52_lengthscale", "cos_variance", "cos_period",
                  "m32_variance", "m32_lengthscale", "noise"),
        "values": (1.0, 10.0, 1.0, 25.0, 0.5, 100.0, 0.1),
        "state_dim": 7,
    },
    "matern52": {
        "description": "Matern52 + noise",
        "names": ("m52_variance", "m52_lengthscale", "noise"),
        "values": (1.0, 10.0, 0.1),
        "state_dim": 3,
    },
}


# ------------------------------------------------------------------------------------------------
# Models in each library's parameterisation; every function takes theta = log(hyperparameters)
# ------------------------------------------------------------------------------------------------
def probssm_kernel(model: str, theta):
    """probssm's kernel and noise variance for ``theta``."""
    p = jnp.exp(theta)
    if model == "full":
        kernel = pk.Matern52(p[1], variance=p[0]) + pk.Cosine(p[3], variance=p[2]) * pk.Matern32(
            p[5], variance=p[4])
        return kernel, p[6]
    return pk.Matern52(p[1], variance=p[0]), p[2]


def probssm_lml(model: str, method: str):
    def f(theta, t, y):
        kernel, noise = probssm_kernel(model, theta)
        return gp.log_marginal_likelihood(kernel, t, y, noise, method=method)
    return f


def _row_block(T: int, most: int = 100) -> int:
    """The largest divisor of ``T`` not above ``most``."""
    return max(d for d in range(1, min(T, most) + 1) if T % d == 0)


def dense_lml(model: str):
    """``(log N(y; 0, C), gradient)``, ``C = kernel(t) + s2 I`` (probssm's closed-form
    covariance ``kernel.evaluate``), by a Cholesky factor and the trace formula

    .. math::

        \\partial_i \\log p = \\tfrac12 \\big(\\alpha^T \\partial_i C \\, \\alpha
        - \\operatorname{tr}(C^{-1} \\partial_i C)\\big), \\qquad \\alpha = C^{-1} y,

    with :math:`\\partial_i C` by forward-mode differentiation of the covariance, a block of at
    most 100 rows at a time (``lax.map``): a peak of 3 ``(T, T)`` arrays (measured at T = 4000,
    full model). Reverse-mode autodiff through the covariance keeps every intermediate ``(T, T)``
    array of the kernel's evaluation instead: 22 at T = 4000 and twice the time, and at T = 1e4
    the process grew past 18 GB and was killed."""
    def covariance_rows(theta, t, start, rows):
        kernel, noise = probssm_kernel(model, theta)
        tb = jax.lax.dynamic_slice_in_dim(t, start, rows)
        diagonal = (start + jnp.arange(rows))[:, None] == jnp.arange(t.shape[0])[None, :]
        return kernel.evaluate(tb[:, None], t[None, :]) + noise * diagonal

    def f(theta, t, y):
        T = t.shape[0]
        factor = jax.scipy.linalg.cho_factor(covariance_rows(theta, t, 0, T), lower=True)
        alpha = jax.scipy.linalg.cho_solve(factor, y)
        value = (-0.5 * y @ alpha - jnp.sum(jnp.log(jnp.diag(factor[0])))
                 - 0.5 * T * math.log(2 * math.pi))
        inverse = jax.scipy.linalg.cho_solve(factor, jnp.eye(T, dtype=t.dtype))
        rows = _row_block(T)

        def block(start):
            dC = jax.jacfwd(lambda th: covariance_rows(th, t, start, rows))(theta)  # (rows, T, p)
            a = jax.lax.dynamic_slice_in_dim(alpha, start, rows)
            inv = jax.lax.dynamic_slice_in_dim(inverse, start, rows)
            return 0.5 * (jnp.einsum("i,ijk,j->k", a, dC, alpha) - jnp.einsum("ij,ijk->k", inv, dC))

        return value, jax.lax.map(block, jnp.arange(0, T, rows)).sum(0)
    return f


def tinygp_lml(model: str):
    import tinygp
    from tinygp.kernels import quasisep as qs

    def f(theta, t, y):
        p = jnp.exp(theta)
        if model == "full":
            kernel = (qs.Matern52(scale=p[1], sigma=jnp.sqrt(p[0]))
                      + qs.Cosine(scale=p[3], sigma=jnp.sqrt(p[2]))
                      * qs.Matern32(scale=p[5], sigma=jnp.sqrt(p[4])))
            noise = p[6]
        else:
            kernel, noise = qs.Matern52(scale=p[1], sigma=jnp.sqrt(p[0])), p[2]
        return tinygp.GaussianProcess(kernel, t, diag=noise, assume_sorted=True).log_probability(y)
    return f


# ------------------------------------------------------------------------------------------------
# Runners: each make_* returns a zero-argument callable giving (value, gradient), ready for timing
# ------------------------------------------------------------------------------------------------
def _jax_runner(fn, theta, t, y, info, *, differentiate=True):
    """``jax.jit(jax.value_and_grad(fn))`` (``jax.jit(fn)`` where ``fn`` returns both already),
    compiled ahead of time (timed separately)."""
    args = tuple(jax.device_put(jnp.asarray(a, jnp.float64)) for a in (theta, t, y))
    vg = jax.jit(jax.value_and_grad(fn) if differentiate else fn)
    t0 = time.perf_counter()
    lowered = vg.lower(*args)
    t1 = time.perf_counter()
    compiled = lowered.compile()
    t2 = time.perf_counter()
    info.update(trace_lower_seconds=t1 - t0, compile_seconds=t2 - t1)

    def run():
        return jax.block_until_ready(compiled(*args))
    return run


def make_probssm(method):
    def make(model, theta, t, y, info):
        return _jax_runner(probssm_lml(model, method), theta, t, y, info)
    return make


def make_dense(model, theta, t, y, info):
    return _jax_runner(dense_lml(model), theta, t, y, info, differentiate=False)


def make_tinygp(model, theta, t, y, info):
    return _jax_runner(tinygp_lml(model), theta, t, y, info)


def make_sklearn(model, theta, t, y, info):
    """``GaussianProcessRegressor.log_marginal_likelihood(theta, eval_gradient=True)`` after a
    ``fit`` without optimiser (not timed); ``alpha=0`` so the diagonal is exactly ``s2``."""
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

    assert model == "matern52", model
    v, ell, s2 = np.exp(theta)
    bounds = (1e-12, 1e12)
    kernel = (ConstantKernel(v, constant_value_bounds=bounds)
              * Matern(length_scale=ell, length_scale_bounds=bounds, nu=2.5)
              + WhiteKernel(noise_level=s2, noise_level_bounds=bounds))
    assert np.allclose(kernel.theta, theta, rtol=0, atol=1e-15), (kernel.theta, theta)
    gpr = GaussianProcessRegressor(kernel=kernel, alpha=0.0, optimizer=None, normalize_y=False,
                                   copy_X_train=False)
    gpr.fit(np.asarray(t)[:, None], np.asarray(y))
    theta = np.asarray(theta, dtype=np.float64)
    return lambda: gpr.log_marginal_likelihood(theta, eval_gradient=True, clone_kernel=False)


# name: (factory, models, jitted, largest T by default (None: any))
LIBRARIES = {
    REFERENCE: (make_probssm("sequential"), ("full", "matern52"), True, None),
    "probssm parallel": (make_probssm("parallel"), ("full", "matern52"), True, None),
    DENSE: (make_dense, ("full", "matern52"), True, 10000),
    "tinygp quasisep": (make_tinygp, ("full", "matern52"), True, None),
    "scikit-learn": (make_sklearn, ("matern52",), False, 10000),
}


# ------------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------------
def simulate(T: int, seed: int):
    """Sorted irregular times (exponential gaps, mean 1) and ``y`` drawn from the ``full`` model
    (exact, through its state-space form); a shorter series is a prefix of a longer one."""
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.exponential(1.0, size=T))

    @jax.jit  # traced: the model's construction-time value checks do not run on a draw's data
    def draw(theta, t, key):
        kernel, noise = probssm_kernel("full", theta)
        ssm = state_space_model(kernel, t, jnp.full(t.shape, noise))
        return kalman.sample(ssm, key, t.shape[0])[1]

    obs = draw(jnp.log(jnp.asarray(MODELS["full"]["values"])), jnp.asarray(t), jax.random.PRNGKey(seed))
    return t, np.asarray(obs).reshape(T)


# ------------------------------------------------------------------------------------------------
# Timing and reporting
# ------------------------------------------------------------------------------------------------
def time_runs(fn, *, first_seconds, target_seconds, min_repeats, max_repeats):
    """Median-ready list of wall times; enough repeats to fill ``target_seconds``."""
    repeats = int(np.clip(math.ceil(target_seconds / max(first_seconds, 1e-9)), min_repeats, max_repeats))
    times, outs = [], []
    gc.collect()
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
        outs.append(out)
    return times, outs


def as_value_grad(out):
    value, grad = out
    return float(value), np.asarray(grad, dtype=np.float64).reshape(-1)


def grad_diff(g, ref):
    return float(np.max(np.abs(g - ref)) / np.max(np.abs(ref)))


def _git_revision():
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
    for dist in ("probssm", "jax", "jaxlib", "numpy", "scipy", "scikit-learn", "tinygp", "equinox"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def fmt_seconds(s):
    if s is None:
        return "-"
    return f"{s * 1e3:.3g} ms" if s < 1 else f"{s:.3g} s"


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=DEFAULT_SIZES,
                        help="series lengths T (default: 1000 5000 10000 100000)")
    parser.add_argument("--quick", action="store_true", help=f"T = {QUICK_SIZES} only, short timing budget")
    parser.add_argument("--json", nargs="?", const=str(RESULTS_DEFAULT), default=None, metavar="PATH",
                        help="write results as JSON (PATH defaults to benchmarks/results/gp_cpu.json)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--libraries", nargs="+", default=list(LIBRARIES), choices=list(LIBRARIES),
                        metavar="NAME", help="subset of libraries (the probssm reference always runs)")
    parser.add_argument("--max-dense-T", type=int, default=10000,
                        help="largest T for the O(T^3)-memory peers (dense JAX, scikit-learn; default 1e4)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-repeats", type=int, default=3)
    parser.add_argument("--max-repeats", type=int, default=50)
    parser.add_argument("--target-seconds", type=float, default=None,
                        help="timing budget per (library, model, T) (default 2, 0.2 with --quick)")
    parser.add_argument("--time-wrong", action="store_true",
                        help="also time results that fail the value check (reported apart, never as a result)")
    parser.add_argument("--default-threads", action="store_true",
                        help="do not pin BLAS/OpenMP/XLA to one thread")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    sizes = QUICK_SIZES if args.quick else sorted(set(args.sizes))
    target = args.target_seconds if args.target_seconds is not None else (0.2 if args.quick else 2.0)
    libs = [REFERENCE] + [name for name in args.libraries if name != REFERENCE]
    min_repeats = max(3, args.min_repeats)

    meta = {
        "benchmark": "gp_cpu",
        "date_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]),
        "machine": cpu_machine(
            jax_devices=[str(d) for d in jax.devices()],
            threads="library defaults" if DEFAULT_THREADS else "pinned to one thread",
            threads_env={k: os.environ.get(k) for k in SINGLE_THREAD_ENV},
            xla_intra_op_pool_threads=XLA_POOL_THREADS),
        "versions": versions(),
        "settings": {
            "sizes": sizes, "seed": args.seed, "dtype": "float64", "min_repeats": min_repeats,
            "max_repeats": args.max_repeats, "target_seconds": target, "max_dense_T": args.max_dense_T,
            "value_tol": VALUE_TOL, "grad_tol": GRAD_TOL,
            "quantity": "value and gradient of log p(y | theta) w.r.t. theta = log(hyperparameters)",
            "statistic": "median of repeated time.perf_counter runs after a warm-up call "
                         "(a run of >= 5 s counts its first call); compilation timed apart, ahead of time",
            "ratio": "peer seconds / probssm sequential seconds, same model and T",
            "times": "irregular, sorted: cumulative sum of exponential gaps with mean 1",
        },
        "models": {name: {k: v for k, v in spec.items()} for name, spec in MODELS.items()
                   if name in args.models},
    }
    mi = meta["machine"]
    print("== GP log marginal likelihood + gradient benchmark (CPU, float64) ==")
    print(f"date (UTC): {meta['date_utc']}\ncommand:    {meta['command']}")
    print(f"machine:    {mi['cpu_model']!r}, {mi['cpu_count']} cores (usable {mi['cpus_usable']}), "
          f"{mi['platform']}; JAX devices {mi['jax_devices']}; threads {mi['threads']} (XLA intra-op pool: "
          f"{mi['xla_intra_op_pool_threads']})")
    print(f"load average at start (1, 5, 15 min): {mi['load_average_start']}")
    print("versions:   " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()))
    for name, spec in meta["models"].items():
        print(f"model {name!r}: {spec['description']}, state dimension {spec['state_dim']}, "
              + ", ".join(f"{n}={v:g}" for n, v in zip(spec["names"], spec["values"])))

    t_all, y_all = simulate(max(sizes), args.seed)
    rows, failures = [], []
    for model in args.models:
        theta = np.log(np.asarray(MODELS[model]["values"], dtype=np.float64))
        for T in sizes:
            block, block_failures = run_block(model, T, theta, t_all[:T], y_all[:T], libs, args,
                                              target=target, min_repeats=min_repeats)
            rows.extend(block)
            failures.extend(block_failures)

    print_table(rows, meta)
    passed = not failures

    def largest(key, exclude_reference=False):
        values = [r[key] for r in rows if key in r and math.isfinite(r[key])
                  and not (exclude_reference and r["library"] == REFERENCE)]
        return max(values, default=None)

    meta["agreement"] = {
        "passed": passed, "value_tol": VALUE_TOL, "grad_tol": GRAD_TOL,
        "note": "largest differences over the finite ones; failures lists every check that failed",
        "max_value_rel_diff_vs_probssm": largest("rel_diff_vs_probssm", True),
        "max_value_rel_diff_vs_dense": largest("rel_diff_vs_dense"),
        "max_grad_diff_vs_probssm": largest("grad_diff_vs_probssm", True),
        "max_grad_diff_vs_dense": largest("grad_diff_vs_dense"),
        "failures": failures,
    }
    meta["targets"] = targets(rows)
    meta["results"] = rows
    meta["machine"]["load_average_end"] = load_average()
    print(f"\nload average at end (1, 5, 15 min): {meta['machine']['load_average_end']}")
    for tgt in meta["targets"]:
        print(f"target: {tgt['target']}: {tgt['status']} ({tgt['detail']})")
    a = meta["agreement"]
    print("largest finite differences: value " + ", ".join(
        f"{k} {a[k]:.2e}" for k in ("max_value_rel_diff_vs_probssm", "max_value_rel_diff_vs_dense")
        if a[k] is not None) + "; gradient " + ", ".join(
        f"{k} {a[k]:.2e}" for k in ("max_grad_diff_vs_probssm", "max_grad_diff_vs_dense") if a[k] is not None))
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(finite_or_null(meta), indent=2, allow_nan=False) + "\n")
        print(f"wrote {path}")
    if passed:
        print(f"AGREEMENT CHECK PASSED (values within {VALUE_TOL:g}, gradients within {GRAD_TOL:g})")
        return 0
    print("AGREEMENT CHECK FAILED:\n  " + "\n  ".join(failures))
    return 1


def run_block(model, T, theta, t, y, libs, args, *, target, min_repeats):
    """One model and size: build every library's runner and take its first result (after
    compilation), check the values and gradients against probssm's sequential method and the
    dense computation, then time the libraries whose results agree (all with ``--time-wrong``)."""
    print(f"\n-- model {model!r} ({MODELS[model]['description']}), T = {T}, load {load_average()} --")
    block, runners = [], {}
    for name in libs:
        factory, models, jitted, max_T = LIBRARIES[name]
        if model not in models or (max_T is not None and T > args.max_dense_T):
            continue
        info = {}
        fn = factory(model, theta, t, y, info)
        t0 = time.perf_counter()
        out = fn()  # warm-up: the first call after compilation
        first = time.perf_counter() - t0
        value, grad = as_value_grad(out)
        runners[name] = (fn, jitted, first, out)
        block.append({"model": model, "T": T, "library": name, "value": value,
                      "gradient": grad.tolist(), "first_call_seconds": first, **info})
        extra = (f"  [trace+lower {fmt_seconds(info['trace_lower_seconds'])}, compile "
                 f"{fmt_seconds(info['compile_seconds'])}]" if "compile_seconds" in info else "")
        print(f"{name:22s} log p {value:+.15e}  first call {fmt_seconds(first)}{extra}")

    failures = []
    ref = next(r for r in block if r["library"] == REFERENCE)
    dense = next((r for r in block if r["library"] == DENSE), None)
    for r in block:
        g = np.asarray(r["gradient"])
        r["rel_diff_vs_probssm"] = abs(r["value"] - ref["value"]) / abs(ref["value"])
        r["grad_diff_vs_probssm"] = grad_diff(g, np.asarray(ref["gradient"]))
        if dense is not None:
            r["rel_diff_vs_dense"] = abs(r["value"] - dense["value"]) / abs(dense["value"])
            r["grad_diff_vs_dense"] = grad_diff(g, np.asarray(dense["gradient"]))
        mine = []
        for key, tol in (("rel_diff_vs_probssm", VALUE_TOL), ("rel_diff_vs_dense", VALUE_TOL),
                         ("grad_diff_vs_probssm", GRAD_TOL), ("grad_diff_vs_dense", GRAD_TOL)):
            if key in r and not r[key] <= tol:  # NaN fails too
                mine.append(f"{r['library']} {model} T={T}: {key} {r[key]:.3g} > {tol:g}")
        r["agrees"] = not mine
        failures.extend(mine)
        print(f"  {r['library']:22s} value vs probssm {r['rel_diff_vs_probssm']:.1e}"
              + (f", vs dense {r['rel_diff_vs_dense']:.1e}" if dense is not None else "")
              + f"; gradient vs probssm {r['grad_diff_vs_probssm']:.1e}"
              + (f", vs dense {r['grad_diff_vs_dense']:.1e}" if dense is not None else "")
              + ("" if r["agrees"] else "  WRONG: not timed" + (" (timed: --time-wrong)"
                                                                 if args.time_wrong else "")))

    for r in block:
        r["seconds"] = r["ratio"] = None
        if not (r["agrees"] or args.time_wrong):
            continue
        fn, _, first, out = runners[r["library"]]
        r["load_average"] = load_average()
        if first >= 5.0:  # a slow run counts its first call (JAX compiled ahead of it)
            times, outs = time_runs(fn, first_seconds=first, target_seconds=0,
                                    min_repeats=min_repeats - 1, max_repeats=min_repeats - 1)
            times, outs = [first] + times, [out] + outs
        else:
            times, outs = time_runs(fn, first_seconds=first, target_seconds=target,
                                    min_repeats=min_repeats, max_repeats=args.max_repeats)
        values = [as_value_grad(o)[0] for o in outs]
        if r["agrees"] and max(abs(v - r["value"]) for v in values) > 1e-12 * abs(r["value"]):
            failures.append(f"{r['library']} {model} T={T}: repeated runs differ ({min(values)} .. "
                            f"{max(values)})")
        key = "seconds" if r["agrees"] else "seconds_wrong_result"
        r.update({key: statistics.median(times), "min_seconds": min(times), "max_seconds": max(times),
                  "runs": len(times)})
        print(f"{r['library']:22s} median {fmt_seconds(r[key])} of {len(times)} "
              f"(min {fmt_seconds(min(times))}, max {fmt_seconds(max(times))})"
              + ("" if r["agrees"] else " WRONG RESULT"))
    for r in block:
        if r["seconds"] is not None and ref["seconds"] is not None:
            r["ratio"] = r["seconds"] / ref["seconds"]
    return block, failures


def finite_or_null(obj):
    """``obj`` with every non-finite float as ``None`` (strict JSON; a NaN value fails the check
    and is listed in ``agreement.failures``)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_or_null(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_null(v) for v in obj]
    return obj


def targets(rows):
    """The issue's targets, judged on this run's rows (``not measured`` where a size is absent)."""
    def find(model, T, library):
        return next((r for r in rows if (r["model"], r["T"], r["library"]) == (model, T, library)), None)

    out = []
    name = ">= 100x scikit-learn at T = 5e3 (Matern52 + noise, values within 1e-8)"
    sk = find("matern52", 5000, "scikit-learn")
    if sk is None or sk["ratio"] is None:
        out.append({"target": name, "status": "not measured", "detail": "no valid scikit-learn row at T = 5000"})
    else:
        out.append({"target": name, "status": "met" if sk["ratio"] >= 100 else "not met",
                    "detail": f"scikit-learn / probssm sequential = {sk['ratio']:.1f}, value difference "
                              f"{sk['rel_diff_vs_probssm']:.1e}"})
    for T in sorted({r["T"] for r in rows if r["T"] >= 10000}):
        for model in ("full", "matern52"):
            tg = find(model, T, "tinygp quasisep")
            probssm = [r for r in rows if (r["model"], r["T"]) == (model, T)
                       and r["library"].startswith("probssm") and r["seconds"] is not None]
            if tg is None or tg["seconds"] is None or not probssm:
                continue
            best = min(probssm, key=lambda r: r["seconds"])
            ratio = tg["seconds"] / best["seconds"]
            out.append({"target": f"at least as fast as tinygp at T = {T} ({model})",
                        "status": "met" if ratio >= 1 else "not met",
                        "detail": f"tinygp / {best['library']} = {ratio:.2f}, value difference "
                                  f"{tg['rel_diff_vs_probssm']:.1e}"})
    return out


def print_table(rows, meta):
    print("\n== Results: seconds per value_and_grad call (median); ratio = peer / probssm sequential "
          "(> 1: probssm faster); value and gradient differences relative ==")
    header = (f"{'model':9s} {'T':>7}  {'library':22s} {'median':>10} {'runs':>4} {'ratio':>7} "
              f"{'compile':>9} {'dval/probssm':>12} {'dval/dense':>10} {'dgrad/probssm':>13}")
    print(header)
    print("-" * len(header))
    for r in rows:
        dense = r.get("rel_diff_vs_dense")
        secs = fmt_seconds(r["seconds"]) if r["agrees"] else "WRONG"
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.3g}"
        print(f"{r['model']:9s} {r['T']:>7}  {r['library']:22s} {secs:>10} "
              f"{r.get('runs', '-'):>4} {ratio:>7} {fmt_seconds(r.get('compile_seconds')):>9} "
              f"{r['rel_diff_vs_probssm']:>12.1e} {'-' if dense is None else f'{dense:.1e}':>10} "
              f"{r['grad_diff_vs_probssm']:>13.1e}")
    for r in rows:
        if "seconds_wrong_result" in r:
            print(f"(timed with a wrong result, --time-wrong: {r['library']} {r['model']} T={r['T']} "
                  f"{fmt_seconds(r['seconds_wrong_result'])})")
    mi = meta["machine"]
    print(f"device: {mi['cpu_model']} ({mi['cpu_count']} cores, {mi['threads']}); versions: "
          + ", ".join(f"{k} {v}" for k, v in meta["versions"].items() if k != "jax_backend"))


if __name__ == "__main__":
    sys.exit(main())
