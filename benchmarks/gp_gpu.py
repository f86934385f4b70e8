"""GPU benchmark: GP log marginal likelihood + gradient at T up to 1e6, probssm against cuthbert,
tinygp and a dense Cholesky GP.

Model: Matérn-3/2 + observation noise on irregular, sorted time stamps (``t`` the cumulative sum
of exponential gaps with mean 1, ``y = sin(2 pi t / 50) + N(0, 0.3^2)``), evaluated at
lengthscale 10, variance 1, noise variance 0.1. Every library computes
``(log p(y | theta), d log p / d theta)`` for ``theta = log(lengthscale, variance, noise)`` under
``jax.jit(jax.value_and_grad(...))``; the gradient runs through the discretisation
``A_k = A(Delta_k)``, ``Q_k = P_inf - A_k P_inf A_k^T`` (the kernel path).

============================  ==============================================================
row                           what is called
============================  ==============================================================
probssm parallel / kernel /   ``gp.log_marginal_likelihood(Matern32(l, variance=v), t, y,
sequential                    s2, method=...)``: sorts ``t``, builds the per-step
                              ``(A_k, Q_k)`` with ``jax.vmap(kernel.transition)`` and runs one
                              ``probssm.kalman.log_likelihood``. ``"kernel"``: the fused Pallas
                              filter on the time-varying model (it reads ``A_k``, ``Q_k``,
                              ``r_k`` per step), its gradient the exact score from the kernel's
                              filtered moments (``probssm.kalman.ops.adjoint``) chained to
                              ``theta`` through the per-step ``A_k``, ``Q_k``, ``r_k`` by XLA
cuthbert parallel             ``cuthbert.filter(build_filter(...), inputs, parallel=True)``
                              on the same per-step ``(A_k, Q_k)`` (probssm's
                              ``kernel.transition`` of the same gaps), with closed-form 2x2
                              Cholesky factors (zero where ``Q_k = 0``); cuthbert applies a
                              transition before the first observation, so its step 0 is
                              ``(F, chol_Q) = (0, chol P_inf)`` and it returns ``T + 1`` states
                              (log-likelihood ``log_normalizing_constant[-1]``)
tinygp quasisep               ``GaussianProcess(quasisep.Matern32(scale=l, sigma=sqrt v), t,
                              diag=s2, assume_sorted=True).log_probability(y)``
dense JAX Cholesky            ``K = kernel(t) + s2 I`` (probssm's closed form),
                              ``jnp.linalg.cholesky``: the largest ``T`` that fits the GPU
regular-grid kernel (proxy)   probssm ``method="kernel"`` (the fused Pallas filter) on the
                              time-invariant model with every gap equal to the mean gap: what a
                              fused kernel costs once ``A, Q`` need not be read per step
============================  ==============================================================

Checks before timing (``--check-T``, default 1e4, float64): probssm parallel against sequential
(value <= 1e-8 relative, gradient <= 1e-6 of its largest component) and cuthbert against
probssm (value <= 1e-8); with a float64 kernel row (``--kernel-dtypes``), the kernel against
probssm parallel at that size, the same tolerances. Every timed row then reports its value difference against probssm's
float64 parallel result on the same inputs (float32 rows: the float64 program run on the
float32-rounded ``t`` and ``y``, so the difference is the arithmetic's alone); a non-finite value
or gradient is never timed as a result.

Timing: ahead-of-time compile (reported apart), one warm-up call, then the median of
``>= --min-repeats`` calls each ending in ``block_until_ready``. At ``--breakdown-T`` the
script times the parts of probssm's path for each of ``--breakdown-methods``: the sort,
building the per-step matrices and its backward pass, the scan alone (value), the scan's value
and gradient with respect to the model arrays, and the value only of the whole path.

Bytes per step (roofline): ``counted`` = the per-step ``A_k``, ``Q_k`` (2x2 each) and ``y_k``
read once, 9 words (no per-step outputs: the result is a value and 3 derivatives);
``fraction = counted bytes / time / 3.35 TB/s`` (H100 SXM HBM3), also against the copy
bandwidth measured here. The JSON also holds XLA's own ``bytes accessed`` estimate for each
program and the byte model of a materialised path against a fused one (README).

Usage::

    python benchmarks/gp_gpu.py                          # T = 1e4, 1e5, 1e6, float64 + float32
    python benchmarks/gp_gpu.py --sizes 300 --quick      # CPU smoke test
    # the targets alone (checks at T = 1e4, then T = 1e6), no slow references:
    python benchmarks/gp_gpu.py --sizes 1000000 --no-breakdown --tinygp-T --sequential-T --dense-T

Every (library, T, dtype) is its own XLA program: the script lowers them all first, then
compiles ``--compile-threads`` at once, then runs. On the H100 (jax 0.11.2) XLA's Triton GEMM
fusion aborted the process while compiling (a Check failure), so it is off unless
``--keep-triton-gemm``; 30 programs compiling 12 at once did not finish in 5 minutes (one took
3 min 46 s), so split a run into commands of under 10 minutes and consider
``--autotune-level 0``; it applies to every row alike, but it leaves the ``dot_general``
transposes of the GP builder's backward pass (``A @ P @ A.T`` under ``vmap``, contracting over
all T steps) on untuned GEMMs: 60 ms as a program of its own at T = 1e6 on an H100, where
the kernel path took 55 ms, and 2.2 ms with XLA's default autotuning (README).
JSON goes to ``$OUT/gp_gpu.json`` when ``OUT`` is set, else ``--json PATH`` or
``benchmarks/results/gp_gpu_<device>.json``; rewritten after every row.
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
import types
from importlib import metadata
from pathlib import Path

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
os.environ.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.92")
# XLA's Triton GEMM fusion aborted the process (a Check failure in triton_tiling_propagation.cc,
# jax 0.11.2 on the H100) while compiling this script's programs; off for every library alike.
# ``--autotune-level N`` passes ``--xla_gpu_autotune_level=N`` (XLA's default is 4): with 12
# programs compiling at once, the autotuner's GPU timings contended ("Delay kernel timed out")
# and one parallel-scan program took 3 min 46 s to compile.
_argv = sys.argv[1:]
if "--keep-triton-gemm" not in _argv and "xla_gpu_enable_triton_gemm" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_gpu_enable_triton_gemm=false").strip()
if "--autotune-level" in _argv and _argv.index("--autotune-level") + 1 < len(_argv):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_gpu_autotune_level="
                               + _argv[_argv.index("--autotune-level") + 1]).strip()

import numpy as np  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from probssm import gp, kalman  # noqa: E402
from probssm.gp import kernels as pk  # noqa: E402
from probssm.gp.model import state_space_model  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
THETA_NAMES = ("lengthscale", "variance", "noise")
THETA_VALUES = (10.0, 1.0, 0.1)
HBM_NOMINAL = 3.35e12
COUNTED_WORDS = 9           # A_k (4) + Q_k (4) + y_k (1) per step
VALUE_TOL, GRAD_TOL = 1e-8, 1e-6
DTYPES = {"float64": jnp.float64, "float32": jnp.float32}
# per-step words of a materialised path (each array touched once per pass) and of a fused one
BYTE_MODEL = {
    "materialised": {"build: read t, write A, Q, r": 1 + 8 + 1, "forward: read A, Q, y, r": 10,
                     "backward: read A, Q, y, r, write dA, dQ, dr": 19,
                     "chain rule to theta: read dA, dQ, dr, t": 10},
    "fused": {"forward: read gap, y": 2, "backward (states recomputed from chunk checkpoints): "
              "read gap, y": 2},
}


# ------------------------------------------------------------------------------------------------
# The functions of theta
# ------------------------------------------------------------------------------------------------
def kernel_and_noise(theta):
    p = jnp.exp(theta)
    return pk.Matern32(p[0], variance=p[1]), p[2]


def probssm_lml(method):
    def f(theta, t, y):
        kernel, noise = kernel_and_noise(theta)
        return gp.log_marginal_likelihood(kernel, t, y, noise, method=method)
    return f


def chol2(Q):
    """Lower Cholesky factors of PSD 2x2 matrices ``(..., 2, 2)``, zero columns where a pivot is
    not positive, with finite gradients there (double ``where``)."""
    a, b, c = Q[..., 0, 0], Q[..., 1, 0], Q[..., 1, 1]
    pa = a > 0
    ra = jnp.sqrt(jnp.where(pa, a, 1.0))
    l11 = jnp.where(pa, ra, 0.0)
    l21 = jnp.where(pa, b / ra, 0.0)
    d = c - l21 * l21
    pd = d > 0
    l22 = jnp.where(pd, jnp.sqrt(jnp.where(pd, d, 1.0)), 0.0)
    zero = jnp.zeros_like(a)
    return jnp.stack([jnp.stack([l11, zero], -1), jnp.stack([l21, l22], -1)], -2)


def cuthbert_lml(cuthbert, ck):
    def f(theta, t, y):  # t sorted
        kernel, noise = kernel_and_noise(theta)
        A, Q = jax.vmap(kernel.transition)(t[:-1], jnp.diff(t))
        P = kernel.marginal_cov(t[0]).astype(A.dtype)
        cP = chol2(P)
        F = jnp.concatenate([jnp.zeros_like(A[:1]), A])
        cQ = jnp.concatenate([cP[None], chol2(Q)])
        H = kernel.measurement()[None, :].astype(A.dtype)
        chol_R = jnp.sqrt(noise + kernel.white_noise_variance).astype(A.dtype).reshape(1, 1)
        c, d = jnp.zeros(2, A.dtype), jnp.zeros(1, A.dtype)
        filt = ck.build_filter(jnp.zeros(2, A.dtype), cP, lambda inp: (inp[0], c, inp[1]),
                               lambda inp: (H, d, chol_R, inp[2]))
        states = cuthbert.filter(filt, (F, cQ, y[:, None]), filt.init_prepare(), parallel=True)
        return states.log_normalizing_constant[-1]
    return f


def tinygp_lml():
    import tinygp
    from tinygp.kernels import quasisep as qs

    def f(theta, t, y):
        p = jnp.exp(theta)
        kernel = qs.Matern32(scale=p[0], sigma=jnp.sqrt(p[1]))
        return tinygp.GaussianProcess(kernel, t, diag=p[2], assume_sorted=True).log_probability(y)
    return f


def dense_lml(theta, t, y):
    kernel, noise = kernel_and_noise(theta)
    K = kernel(t) + noise * jnp.eye(t.shape[0], dtype=t.dtype)
    L = jnp.linalg.cholesky(K)
    a = jax.scipy.linalg.solve_triangular(L, y, lower=True)
    return -0.5 * a @ a - jnp.sum(jnp.log(jnp.diag(L))) - 0.5 * t.shape[0] * math.log(2 * math.pi)


def regular_grid_lml(theta, gap, y):
    """probssm's fused kernel on the time-invariant model of a regular grid (every gap ``gap``)."""
    kernel, noise = kernel_and_noise(theta)
    A, Q = kernel.transition(jnp.zeros_like(gap), gap)
    dtype = A.dtype
    model = kalman.LGSSM(A, Q, kernel.measurement()[None, :].astype(dtype),
                         jnp.reshape(noise, (1, 1)).astype(dtype), jnp.zeros(2, dtype),
                         kernel.marginal_cov(0.0).astype(dtype))
    return kalman.log_likelihood(model, y[:, None], method="kernel")


# breakdown programs (probssm's path, pieces)
def bd_sort(t, y):
    order = jnp.argsort(t, stable=True)
    return t[order], y[order]


def bd_build(theta, ts):
    kernel, noise = kernel_and_noise(theta)
    m = state_space_model(kernel, ts, noise)
    return m.transition_matrix, m.transition_cov, m.observation_cov, m.initial_cov


def scan_model(A, Q, R, P0):
    from probssm.gp.model import _TIME_VARYING
    return kalman.LGSSM(A, Q, jnp.asarray([[1.0, 0.0]], A.dtype), R, jnp.zeros(2, A.dtype), P0,
                        time_varying=_TIME_VARYING)


def scan_value(method):
    def f(A, Q, R, P0, ys):
        return kalman.log_likelihood(scan_model(A, Q, R, P0), ys[:, None], method=method)
    return f


def kernel_states(A, Q, R, P0, ys):
    """The kernel filter's states: the forward pass of the kernel path's gradient."""
    from probssm.kalman.ops import filter_kernel
    return filter_kernel.filter_batch(scan_model(A, Q, R, P0), ys[None, :, None])


def kernel_score(A, Q, R, P0, ys, states):
    """The score from the kernel's states (XLA): the backward pass of the kernel path's
    gradient, to the model arrays."""
    from probssm.kalman.ops import adjoint
    g, _ = adjoint.log_likelihood_vjp(scan_model(A, Q, R, P0), ys[None, :, None], states,
                                      jnp.ones((1,), A.dtype))
    return g.transition_matrix, g.transition_cov, g.observation_cov, g.initial_cov


def scan_value_and_grad(method):
    return lambda *a: jax.value_and_grad(scan_value(method), argnums=(0, 1, 2, 3))(*a)


# ------------------------------------------------------------------------------------------------
# Peers, data, machine
# ------------------------------------------------------------------------------------------------
def import_cuthbert(notes):
    try:
        import numba  # noqa: F401
    except ImportError:  # cuthbertlib imports numba for a CPU SMC helper the Kalman filter never uses
        stub = types.ModuleType("numba")
        stub.njit = stub.jit = lambda *a, **k: (a[0] if len(a) == 1 and callable(a[0]) and not k
                                                else (lambda f: f))
        sys.modules["numba"] = stub
        notes.append("numba not installed: stand-in numba.njit used to import cuthbertlib "
                     "(not on the Kalman path)")
    import cuthbert
    from cuthbert.gaussian import kalman as ck
    return cuthbert, ck


def simulate(T, seed):
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.exponential(1.0, size=T))
    y = np.sin(2 * np.pi * t / 50.0) + 0.3 * rng.standard_normal(T)
    return t, y


def versions():
    out = {"python": platform.python_version(), "jax_backend": jax.default_backend()}
    try:
        out["probssm_git"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                                            capture_output=True, text=True).stdout.strip() or None
    except OSError:
        out["probssm_git"] = None
    for dist in ("jax", "jaxlib", "jax-cuda13-plugin", "jax-cuda12-plugin", "numpy", "cuthbert",
                 "cuthbertlib", "tinygp", "equinox", "numba"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def device_info():
    d = jax.devices()[0]
    info = {"platform": d.platform, "device_kind": d.device_kind, "cpu_count": os.cpu_count()}
    try:
        q = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.sm,"
                            "clocks.max.sm,clocks.mem", "--format=csv,noheader"],
                           capture_output=True, text=True, timeout=20)
        info["nvidia_smi"] = q.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def measure_bandwidth(mib=1024):
    n = mib * 2**20 // 4
    x = jnp.ones(n, jnp.float32)
    f = jax.jit(lambda a: a + 1.0).lower(x).compile()
    f(x).block_until_ready()
    ts = []
    for _ in range(10):
        t0 = time.perf_counter()
        f(x).block_until_ready()
        ts.append(time.perf_counter() - t0)
    return 2 * n * 4 / statistics.median(ts)


# ------------------------------------------------------------------------------------------------
# Compile, time, check
# ------------------------------------------------------------------------------------------------
def value_grad(out):
    v, g = out
    return float(v), np.asarray(g, np.float64).reshape(-1)


def rel(a, b):
    return abs(a - b) / abs(b) if b != 0 else abs(a - b)


def grad_diff(g, ref):
    return float(np.max(np.abs(g - ref)) / np.max(np.abs(ref)))


def finite_or_null(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_or_null(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_null(v) for v in obj]
    return obj


def fmt_ms(s):
    return "-" if s is None else (f"{s * 1e3:.3f}" if s < 1 else f"{s * 1e3:.0f}")



class Program:
    """One jitted program: lowered on the main thread, compiled in a thread pool (XLA releases
    the GIL), called on the main thread."""

    def __init__(self, fn, args, x64, grad=True, name=""):
        self.args, self.x64, self.name = args, x64, name
        self.lowered = self.compiled = self.error = None
        self.info = {}
        try:
            with jax.enable_x64(x64):
                t0 = time.perf_counter()
                self.lowered = jax.jit(jax.value_and_grad(fn) if grad else fn).lower(*args)
                self.info["trace_lower_seconds"] = time.perf_counter() - t0
        except Exception as e:
            self.error = f"lower: {type(e).__name__}: {e}"[:2000]

    def compile(self):
        if self.lowered is None or self.compiled is not None:
            return self
        try:
            t0 = time.perf_counter()
            self.compiled = self.lowered.compile()
            self.info["compile_seconds"] = time.perf_counter() - t0
            print(f"  compiled {self.name} in {self.info['compile_seconds']:.1f} s", flush=True)
            ca = self.compiled.cost_analysis()
            ca = ca[0] if isinstance(ca, (list, tuple)) else ca
            if ca:
                self.info["xla_bytes_accessed"] = float(ca.get("bytes accessed", float("nan")))
                self.info["xla_flops"] = float(ca.get("flops", float("nan")))
            ma = self.compiled.memory_analysis()
            if ma is not None:
                self.info["device_bytes_needed"] = int(
                    ma.temp_size_in_bytes + ma.argument_size_in_bytes + ma.output_size_in_bytes)
        except Exception as e:
            self.error = f"compile: {type(e).__name__}: {e}"[:2000]
        return self

    def __call__(self, args=None):
        with jax.enable_x64(self.x64):
            return jax.block_until_ready(self.compiled(*(self.args if args is None else args)))


def time_program(prog, *, min_repeats, target_seconds, max_repeats, slow_seconds, deadline):
    """Warm-up call, then the median of repeated calls: ``>= min_repeats`` unless the warm-up
    took over ``slow_seconds`` (then 3, or 2 above 4x that: slow reference rows), fewer only
    where ``deadline`` (a ``perf_counter`` time) would pass."""
    t0 = time.perf_counter()
    out = prog()
    first = time.perf_counter() - t0
    if first <= slow_seconds:
        n = int(np.clip(math.ceil(target_seconds / max(first, 1e-6)), min_repeats, max_repeats))
    else:
        n = 3 if first <= 4 * slow_seconds else 2
    n = max(1, min(n, int((deadline - time.perf_counter()) / max(first, 1e-6))))
    times = []
    gc.collect()
    for _ in range(n):
        t0 = time.perf_counter()
        prog()
        times.append(time.perf_counter() - t0)
    return out, first, times


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    p.add_argument("--dtypes", nargs="+", default=["float64", "float32"], choices=list(DTYPES))
    p.add_argument("--quick", action="store_true", help="short timing; every peer at the sizes given")
    p.add_argument("--check-T", type=int, default=10_000)
    p.add_argument("--sequential-T", type=int, nargs="*", default=[100_000])
    p.add_argument("--tinygp-T", type=int, nargs="*", default=[10_000, 100_000])
    p.add_argument("--tinygp-dtypes", nargs="+", default=["float64"], choices=list(DTYPES))
    p.add_argument("--dense-T", nargs="*", default=["float64:40000,30000,20000",
                                                    "float32:50000,40000,30000"],
                   help="DTYPE:T1,T2,...: the largest T whose compiled program fits the device "
                        "memory (XLA's memory analysis) runs; on an out-of-memory error the next")
    p.add_argument("--breakdown-T", type=int, default=None, help="default: the largest size")
    p.add_argument("--no-breakdown", action="store_true")
    p.add_argument("--breakdown-dtypes", nargs="+", default=["float64"], choices=list(DTYPES))
    p.add_argument("--breakdown-methods", nargs="+", default=["parallel"],
                   choices=["parallel", "kernel"])
    p.add_argument("--kernel-T", type=int, nargs="*", default=None,
                   help="sizes with a method='kernel' row (default: the largest size)")
    p.add_argument("--kernel-dtypes", nargs="+", default=None, choices=list(DTYPES),
                   help="dtypes of the method='kernel' rows (default: --dtypes); a float64 row "
                        "is checked against probssm parallel")
    p.add_argument("--keep-triton-gemm", action="store_true",
                   help="leave XLA's Triton GEMM fusion on (off by default, see the source)")
    p.add_argument("--autotune-level", type=int, default=None,
                   help="XLA's GPU autotune level for every program (default: XLA's own)")
    p.add_argument("--min-repeats", type=int, default=5)
    p.add_argument("--max-repeats", type=int, default=50)
    p.add_argument("--target-seconds", type=float, default=0.5)
    p.add_argument("--slow-seconds", type=float, default=1.0,
                   help="a row whose warm-up call takes longer gets 3 (2 above 4x) repeats")
    p.add_argument("--budget-seconds", type=float, default=1e9,
                   help="start no new row after this many seconds; repeats stop there too")
    p.add_argument("--compile-threads", type=int, default=4,
                   help="programs compiled at once (XLA releases the GIL; on the GPU each "
                        "compile also times kernels for its autotuner)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    deadline = start + args.budget_seconds
    sizes = sorted(set(args.sizes))
    if args.quick:
        args.target_seconds = 0.05
        args.tinygp_T = [T for T in args.tinygp_T if T <= max(sizes)] or [min(sizes)]
        args.sequential_T = [T for T in args.sequential_T if T <= max(sizes)] or [min(sizes)]
        args.dense_T = [f"{d}:{min(sizes)}" for d in args.dtypes]
        args.check_T = min(args.check_T, max(sizes))
    Tc = args.check_T
    kernel_T = set(args.kernel_T if args.kernel_T is not None else [max(sizes)])
    kernel_dtypes = args.kernel_dtypes or args.dtypes
    bd_T = None if args.no_breakdown else (args.breakdown_T or max(sizes))
    dense_specs = [(d, sorted((int(c) for c in cs.split(",")), reverse=True))
                   for d, cs in (spec.split(":") for spec in args.dense_T)]
    out_dir = os.environ.get("OUT")
    dev = device_info()
    json_path = Path(args.json) if args.json else (
        Path(out_dir) / "gp_gpu.json" if out_dir else
        REPO / "benchmarks" / "results" / f"gp_gpu_{dev['device_kind'].replace(' ', '_')}.json")
    jax.config.update("jax_default_matmul_precision", "float32")  # full float32 matmuls, no TF32
    notes = []
    meta = {
        "benchmark": "gp_gpu",
        "date_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]),
        "device": dev, "versions": versions(), "notes": notes,
        "xla_flags": os.environ.get("XLA_FLAGS"),
        "model": {"kernel": "Matern32 + noise", "theta": dict(zip(THETA_NAMES, THETA_VALUES)),
                  "data": "t = cumsum(Exponential(1)), y = sin(2 pi t / 50) + N(0, 0.09)",
                  "quantity": "value and gradient of log p(y | theta), theta = log(l, v, s2)"},
        "settings": dict(vars(args)),
        "statistic": "median of repeated calls after a warm-up call, each ending in "
                     "block_until_ready; >= min_repeats, except rows whose warm-up took over "
                     "slow_seconds (3 or 2 repeats); compile times measured while up to "
                     "compile_threads programs compiled at once",
        "roofline": {"counted_words_per_step": COUNTED_WORDS, "hbm_nominal_bytes_per_s": HBM_NOMINAL,
                     "byte_model_words_per_step": BYTE_MODEL},
        "checks": [], "rows": [], "breakdown": [], "failures": [],
    }
    rows, failures = meta["rows"], meta["failures"]

    def log(msg=""):
        print(msg, flush=True)

    def write():
        meta["total_seconds"] = time.perf_counter() - start
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(finite_or_null(meta), indent=1, allow_nan=False) + "\n")

    log(f"gp_gpu: device {dev}")
    log("versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()))
    try:
        cuthbert, ck = import_cuthbert(notes)
    except Exception as e:
        cuthbert = ck = None
        notes.append(f"cuthbert unavailable: {type(e).__name__}: {e}")
    try:
        import tinygp  # noqa: F401
        have_tinygp = True
    except Exception as e:
        have_tinygp = False
        notes.append(f"tinygp unavailable: {type(e).__name__}: {e}")
    for n in notes:
        log("note: " + n)
    bw = measure_bandwidth(64 if args.quick else 1024)
    meta["roofline"]["copy_bandwidth_bytes_per_s"] = bw
    log(f"copy bandwidth (x + 1, read + write): {bw / 1e9:.0f} GB/s")

    dense_max = max((c[0] for _, c in dense_specs), default=0)
    t_all, y_all = simulate(max(sizes + args.tinygp_T + args.sequential_T + [Tc, dense_max]), args.seed)
    theta_np = np.log(np.asarray(THETA_VALUES))
    cache = {}

    def data(T, dtype):
        if (T, dtype) not in cache:
            nd = np.dtype(dtype)
            with jax.enable_x64(dtype == "float64"):
                cache[(T, dtype)] = tuple(jax.device_put(jnp.asarray(np.asarray(a, nd)))
                                          for a in (theta_np, t_all[:T], y_all[:T]))
        return cache[(T, dtype)]

    # -- 1. lower every program (main thread), compile them all at once ---------------------------
    progs = {}
    t_lower = time.perf_counter()

    def add(key, fn, T, dtype, a=None, grad=True):
        if key not in progs:
            progs[key] = Program(fn, a if a is not None else data(T, dtype), dtype == "float64", grad,
                                 name=" ".join(map(str, key)))
        return progs[key]

    plan = [("probssm parallel", Tc, "float64"), ("probssm sequential", Tc, "float64")]
    if cuthbert:
        plan.append(("cuthbert parallel", Tc, "float64"))
    for T in sizes:
        for dtype in sorted(set(args.dtypes) | (set(kernel_dtypes) if T in kernel_T else set()),
                            key=list(DTYPES).index):
            plan.append(("probssm parallel", T, dtype))
            if T in kernel_T and dtype in kernel_dtypes:
                plan.append(("probssm kernel", T, dtype))
            if dtype not in args.dtypes:
                continue
            if cuthbert:
                plan.append(("cuthbert parallel", T, dtype))
            if T == max(sizes):
                plan.append(("regular-grid kernel (proxy)", T, dtype))
    late = [("tinygp quasisep", T, d) for T in args.tinygp_T for d in args.tinygp_dtypes] if have_tinygp else []
    late += [("probssm sequential", T, "float64") for T in args.sequential_T]
    fns = {"probssm parallel": probssm_lml("parallel"), "probssm kernel": probssm_lml("kernel"),
           "probssm sequential": probssm_lml("sequential"), "tinygp quasisep": tinygp_lml() if have_tinygp else None,
           "cuthbert parallel": cuthbert_lml(cuthbert, ck) if cuthbert else None,
           "regular-grid kernel (proxy)": regular_grid_lml, "dense JAX Cholesky": dense_lml}
    # float64 probssm parallel at every size: the reference of every row (float32 rows on the
    # float32-rounded inputs; smaller T through NaN padding, i.e. missing observations)
    ref_sizes = sorted(set(sizes) | {Tc})
    for T in ref_sizes:
        add(("probssm parallel", T, "float64"), fns["probssm parallel"], T, "float64")
    same_hlo = {}
    for key in plan + late:
        lib, T, dtype = key
        if lib == "regular-grid kernel (proxy)":
            with jax.enable_x64(dtype == "float64"):
                dt = DTYPES[dtype]
                a = (jnp.asarray(theta_np, dt), jnp.asarray(1.0, dt), data(T, dtype)[2])
            add(key, regular_grid_lml, T, dtype, a)
            continue
        p = add(key, fns[lib], T, dtype)
        if lib == "probssm kernel":
            par = add(("probssm parallel", T, dtype), fns["probssm parallel"], T, dtype)
            same = (p.lowered is not None and par.lowered is not None
                    and p.lowered.as_text() == par.lowered.as_text())
            same_hlo[(T, dtype)] = same
            if same:  # the fallback: the very same program; compiled once, timed twice
                progs[key] = Program.__new__(Program)
                progs[key].__dict__.update(par.__dict__)
                progs[key].alias_of = par
    bd = {}
    if bd_T is not None:
        for dtype in args.breakdown_dtypes:
            try:
                with jax.enable_x64(dtype == "float64"):
                    theta, t, y = data(bd_T, dtype)
                    ts, ys = jax.jit(bd_sort)(t, y)
                    A, Q, R, P0 = jax.jit(bd_build)(theta, ts)

                    def build_vjp(th, s):
                        out, pull = jax.vjp(lambda q: bd_build(q, s), th)
                        return pull(tuple(jnp.ones_like(x) for x in out))

                parts = {
                    "sort (argsort + 2 gathers)": (bd_sort, (t, y)),
                    "build A_k, Q_k (vmap kernel.transition)": (bd_build, (theta, ts)),
                    "build + its backward (vjp to theta)": (build_vjp, (theta, ts)),
                }
                for method in args.breakdown_methods:
                    parts.update({
                        f"{method}: scan, value only (model arrays given)":
                            (scan_value(method), (A, Q, R, P0, ys)),
                        f"{method}: scan, value + grad w.r.t. A, Q, R, P0":
                            (scan_value_and_grad(method), (A, Q, R, P0, ys)),
                        f"{method}: whole path, value only":
                            (fns[f"probssm {method}"], (theta, t, y)),
                    })
                    if method == "kernel":
                        states = jax.jit(kernel_states)(A, Q, R, P0, ys)
                        parts.update({
                            "kernel: forward kernels, states written (the gradient's forward)":
                                (kernel_states, (A, Q, R, P0, ys)),
                            "kernel: score from the states (XLA, the gradient's backward)":
                                (kernel_score, (A, Q, R, P0, ys, states)),
                        })
                for name, (fn, a) in parts.items():
                    bd[(name, dtype)] = add(("breakdown", name, dtype), fn, bd_T, dtype, a, grad=False)
            except Exception as e:
                meta["breakdown"].append({"T": bd_T, "dtype": dtype, "error": f"{type(e).__name__}: {e}"[:2000]})
    for dtype, cands in dense_specs:
        for T in cands:
            add(("dense JAX Cholesky", T, dtype), dense_lml, T, dtype)
    lower_s = time.perf_counter() - t_lower
    to_compile = [p for p in progs.values() if not hasattr(p, "alias_of")]
    log(f"lowered {len(progs)} programs in {lower_s:.1f} s; compiling {len(to_compile)} with "
        f"{args.compile_threads} threads ...")
    meta["programs"] = {name: p.info for name, p in ((" ".join(map(str, k)), p) for k, p in progs.items())}
    write()
    t_comp = time.perf_counter()
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max(1, args.compile_threads)) as ex:
        list(ex.map(Program.compile, to_compile))
    for p in progs.values():
        if hasattr(p, "alias_of"):
            p.compiled, p.info, p.error = p.alias_of.compiled, dict(p.alias_of.info), p.alias_of.error
    meta["lower_seconds_total"] = lower_s
    meta["compile_wall_seconds_total"] = time.perf_counter() - t_comp
    log(f"compiled in {meta['compile_wall_seconds_total']:.1f} s (wall)")
    write()

    # -- 2. run -------------------------------------------------------------------------------------
    refs = {}

    def reference(T, dtype):
        """(value, grad) of probssm parallel float64 on the ``dtype``-rounded first T points."""
        if (T, dtype) in refs:
            return refs[(T, dtype)]
        Tg = min((s for s in ref_sizes if s >= T), default=None)
        prog = progs.get(("probssm parallel", Tg, "float64"))
        if prog is None or prog.compiled is None:
            return None
        nd = np.dtype(dtype)
        t = np.asarray(t_all[:T], nd).astype(np.float64)
        y = np.asarray(y_all[:T], nd).astype(np.float64)
        if Tg > T:  # missing observations after T: the same likelihood
            t = np.concatenate([t, t[-1] + np.arange(1, Tg - T + 1, dtype=np.float64)])
            y = np.concatenate([y, np.full(Tg - T, np.nan)])
        with jax.enable_x64(True):
            a = (jnp.asarray(theta_np), jnp.asarray(t), jnp.asarray(y))
        refs[(T, dtype)] = value_grad(prog(a))
        return refs[(T, dtype)]

    def run_row(key, check=True, extra=None):
        lib, T, dtype = key
        prog = progs[key]
        row = {"library": lib, "T": T, "dtype": dtype, **prog.info, **(extra or {})}
        if hasattr(prog, "alias_of"):
            row["same_program_as"] = "probssm parallel (identical HLO)"
        if time.perf_counter() > deadline:
            log(f"skip {lib} T={T} {dtype}: over --budget-seconds")
            return None
        if prog.error or prog.compiled is None:
            row["error"] = prog.error or "not compiled"
            log(f"{lib:28s} T={T:>8} {dtype}: FAILED {row['error'][:300]}")
            rows.append(row)
            write()
            return row
        try:
            out, first, times = time_program(
                prog, min_repeats=args.min_repeats, target_seconds=args.target_seconds,
                max_repeats=args.max_repeats, slow_seconds=args.slow_seconds, deadline=deadline)
        except Exception as e:
            row["error"] = f"run: {type(e).__name__}: {e}"[:2000]
            log(f"{lib:28s} T={T:>8} {dtype}: FAILED {row['error'][:300]}")
            rows.append(row)
            write()
            return row
        value, grad = value_grad(out)
        finite = bool(np.isfinite(value) and np.all(np.isfinite(grad)))
        row.update(value=value, gradient=grad.tolist(), first_call_seconds=first, runs=len(times),
                   finite=finite)
        med = statistics.median(times) if times else first
        if finite:
            row.update(seconds=med, min_seconds=min(times or [first]), max_seconds=max(times or [first]))
        else:
            row["seconds_nonfinite_result"] = med
            failures.append(f"{lib} T={T} {dtype}: non-finite value or gradient")
        ref = None
        if check:
            try:
                ref = reference(T, dtype)
            except Exception as e:
                log(f"reference T={T} {dtype} failed: {type(e).__name__}: {str(e)[:300]}")
        if ref is not None:
            row["value_rel_diff_vs_f64"] = rel(value, ref[0])
            row["grad_diff_vs_f64"] = grad_diff(grad, ref[1])
        counted = COUNTED_WORDS * T * np.dtype(dtype).itemsize
        row["counted_bytes"] = counted
        row["roofline_fraction_nominal"] = counted / med / HBM_NOMINAL
        row["roofline_fraction_copy_bw"] = counted / med / bw
        rows.append(row)
        write()
        log(f"{lib:28s} T={T:>8} {dtype}: {fmt_ms(med)} ms median of {len(times)} (first "
            f"{fmt_ms(first)} ms, compile {row.get('compile_seconds', 0):.1f} s)  log p {value:+.10e}"
            + (f"  dval/f64 {row['value_rel_diff_vs_f64']:.1e} dgrad/f64 {row['grad_diff_vs_f64']:.1e}"
               if ref is not None else "") + ("" if finite else "  NON-FINITE"))
        return row

    log(f"\n-- checks at T = {Tc}, float64 --")
    got = {key: run_row(key) for key in plan[:3]}
    par = got[("probssm parallel", Tc, "float64")]
    for name, key in (("probssm parallel vs sequential", ("probssm sequential", Tc, "float64")),
                      ("cuthbert parallel vs probssm parallel", ("cuthbert parallel", Tc, "float64"))):
        r = got.get(key)
        if not r or "value" not in r or not par or "value" not in par:
            failures.append(f"check {name}: not run")
            continue
        vd = rel(par["value"], r["value"]) if "sequential" in name else rel(r["value"], par["value"])
        gd = (grad_diff(np.asarray(par["gradient"]), np.asarray(r["gradient"])) if "sequential" in name
              else grad_diff(np.asarray(r["gradient"]), np.asarray(par["gradient"])))
        ok = vd <= VALUE_TOL and gd <= GRAD_TOL
        meta["checks"].append({"check": name, "T": Tc, "dtype": "float64", "value_rel_diff": vd,
                               "grad_diff": gd, "value_tol": VALUE_TOL, "grad_tol": GRAD_TOL, "passed": ok})
        log(f"check {name}: value {vd:.1e} (tol {VALUE_TOL:g}), gradient {gd:.1e} (tol {GRAD_TOL:g}) "
            + ("ok" if ok else "FAILED"))
        if not ok:
            failures.append(f"check {name}: value {vd:.2e}, gradient {gd:.2e}")
    write()

    done = {k for k, r in got.items() if r is not None}
    for key in plan[3:]:
        if key in done:
            continue
        done.add(key)
        if key[0] == "probssm parallel":
            log(f"\n-- T = {key[1]}, {key[2]} --")
        extra = None
        if key[0] == "probssm kernel":
            extra = {"hlo_identical_to_parallel": same_hlo.get(key[1:])}
        if key[0] == "regular-grid kernel (proxy)":
            extra = {"note": "time-invariant model (every gap = 1, the mean gap): another function; "
                             "what the fused kernel costs when A, Q are not read per step"}
        run_row(key, check=key[0] != "regular-grid kernel (proxy)", extra=extra)

    for r in rows:  # the kernel in float64 against the float64 parallel scan, same inputs
        if r["library"] == "probssm kernel" and r["dtype"] == "float64" and "value" in r:
            vd, gd = r.get("value_rel_diff_vs_f64"), r.get("grad_diff_vs_f64")
            ok = vd is not None and gd is not None and vd <= VALUE_TOL and gd <= GRAD_TOL
            meta["checks"].append({"check": "probssm kernel vs probssm parallel", "T": r["T"],
                                   "dtype": "float64", "value_rel_diff": vd, "grad_diff": gd,
                                   "value_tol": VALUE_TOL, "grad_tol": GRAD_TOL, "passed": ok})
            log(f"check probssm kernel vs parallel at T = {r['T']} (float64): value {vd}, "
                f"gradient {gd} " + ("ok" if ok else "FAILED"))
            if not ok:
                failures.append(f"check kernel vs parallel T={r['T']}: value {vd}, gradient {gd}")
    write()

    if bd:
        log(f"\n-- breakdown of probssm's path at T = {bd_T} --")
        for (name, dtype), prog in bd.items():
            if time.perf_counter() > deadline:
                break
            r = {"T": bd_T, "dtype": dtype, "part": name, **prog.info}
            if prog.compiled is None:
                r["error"] = prog.error
            else:
                _, first, times = time_program(prog, min_repeats=args.min_repeats,
                                               target_seconds=args.target_seconds,
                                               max_repeats=args.max_repeats,
                                               slow_seconds=args.slow_seconds, deadline=deadline)
                r.update(seconds=statistics.median(times) if times else first, runs=len(times))
            meta["breakdown"].append(r)
            write()
            log(f"  {dtype:7s} {name:42s} {fmt_ms(r.get('seconds'))} ms  XLA bytes/step "
                f"{(r.get('xla_bytes_accessed') or 0) / bd_T:.0f}")

    def run_late(key):
        """A slow reference row, unless its estimated time (the same library's warm-up call at
        a smaller T, scaled linearly) would not fit twice in what is left of the budget."""
        if key in done:
            return
        done.add(key)
        lib, T, dtype = key
        smaller = [r for r in rows if (r["library"], r["dtype"]) == (lib, dtype) and r["T"] < T
                   and "first_call_seconds" in r]
        est = max((r["first_call_seconds"] * T / r["T"] for r in smaller), default=None)
        log(f"\n-- {lib}, T = {T}, {dtype}" + (f" (estimated {est:.1f} s a call)" if est else "") + " --")
        if est is not None and 2 * est > deadline - time.perf_counter():
            log(f"skip {lib} T={T} {dtype}: estimated {est:.1f} s a call, "
                f"{deadline - time.perf_counter():.0f} s of budget left")
            rows.append({"library": lib, "T": T, "dtype": dtype, "skipped": "over budget",
                         "estimated_seconds": est, **progs[key].info})
            write()
            return
        run_row(key)

    for key in late:
        if key[0] == "tinygp quasisep" and key[1] == min(args.tinygp_T):
            run_late(key)
    bytes_limit = None
    try:
        bytes_limit = (jax.devices()[0].memory_stats() or {}).get("bytes_limit")
    except Exception:
        pass
    for dtype, cands in dense_specs:
        for T in cands:
            prog = progs[("dense JAX Cholesky", T, dtype)]
            need = prog.info.get("device_bytes_needed")
            if bytes_limit and need and need > 0.95 * bytes_limit and T != cands[-1]:
                log(f"dense {dtype} T={T}: needs {need / 2**30:.1f} GiB > 95% of {bytes_limit / 2**30:.1f} GiB; next")
                continue
            log(f"\n-- dense JAX Cholesky, T = {T}, {dtype} (needs {(need or 0) / 2**30:.1f} GiB) --")
            r = run_row(("dense JAX Cholesky", T, dtype),
                        extra={"device_bytes_limit": bytes_limit})
            gc.collect()
            if r is None or "error" not in r:
                break
    for key in late:
        run_late(key)

    # -- 3. targets and table ----------------------------------------------------------------------
    def find(lib, T, dtype, key="seconds"):
        return next((r for r in rows if (r["library"], r["T"], r["dtype"]) == (lib, T, dtype)
                     and key in r), None)

    for r in rows:
        base = find("probssm parallel", r["T"], r["dtype"])
        if base is not None and "seconds" in r:
            r["ratio_vs_probssm_parallel"] = r["seconds"] / base["seconds"]
    targets = []
    Tmax = max(sizes)
    for dtype in args.dtypes:
        k = find("probssm kernel", Tmax, dtype)
        kn = find("probssm kernel", Tmax, dtype, "seconds_nonfinite_result")
        c = find("cuthbert parallel", Tmax, dtype) or find("cuthbert parallel", Tmax, dtype,
                                                           "seconds_nonfinite_result")
        name = f"lml + grad through the kernel path at T = {Tmax} under 5 ms ({dtype})"
        if k is not None:
            targets.append({"target": name, "status": "met" if k["seconds"] < 5e-3 else "not met",
                            "detail": f"probssm method='kernel' (fused kernel, time-varying model) "
                                      f"{k['seconds'] * 1e3:.2f} ms"})
        elif kn is not None:
            targets.append({"target": name, "status": "not met (non-finite result)",
                            "detail": f"NaN in {kn['seconds_nonfinite_result'] * 1e3:.2f} ms"})
        kk = k or kn
        if kk is not None and c is not None:
            def ts_(r):
                return r.get("seconds", r.get("seconds_nonfinite_result"))
            ratio = ts_(c) / ts_(kk)
            ok = "seconds" in kk and "seconds" in c
            targets.append({"target": f">= 10x cuthbert parallel at T = {Tmax} ({dtype})",
                            "status": ("met" if ratio >= 10 else "not met") + ("" if ok else " (timed on non-finite results)"),
                            "detail": f"cuthbert {ts_(c) * 1e3:.2f} ms / probssm kernel path "
                                      f"{ts_(kk) * 1e3:.2f} ms = {ratio:.2f}x"})
    meta["targets"] = targets
    write()

    log(f"\n== {dev['device_kind']}: GP (Matern32 + noise) log marginal likelihood + gradient, "
        f"median ms per call; ratio = row / probssm parallel (same T, dtype) ==")
    hdr = (f"{'T':>8} {'dtype':7} {'library':28s} {'median ms':>10} {'runs':>4} {'ratio':>7} "
           f"{'compile s':>9} {'dval/f64':>8} {'dgrad/f64':>9} {'roofline':>8} {'XLA B/step':>10}")
    log(hdr)
    log("-" * len(hdr))
    for r in rows:
        secs = r.get("seconds")
        if secs is not None:
            shown = fmt_ms(secs)
        elif "seconds_nonfinite_result" in r:
            shown = "NaN " + fmt_ms(r["seconds_nonfinite_result"])
        elif "skipped" in r:
            shown = f"~{r['estimated_seconds']:.0f} s?"
        else:
            shown = "ERROR"
        xb = r.get("xla_bytes_accessed")
        fr = r.get("roofline_fraction_nominal")
        log(f"{r['T']:>8} {r['dtype']:7} {r['library']:28s} {shown:>10} {r.get('runs', '-'):>4} "
            f"{(format(r['ratio_vs_probssm_parallel'], '.3g') if 'ratio_vs_probssm_parallel' in r else '-'):>7} "
            f"{r.get('compile_seconds', float('nan')):>9.1f} "
            f"{(format(r['value_rel_diff_vs_f64'], '.0e') if 'value_rel_diff_vs_f64' in r else '-'):>8} "
            f"{(format(r['grad_diff_vs_f64'], '.0e') if 'grad_diff_vs_f64' in r else '-'):>9} "
            f"{(format(fr * 100, '.2f') + '%' if fr is not None else '-'):>8} "
            f"{(format(xb / r['T'], '.0f') if xb and math.isfinite(xb) else '-'):>10}")
    if meta["breakdown"]:
        log(f"\nbreakdown of probssm's path at T = {bd_T} (median ms):")
        for b in meta["breakdown"]:
            log(f"  {b['dtype']:7s} {b.get('part', '?'):42s} {fmt_ms(b.get('seconds'))}")
    for tg in targets:
        log(f"target: {tg['target']}: {tg['status']} ({tg['detail']})")
    log(f"counted bytes/step: {COUNTED_WORDS} words (A 4 + Q 4 + y 1); byte model (words/step): "
        f"materialised {sum(BYTE_MODEL['materialised'].values())}, fused {sum(BYTE_MODEL['fused'].values())}; "
        f"HBM {HBM_NOMINAL / 1e12:.2f} TB/s nominal, copy {bw / 1e9:.0f} GB/s measured")
    log("versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()))
    log(f"total {time.perf_counter() - start:.1f} s; wrote {json_path}")
    if failures:
        log("FAILURES:\n  " + "\n  ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
