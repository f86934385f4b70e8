"""Nonlinear Gaussian filtering and smoothing: probssm against filterpy, dynamax and cuthbert on
the pendulum of Särkkä (2013, example 3.7 / 5.1), in one process on the same data.

Model (``x = (angle, rate)``, ``dt = 0.0125``, ``g = 9.81``, ``q_c = 1``)::

    x_{t+1} = (x1 + dt x2,  x2 - g dt sin x1) + q,   q ~ N(0, q_c [[dt^3/3, dt^2/2], [dt^2/2, dt]])
    y_t     = sin(x1_t) + r,                           r ~ N(0, 0.1)
    x_0     ~ N((1.5, 0), 0.1 I)

simulated in NumPy float64 with a fixed seed (``--seed``). Two parts (``--part``):

**cpu**: the unscented Kalman filter (scaled points, ``--ukf alpha beta kappa``, default
``1 2 1``: positive weights, ``n + lambda = 3``), float64, ``T = 1e4``:

============================  ==================================================================
row                           what is called
============================  ==================================================================
probssm (jit)                 ``jax.jit(lambda model, y: nonlinear.filter(model, y,
                              rule=Unscented(alpha, beta, kappa)))`` returning the filtered
                              means, covariances and log-likelihood (compiled ahead of time;
                              compile reported apart)
probssm, public call          ``nonlinear.filter(model, y, rule=...)`` as a user calls it (input
                              checks, the finiteness check, every output incl. the linearised
                              model)
dynamax (jit)                 ``unscented_kalman_filter(params, y, UKFHyperParams(alpha, beta,
                              kappa))`` under ``jax.jit``, filtered means, covariances and
                              log-likelihood
filterpy                      ``UnscentedKalmanFilter`` with ``MerweScaledSigmaPoints(2, alpha,
                              beta, kappa)``, a Python loop of ``update`` (with
                              ``log_likelihood``) then ``predict``, storing ``x`` and ``P``
filterpy, no log-likelihood   the same loop without reading ``log_likelihood`` (a SciPy
                              ``logpdf`` per step)
============================  ==================================================================

Every row's filtered means and log-likelihood are compared with probssm's (max |difference|,
tolerance 1e-8 relative; 1e-6 for dynamax, whose ``psd_solve`` adds ``1e-9 I``); the script
exits 1 on a disagreement. Timing: a warm-up call, then ``--min-repeats`` rounds (default 5) in
which every library runs in turn (a fast one several calls, averaged, to fill about
``--target-seconds / rounds``), so the load of the shared machine falls on all alike; the time
is the median over the rounds.

**gpu** (runs on the CPU too, at small sizes): iterated smoothers, float32, ``T = 1e5``, 10
iterations (``max_iter=10, tol=0``). Two linearisations: ``extended`` (Gauss-Newton, the MAP
path) and ``cubature`` (iterated posterior linearisation with the spherical-radial rule).

============================  ==================================================================
row                           what is called
============================  ==================================================================
probssm parallel / sequential ``nonlinear.smooth(model, y, rule, iterated=True, method=...,
                              max_iter=10, tol=0)`` under ``jax.jit``: a sequential nonlinear
                              filter, one smoothing pass, 10 iterations (linearise along the
                              trajectory -> ``kalman.smooth``), and a last linearise + smooth:
                              12 smoothing passes. ``kernel``: each pass the fused kernel on
                              the per-step linearised model; ``-prior``: ``start="prior"``, no
                              sequential filter first (from the prior at every step)
cuthbert parallel             the same passes built from cuthbert 0.1.1's parts: pass 0 its
                              sequential (non-associative) filter + parallel smoother, then 11
                              passes of its associative filter and smoother
                              (``parallel=True``) with the linearisation points in the model
                              inputs. ``extended``: ``cuthbert.gaussian.taylor`` (log-density
                              Taylor linearisation: for additive Gaussian noise exactly the
                              first-order Taylor of ``f``, ``h``); ``cubature``:
                              ``cuthbert.gaussian.moments`` with each step's statistical linear
                              regression from ``cuthbertlib.quadrature`` (cuthbert has no
                              iterated smoother of its own; this loop is ours, 15 lines)
dynamax sequential            ``extended_kalman_smoother`` / ``unscented_kalman_smoother``
                              (``alpha=1, beta=0, kappa=0``: the cubature points plus a
                              zero-weight centre): dynamax 1.0.3 has no iterated smoother, so
                              this is ONE filter + RTS pass, compared with probssm's one-pass
                              RTS smoother (``iterated=False``) as well
============================  ==================================================================

Sequential rows run at ``--sequential-T`` (default 1e4 on a GPU) and their time is scaled
linearly to ``T`` (labelled ``estimated``) unless ``--sequential-T`` equals ``T``. Accuracy:
RMSE of the smoothed means to the simulated path, and max |difference| to probssm's parallel
smoother in float64 on the same data (itself checked against the sequential one, and cuthbert
against probssm, at ``--check-T`` in float64). Finiteness: probssm parallel in float32 on
``--seeds`` data sets. A breakdown times the parts of probssm's parallel path (the sequential
first filter, one linearisation of the path, one parallel ``kalman.smooth``).

Roofline (per step and smoothing pass, n = 2, m = 1): counted bytes = read ``y`` (1 word) and
the linearisation trajectory, write the new one (means: 2 + 2 words; with covariances for the
cubature rule: + 4 + 4), float32; counted flops = the sequential algorithm's arithmetic
(linearisation, Kalman predict/update, RTS step: about 250 for ``extended``, 450 for
``cubature``). Fractions are against the copy bandwidth measured in the same process and the
H100's 67 TFLOP/s (FP32, non-tensor).

Usage::

    .venv/bin/python benchmarks/nonlinear.py --part cpu --json            # CPU target, T = 1e4
    python3 benchmarks/nonlinear.py --part gpu                            # GPU target, T = 1e5
    python benchmarks/nonlinear.py --part cpu --quick; ... --part gpu --quick   # smoke tests

JSON: ``--json [PATH]`` (default ``benchmarks/results/nonlinear_<part>.json``), or
``$OUT/nonlinear_<part>.json`` when ``OUT`` is set; rewritten after every row. Ratio = peer
seconds / probssm seconds (> 1: probssm is faster).
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

_argv = sys.argv[1:]
_PART = _argv[_argv.index("--part") + 1] if "--part" in _argv and _argv.index("--part") + 1 < len(_argv) else "cpu"
if _PART == "cpu":
    # one thread per library (as kalman_cpu.py and gp.py): a sequential recursion gains nothing
    # from threads, and the 2-core machine is shared
    for _var, _value in {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                         "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
                         "JAX_PLATFORMS": "cpu"}.items():
        os.environ.setdefault(_var, _value)
else:
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    # XLA's Triton GEMM fusion aborted compiles on the H100 (gp_gpu.py); off for every library
    if "xla_gpu_enable_triton_gemm" not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_gpu_enable_triton_gemm=false").strip()

import numpy as np  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

if _PART == "cpu" and hasattr(os, "sched_setaffinity"):
    # XLA sizes its CPU thread pool by the CPUs usable when the client starts (gp.py: a pool of
    # two hung the parallel scans on the 2-core machine): start it on one CPU, then give them back
    _cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(_cpus)})
    try:
        jax.devices()
    finally:
        for _tid in os.listdir("/proc/self/task"):
            try:
                os.sched_setaffinity(int(_tid), _cpus)
            except OSError:
                pass

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_machine, load_average  # noqa: E402
from probssm import kalman, nonlinear  # noqa: E402
from probssm.nonlinear import Cubature, Extended, Unscented  # noqa: E402
from probssm.nonlinear.inference import _linearise_path  # noqa: E402
from probssm.ssm import AdditiveGaussianSSM  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DT, G, QC, R_VAR = 0.0125, 9.81, 1.0, 0.1
M0 = np.array([1.5, 0.0])
P0 = 0.1 * np.eye(2)
Q = QC * np.array([[DT ** 3 / 3, DT ** 2 / 2], [DT ** 2 / 2, DT]])
R = np.array([[R_VAR]])
AGREE_TOL = 1e-8
H100_FP32_FLOPS = 67e12
FLOPS_PER_STEP_PASS = {"extended": 250, "cubature": 450}
WORDS_PER_STEP_PASS = {"extended": 1 + 2 + 2, "cubature": 1 + 2 + 2 + 4 + 4}
N_ITER = 10
PASSES = N_ITER + 2  # probssm: first pass, max_iter loop passes, last linearise + smooth


# ------------------------------------------------------------------------------------------------
# The model, in each library's terms
# ------------------------------------------------------------------------------------------------
def f_jax(x, t=None):
    return jnp.stack([x[0] + DT * x[1], x[1] - G * DT * jnp.sin(x[0])])


def h_jax(x, t=None):
    return jnp.sin(x[:1])


def f_np(x, dt=None):
    return np.array([x[0] + DT * x[1], x[1] - G * DT * np.sin(x[0])])


def h_np(x):
    return np.array([np.sin(x[0])])


def probssm_model(dtype):
    c = lambda a: jnp.asarray(a, dtype)  # noqa: E731
    return AdditiveGaussianSSM(f_jax, h_jax, c(Q), c(R), c(M0), c(P0))


def dynamax_params(dtype):
    from dynamax.nonlinear_gaussian_ssm import ParamsNLGSSM
    c = lambda a: jnp.asarray(a, dtype)  # noqa: E731
    return ParamsNLGSSM(initial_mean=c(M0), initial_covariance=c(P0), dynamics_function=f_jax,
                        dynamics_covariance=c(Q), emission_function=h_jax, emission_covariance=c(R))


def simulate(T, seeds):
    """Paths ``(S, T, 2)`` and observations ``(S, T, 1)``, float64, one generator per seed."""
    seeds = list(seeds)
    S = len(seeds)
    x0 = np.empty((S, 2))
    q = np.empty((S, T, 2))
    r = np.empty((S, T))
    cq, cp = np.linalg.cholesky(Q), np.linalg.cholesky(P0)
    for i, s in enumerate(seeds):
        rng = np.random.default_rng(s)
        x0[i] = M0 + cp @ rng.standard_normal(2)
        q[i] = rng.standard_normal((T, 2)) @ cq.T
        r[i] = math.sqrt(R_VAR) * rng.standard_normal(T)
    xs = np.empty((S, T, 2))
    x = x0
    for t in range(T):
        xs[:, t] = x
        x = np.stack([x[:, 0] + DT * x[:, 1], x[:, 1] - G * DT * np.sin(x[:, 0])], 1) + q[:, t]
    ys = np.sin(xs[:, :, :1]) + r[:, :, None]
    return xs, ys


# ------------------------------------------------------------------------------------------------
# Peers
# ------------------------------------------------------------------------------------------------
def import_cuthbert(notes):
    try:
        import numba  # noqa: F401
    except ImportError:  # cuthbertlib imports numba for a CPU SMC helper no Gaussian filter uses
        stub = types.ModuleType("numba")
        stub.njit = stub.jit = lambda *a, **k: (a[0] if len(a) == 1 and callable(a[0]) and not k
                                                else (lambda f: f))
        sys.modules["numba"] = stub
        notes.append("numba not installed: stand-in numba.njit used to import cuthbertlib "
                     "(not on the Gaussian filter's path)")
    import cuthbert  # noqa: F401
    return cuthbert


def filterpy_ukf(y, alpha, beta, kappa, loglik=True):
    from filterpy.kalman import MerweScaledSigmaPoints, UnscentedKalmanFilter
    points = MerweScaledSigmaPoints(2, alpha, beta, kappa)
    ukf = UnscentedKalmanFilter(dim_x=2, dim_z=1, dt=DT, fx=f_np, hx=h_np, points=points)
    ukf.x, ukf.P, ukf.Q, ukf.R = M0.copy(), P0.copy(), Q.copy(), R.copy()
    ukf.sigmas_f = points.sigma_points(ukf.x, ukf.P)  # update reads the predicted points
    T = len(y)
    means, covs, ll = np.empty((T, 2)), np.empty((T, 2, 2)), 0.0
    for t in range(T):
        if t > 0:  # probssm's x_0 is the state at the first observation: update, then predict
            ukf.predict()
        ukf.update(y[t])
        if loglik:
            ll += ukf.log_likelihood
        means[t], covs[t] = ukf.x, ukf.P
    return means, covs, ll


def _slr(fn, chol_noise, mean, chol, quad):
    """cuthbertlib's statistical linear regression of ``fn`` under N(mean, chol chol^T):
    ``(A, b, chol Omega)``."""
    from cuthbertlib.quadrature import conditional_moments
    return conditional_moments(fn, lambda x: chol_noise, mean, chol, quad, mode="cholesky")


def cuthbert_iterated(rule, passes, dtype):
    """``(y, ) -> smoothed means (T, 2)``: pass 0 sequential filter + parallel smoother, then
    ``passes`` parallel (associative) filter + smoother passes linearised along the last
    smoothed trajectory (means; and covariances for the cubature rule)."""
    import cuthbert
    from cuthbert.gaussian import moments, taylor
    from cuthbertlib.quadrature import cubature
    from jax.scipy.stats import multivariate_normal as mvn

    m0, P0_, Q_, R_ = (jnp.asarray(a, dtype) for a in (M0, P0, Q, R))
    cP0, cQ, cR = (jnp.linalg.cholesky(a) for a in (P0_, Q_, R_))
    quad = cubature.weights(2)
    quad = type(quad)(*(jnp.asarray(a, dtype) for a in quad))

    if rule == "extended":
        def dyn_logpdf(first):
            return lambda xp, x: mvn.logpdf(x, jnp.where(first, m0, f_jax(xp)), jnp.where(first, P0_, Q_))

        def obs_logpdf(x, y):
            return mvn.logpdf(y, h_jax(x), R_)

        def get_dyn_seq(state, inp):   # EKF: at the last filtered mean
            return dyn_logpdf(inp["first"]), state.mean, f_jax(state.mean)

        def get_obs_seq(state, inp):   # at the predicted mean
            return obs_logpdf, state.mean, inp["y"]

        def get_dyn_par(state, inp):   # at the trajectory (model inputs), state ignored
            return dyn_logpdf(inp["first"]), inp["prev_mean"], inp["mean"]

        def get_obs_par(state, inp):
            return obs_logpdf, inp["mean"], inp["y"]

        init_logpdf = lambda x: mvn.logpdf(x, m0, P0_)  # noqa: E731  (time -1: never used)
        filt_seq = taylor.build_filter(init_logpdf, m0, get_dyn_seq, get_obs_seq, associative=False)
        filt_par = taylor.build_filter(init_logpdf, m0, get_dyn_par, get_obs_par, associative=True)
        smo_seq = taylor.build_smoother(get_dyn_seq)
        smo_par = taylor.build_smoother(get_dyn_par)
    else:
        def dyn_moments(first, mean, chol):
            A, b, cO = _slr(f_jax, cQ, mean, chol, quad)
            A, b, cO = (jnp.where(first, 0.0 * A, A), jnp.where(first, m0, b), jnp.where(first, cP0, cO))
            return lambda x: (A @ x + b, cO)

        def obs_moments(mean, chol):
            H, d, cO = _slr(h_jax, cR, mean, chol, quad)
            return lambda x: (H @ x + d, cO)

        def get_dyn_seq(state, inp):
            return dyn_moments(inp["first"], state.mean, state.chol_cov), state.mean

        def get_obs_seq(state, inp):
            return obs_moments(state.mean, state.chol_cov), state.mean, inp["y"]

        def get_dyn_par(state, inp):
            return dyn_moments(inp["first"], inp["prev_mean"], inp["prev_chol"]), inp["prev_mean"]

        def get_obs_par(state, inp):
            return obs_moments(inp["mean"], inp["chol"]), inp["mean"], inp["y"]

        filt_seq = moments.build_filter(m0, cP0, get_dyn_seq, get_obs_seq, associative=False)
        filt_par = moments.build_filter(m0, cP0, get_dyn_par, get_obs_par, associative=True)
        smo_seq = moments.build_smoother(get_dyn_seq)
        smo_par = moments.build_smoother(get_dyn_par)

    def run(y):
        T = y.shape[0]
        first = jnp.arange(T) == 0
        base = {"y": y, "first": first}
        dummy = {"mean": jnp.zeros((T, 2), dtype), "prev_mean": jnp.zeros((T, 2), dtype),
                 "chol": jnp.zeros((T, 2, 2), dtype), "prev_chol": jnp.zeros((T, 2, 2), dtype)}
        fs = cuthbert.filter(filt_seq, {**base, **dummy}, filt_seq.init_prepare(), parallel=False)
        sm = cuthbert.smoother(smo_seq, fs, parallel=True)

        def one(_, carry):
            mean, chol = carry
            inp = {**base, "mean": mean, "chol": chol,
                   "prev_mean": jnp.concatenate([m0[None], mean[:-1]]),
                   "prev_chol": jnp.concatenate([cP0[None], chol[:-1]])}
            fs_ = cuthbert.filter(filt_par, inp, filt_par.init_prepare(), parallel=True)
            sm_ = cuthbert.smoother(smo_par, fs_, parallel=True)
            return sm_.mean[1:], sm_.chol_cov[1:]

        mean, _ = jax.lax.fori_loop(0, passes, one, (sm.mean[1:], sm.chol_cov[1:]))
        return mean
    return run


def dynamax_smoother(rule, dtype):
    from dynamax.nonlinear_gaussian_ssm import (UKFHyperParams, extended_kalman_smoother,
                                                unscented_kalman_smoother)
    params = dynamax_params(dtype)
    if rule == "extended":
        return lambda y: extended_kalman_smoother(params, y).smoothed_means
    hp = UKFHyperParams(alpha=1.0, beta=0.0, kappa=0.0)  # cubature points + zero-weight centre
    return lambda y: unscented_kalman_smoother(params, y, hp).smoothed_means


def probssm_rule(rule):
    return Extended() if rule == "extended" else Cubature()


def probssm_smoother(rule, method, dtype, iterated=True):
    """``method``: a kalman method, with ``-prior`` for ``start="prior"`` (no sequential filter
    first)."""
    model = probssm_model(dtype)
    method, _, start = method.partition("-")

    def run(y):
        return nonlinear.smooth(model, y, probssm_rule(rule), iterated=iterated, method=method,
                                max_iter=N_ITER, tol=0.0, start=start or "filter").mean
    return run


# ------------------------------------------------------------------------------------------------
# Machinery: versions, device, programs, timing
# ------------------------------------------------------------------------------------------------
def versions():
    out = {"python": platform.python_version(), "jax_backend": jax.default_backend()}
    try:
        out["probssm_git"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                                            capture_output=True, text=True).stdout.strip() or None
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "probssm"], cwd=REPO,
                               capture_output=True, text=True).stdout.split("\n")
        out["probssm_uncommitted"] = [line[3:] for line in dirty if line.strip()]
    except OSError:
        out["probssm_git"] = None
    for dist in ("jax", "jaxlib", "jax-cuda13-plugin", "jax-cuda12-plugin", "numpy", "scipy",
                 "filterpy", "dynamax", "tfp-nightly", "cuthbert", "cuthbertlib", "numba"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def device_info():
    d = jax.devices()[0]
    info = {"platform": d.platform, "device_kind": d.device_kind}
    if d.platform == "gpu":
        try:
            q = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.sm,"
                                "clocks.max.sm", "--format=csv,noheader"],
                               capture_output=True, text=True, timeout=20)
            info["nvidia_smi"] = q.stdout.strip() or None
        except (OSError, subprocess.SubprocessError):
            pass
        info["cpu_count"] = os.cpu_count()
    else:
        info.update(cpu_machine())
    return info


def uptime():
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def measure_bandwidth(mib):
    n = mib * 2 ** 20 // 4
    x = jnp.ones(n, jnp.float32)
    f = jax.jit(lambda a: a + 1.0).lower(x).compile()
    f(x).block_until_ready()
    ts = []
    for _ in range(10):
        t0 = time.perf_counter()
        f(x).block_until_ready()
        ts.append(time.perf_counter() - t0)
    return 2 * n * 4 / statistics.median(ts)


class Program:
    """One jitted function, lowered on the main thread (ahead of time), compiled (possibly in a
    thread pool: XLA releases the GIL), called on the main thread."""

    def __init__(self, name, fn, args, x64):
        self.name, self.args, self.x64 = name, args, x64
        self.lowered = self.compiled = self.error = None
        self.info = {}
        try:
            with jax.enable_x64(x64):
                t0 = time.perf_counter()
                self.lowered = jax.jit(fn).lower(*args)
                self.info["trace_lower_seconds"] = time.perf_counter() - t0
        except Exception as e:  # a peer's API or a trace failed: reported, not fatal
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
        except Exception as e:
            self.error = f"compile: {type(e).__name__}: {e}"[:2000]
        return self

    def __call__(self, args=None):
        with jax.enable_x64(self.x64):
            return jax.block_until_ready(self.compiled(*(self.args if args is None else args)))


def timed(fn, *, min_repeats, max_repeats, target_seconds, slow_seconds):
    """Warm-up call, then the median of repeated calls (enough to fill ``target_seconds``, at
    least ``min_repeats``; a single repeat where the warm-up took over ``slow_seconds``)."""
    t0 = time.perf_counter()
    out = fn()
    first = time.perf_counter() - t0
    n = 1 if first > slow_seconds else int(np.clip(math.ceil(target_seconds / max(first, 1e-6)),
                                                   min_repeats, max_repeats))
    times = []
    gc.collect()
    for _ in range(n):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, first, times


def finite_or_null(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_or_null(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_null(v) for v in obj]
    return obj


def fmt_s(s):
    if s is None:
        return "-"
    return f"{s * 1e3:.3f} ms" if s < 1 else f"{s:.3f} s"


def max_diff(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


# ------------------------------------------------------------------------------------------------
# cpu: UKF filter
# ------------------------------------------------------------------------------------------------
def run_cpu(args, meta, log, write):
    jax.config.update("jax_enable_x64", True)
    alpha, beta, kappa = args.ukf
    T = args.T or (300 if args.quick else 10_000)
    meta["settings"].update(T=T, dtype="float64", ukf={"alpha": alpha, "beta": beta, "kappa": kappa})
    xs, ys = simulate(T, [args.seed])
    x_true, y_np = xs[0], ys[0]
    y = jnp.asarray(y_np)
    model = probssm_model(jnp.float64)
    rule = Unscented(alpha, beta, kappa)
    rows, failures = meta["rows"], meta["failures"]
    def probssm_jit(model, y):
        r = nonlinear.filter(model, y, rule=rule)
        return r.mean, r.cov, r.log_likelihood

    entries = [("probssm (jit)", "probssm")]
    entries.append(("probssm, public call", "probssm"))
    have_dynamax = "dynamax" in args.libraries
    if have_dynamax:
        try:
            from dynamax.nonlinear_gaussian_ssm import UKFHyperParams, unscented_kalman_filter
        except Exception as e:
            have_dynamax = False
            meta["notes"].append(f"dynamax unavailable: {type(e).__name__}: {e}")
    have_filterpy = "filterpy" in args.libraries
    if have_filterpy:
        try:
            import filterpy  # noqa: F401
        except Exception as e:
            have_filterpy = False
            meta["notes"].append(f"filterpy unavailable: {type(e).__name__}: {e}")

    progs = {"probssm (jit)": Program("probssm (jit)", probssm_jit, (model, y), True)}
    if have_dynamax:
        params = dynamax_params(jnp.float64)
        hp = UKFHyperParams(alpha=alpha, beta=beta, kappa=kappa)

        def dynamax_jit(y):
            p = unscented_kalman_filter(params, y, hp, output_fields=["filtered_means", "filtered_covariances"])
            return p.filtered_means, p.filtered_covariances, p.marginal_loglik
        progs["dynamax (jit)"] = Program("dynamax (jit)", dynamax_jit, (y,), True)
    for p in progs.values():
        p.compile()

    def public_call():
        r = nonlinear.filter(model, y, rule=rule)
        jax.block_until_ready(r)
        return r.mean, r.cov, r.log_likelihood

    calls = {"probssm (jit)": progs["probssm (jit)"], "probssm, public call": public_call}
    if have_dynamax:
        calls["dynamax (jit)"] = progs["dynamax (jit)"]
    if have_filterpy:
        calls["filterpy"] = lambda: filterpy_ukf(y_np, alpha, beta, kappa)
        calls["filterpy, no log-likelihood"] = lambda: filterpy_ukf(y_np, alpha, beta, kappa, loglik=False)

    # 1. one call each: the answers (compared with probssm's) and a first timing
    ref, timed_calls = None, {}
    for name, fn in calls.items():
        row = {"library": name, "T": T, "dtype": "float64"}
        if isinstance(fn, Program):
            row.update(fn.info)
            if fn.error:
                row["error"] = fn.error
                failures.append(f"{name}: {fn.error[:300]}")
                rows.append(row)
                log(f"{name:30s} FAILED {fn.error[:300]}")
                continue
        if not isinstance(fn, Program):
            fn()  # warm-up (the public call compiles here)
        t0 = time.perf_counter()
        out = fn()
        first = time.perf_counter() - t0
        mean, cov, ll = (np.asarray(a, np.float64) for a in out)
        row.update(first_call_seconds=first, log_likelihood=float(ll),
                   rmse_angle_to_truth=float(np.sqrt(np.mean((mean[:, 0] - x_true[:, 0]) ** 2))))
        if ref is None:
            ref = (mean, cov, float(ll))
        else:
            # dynamax adds 1e-9 I to every matrix it solves with (psd_solve): 1e-6 for it
            tol = 1e-6 if name.startswith("dynamax") else AGREE_TOL
            scale = float(np.max(np.abs(ref[0])))
            row["max_abs_diff_mean_vs_probssm"] = max_diff(mean, ref[0])
            row["max_abs_diff_cov_vs_probssm"] = max_diff(cov, ref[1])
            if "no log-likelihood" not in name:
                row["abs_diff_loglik_vs_probssm"] = abs(float(ll) - ref[2])
            ok = (row["max_abs_diff_mean_vs_probssm"] <= tol * scale
                  and row.get("abs_diff_loglik_vs_probssm", 0.0) <= tol * abs(ref[2]))
            row.update(agrees=ok, tolerance_relative=tol)
            if not ok:
                failures.append(f"{name}: disagrees with probssm (means {row['max_abs_diff_mean_vs_probssm']:.2e}, "
                                f"log-lik {row.get('abs_diff_loglik_vs_probssm', 0):.2e})")
        rows.append(row)
        timed_calls[name] = (fn, row)
        log(f"{name:30s} first call {fmt_s(first):>12}"
            + (f", compile {row['compile_seconds']:.2f} s" if "compile_seconds" in row else "")
            + (f"  |dmean| {row['max_abs_diff_mean_vs_probssm']:.1e} |dll| "
               f"{row.get('abs_diff_loglik_vs_probssm', float('nan')):.1e}" if "agrees" in row else
               f"  log-lik {float(ll):.6f}"))
    write()

    # 2. interleaved rounds: every library once per round (a fast one several calls, averaged),
    # so that the shared machine's load falls on all of them alike; median over the rounds
    rounds = max(args.min_repeats, 3)
    per_round = {n: int(np.clip(math.ceil(args.target_seconds / rounds / max(r["first_call_seconds"], 1e-6)),
                                1, args.max_repeats)) for n, (_, r) in timed_calls.items()}
    samples = {n: [] for n in timed_calls}
    loads = []
    gc.collect()
    for _ in range(rounds):
        loads.append(load_average())
        for name, (fn, _) in timed_calls.items():
            t0 = time.perf_counter()
            for _ in range(per_round[name]):
                fn()
            samples[name].append((time.perf_counter() - t0) / per_round[name])
    for name, (_, row) in timed_calls.items():
        row.update(seconds=statistics.median(samples[name]), min_seconds=min(samples[name]),
                   max_seconds=max(samples[name]), rounds=rounds, calls_per_round=per_round[name])
    meta["load_average_during_rounds"] = loads
    write()

    base = next(r for r in rows if r["library"] == "probssm (jit)")
    for r in rows:
        if "seconds" in r:
            r["ratio"] = r["seconds"] / base["seconds"]
    targets = []
    fp = next((r for r in rows if r["library"] == "filterpy" and "seconds" in r), None)
    if fp:
        targets.append({"target": f">= 50x filterpy's UnscentedKalmanFilter (T = {T}, float64)",
                        "ratio": fp["ratio"], "status": "met" if fp["ratio"] >= 50 else "not met"})
    dx = next((r for r in rows if r["library"] == "dynamax (jit)" and "seconds" in r), None)
    if dx:
        targets.append({"target": f"faster than dynamax's UKF (T = {T}, float64)",
                        "ratio": dx["ratio"], "status": "met" if dx["ratio"] > 1 else "not met"})
    meta["targets"] = targets
    meta["load_average_end"] = load_average()
    meta["uptime_end"] = uptime()
    write()
    log(f"\n== {meta['device'].get('cpu_model')} ({meta['device'].get('cpus_usable')} usable CPUs), "
        f"UKF filter, pendulum, T = {T}, float64; ratio = row / probssm (jit) ==")
    log(f"{'library':30s} {'median':>12} {'min-max':>21} {'ratio':>8} {'max|dmean|':>10} {'|dloglik|':>10}")
    for r in rows:
        log(f"{r['library']:30s} {fmt_s(r.get('seconds')):>12} "
            f"{fmt_s(r.get('min_seconds')) + ' - ' + fmt_s(r.get('max_seconds')):>21} {r.get('ratio', float('nan')):>8.2f} "
            f"{r.get('max_abs_diff_mean_vs_probssm', float('nan')):>10.1e} "
            f"{r.get('abs_diff_loglik_vs_probssm', float('nan')):>10.1e}")
    for tg in targets:
        log(f"target: {tg['target']}: {tg['status']} ({tg['ratio']:.1f}x)")


# ------------------------------------------------------------------------------------------------
# gpu: iterated smoothers
# ------------------------------------------------------------------------------------------------
def run_gpu(args, meta, log, write):
    start_time = time.perf_counter()
    on_gpu = jax.default_backend() == "gpu"
    T = args.T or (400 if args.quick else 100_000)
    Ts = min(args.sequential_T or (T if (args.quick or not on_gpu) else 10_000), T)
    Tc = min(args.check_T, T)
    seeds = list(range(args.seed, args.seed + (3 if args.quick else args.seeds)))
    rules = args.rules
    methods = args.methods
    ref_method = "parallel" if "parallel" in methods else "sequential"
    meta["settings"].update(T=T, sequential_T=Ts, check_T=Tc, seeds=seeds, iterations=N_ITER,
                            smoothing_passes=PASSES, reference=f"probssm {ref_method}, float64")
    jax.config.update("jax_default_matmul_precision", "highest")  # full float32, no TF32
    notes, rows, failures = meta["notes"], meta["rows"], meta["failures"]
    libs = set(args.libraries)
    if "cuthbert" in libs:
        try:
            import_cuthbert(notes)
        except Exception as e:
            libs.discard("cuthbert")
            notes.append(f"cuthbert unavailable: {type(e).__name__}: {e}")
    if "dynamax" in libs:
        try:
            import dynamax.nonlinear_gaussian_ssm  # noqa: F401
        except Exception as e:
            libs.discard("dynamax")
            notes.append(f"dynamax unavailable: {type(e).__name__}: {e}")
    notes.append(f"cuthbert rows run probssm's passes: 1 first pass + {PASSES - 1} linearise-and-smooth "
                 f"passes; dynamax rows are ONE non-iterated smoothing pass (dynamax has no iterated smoother)")
    for n in notes:
        log("note: " + n)
    bw = measure_bandwidth(64 if (args.quick or not on_gpu) else 1024)
    meta["roofline"] = {"copy_bandwidth_bytes_per_s": bw, "fp32_flops_per_s": H100_FP32_FLOPS,
                        "words_per_step_pass": WORDS_PER_STEP_PASS,
                        "flops_per_step_pass": FLOPS_PER_STEP_PASS, "passes": PASSES}
    log(f"copy bandwidth (x + 1, read + write): {bw / 1e9:.0f} GB/s")

    t0 = time.perf_counter()
    xs_all, ys_all = simulate(T, seeds)
    log(f"simulated {len(seeds)} x {T} steps in {time.perf_counter() - t0:.1f} s")
    x_true = xs_all[0]

    def ydata(Tn, dtype, seed_index=0):
        with jax.enable_x64(dtype == "float64"):
            return jnp.asarray(ys_all[seed_index, :Tn], dtype)

    # -- programs ---------------------------------------------------------------------------------
    progs = {}

    def add(key, make, Tn, dtype):
        """``make()`` builds the function under the dtype's x64 setting (float64 constants)."""
        with jax.enable_x64(dtype == "float64"):
            fn = make()
        progs[key] = Program(" ".join(map(str, key)), fn, (ydata(Tn, dtype),), dtype == "float64")

    for rule in rules:
        # checks (float64, T = check_T)
        for method in methods:
            add(("check", rule, f"probssm {method}"), lambda: probssm_smoother(rule, method, jnp.float64), Tc, "float64")
        if "cuthbert" in libs:
            add(("check", rule, "cuthbert parallel"), lambda: cuthbert_iterated(rule, PASSES - 1, jnp.float64), Tc, "float64")
        if "dynamax" in libs:
            add(("check", rule, "dynamax sequential (1 pass)"), lambda: dynamax_smoother(rule, jnp.float64), Tc, "float64")
            add(("check", rule, "probssm sequential (1 pass)"),
                lambda: probssm_smoother(rule, "sequential", jnp.float64, iterated=False), Tc, "float64")
        # reference and timed rows
        if Tc == T:  # the check's program is the reference
            progs[("ref", rule, "probssm float64")] = progs[("check", rule, f"probssm {ref_method}")]
        else:
            add(("ref", rule, "probssm float64"), lambda: probssm_smoother(rule, ref_method, jnp.float64), T, "float64")
        for method in methods:
            add(("time", rule, f"probssm {method}"), lambda: probssm_smoother(rule, method, jnp.float32),
                Ts if method == "sequential" else T, "float32")
        if "cuthbert" in libs:
            add(("time", rule, "cuthbert parallel"), lambda: cuthbert_iterated(rule, PASSES - 1, jnp.float32), T, "float32")
        if "dynamax" in libs:
            add(("time", rule, "dynamax sequential (1 pass)"), lambda: dynamax_smoother(rule, jnp.float32), Ts, "float32")
            add(("time", rule, "probssm sequential (1 pass)"),
                lambda: probssm_smoother(rule, "sequential", jnp.float32, iterated=False), Ts, "float32")
        if not args.no_breakdown:
            model32, y32 = probssm_model(jnp.float32), ydata(T, "float32")
            r_ = probssm_rule(rule)
            lin = jax.eval_shape(lambda m, y: nonlinear.filter(m, y, r_).linearised, model32, y32)
            lin = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), lin)
            traj = (jnp.zeros((T, 2), jnp.float32), jnp.broadcast_to(jnp.eye(2, dtype=jnp.float32), (T, 2, 2)))
            progs[("breakdown", rule, "sequential first filter")] = Program(
                f"breakdown {rule} filter", lambda m, y: nonlinear.filter(m, y, r_).linearised,
                (model32, y32), False)
            progs[("breakdown", rule, "linearise the path (vmap)")] = Program(
                f"breakdown {rule} linearise", lambda m, mean, cov: _linearise_path(m, r_, mean, cov, 0.0)[0],
                (model32, *traj), False)
            progs[("breakdown", rule, "one parallel kalman.smooth")] = Program(
                f"breakdown {rule} smooth", lambda lin_, y: kalman.smooth(lin_, y, method="parallel").mean,
                (lin, y32), False)
    # compile in a thread pool, the timed rows' programs first; each row waits for its own
    # program only, so a slow compile delays nothing else
    log(f"lowered {len(progs)} programs; compiling with {args.compile_threads} threads ...")
    t_comp = time.perf_counter()
    from concurrent.futures import ThreadPoolExecutor
    order = {"ref": 0, "time": 0, "check": 1, "breakdown": 2}
    unique = {}
    for k, p in sorted(progs.items(), key=lambda kp: order[kp[0][0]]):
        unique.setdefault(id(p), p)
    pool = ThreadPoolExecutor(max(1, args.compile_threads))
    futures = {i: pool.submit(p.compile) for i, p in unique.items()}
    deadline = start_time + args.budget_seconds

    kw = dict(min_repeats=args.min_repeats, max_repeats=args.max_repeats,
              target_seconds=args.target_seconds, slow_seconds=args.slow_seconds)

    def ready(key):
        p = progs[key]
        futures[id(p)].result()
        meta.setdefault("programs", {})[" ".join(key)] = p.info
        return p

    def call(key, a=None):
        p = ready(key)
        if p.error or p.compiled is None:
            raise RuntimeError(p.error or "not compiled")
        return np.asarray(p(a), np.float64)

    def over_budget(what):
        if time.perf_counter() > deadline:
            log(f"skip {what}: over --budget-seconds")
            meta.setdefault("skipped_over_budget", []).append(what)
            return True
        return False

    # -- 1. timed rows, in phases: the parallel rows and the one-pass peers, then (after the
    # seeds) probssm's sequential iterated smoother; --budget-seconds may cut the later ones
    refs = {}

    def phase_of(name):
        return 1 if name == "probssm sequential" else 0

    def timed_rows(phase):
        for rule in rules:
            log(f"\n-- {rule}, T = {T}, float32 --")
            if rule not in refs:
                try:
                    refs[rule] = call(("ref", rule, "probssm float64"))
                except Exception as e:
                    refs[rule] = None
                    failures.append(f"reference {rule}: {type(e).__name__}: {str(e)[:300]}")
            for (kind, r_, name), prog in progs.items():
                if kind != "time" or r_ != rule or phase_of(name) != phase:
                    continue
                Tn = Ts if "sequential" in name else T
                if over_budget(f"{rule} {name}"):
                    continue
                ready((kind, r_, name))
                row = {"rule": rule, "library": name, "T_run": Tn, "T": T, "dtype": "float32", **prog.info}
                if prog.error or prog.compiled is None:
                    row["error"] = prog.error or "not compiled"
                    failures.append(f"{rule} {name}: {row['error'][:300]}")
                    rows.append(row)
                    log(f"{name:32s} FAILED {row['error'][:300]}")
                    continue
                try:
                    out, first, times = timed(prog, **kw)
                except Exception as e:
                    row["error"] = f"run: {type(e).__name__}: {e}"[:2000]
                    failures.append(f"{rule} {name}: {row['error'][:300]}")
                    rows.append(row)
                    log(f"{name:32s} FAILED {row['error'][:300]}")
                    continue
                mean = np.asarray(out, np.float64)
                med = statistics.median(times)
                row.update(seconds_run=med, first_call_seconds=first, runs=len(times),
                           seconds=med * T / Tn, estimated=Tn != T, finite=bool(np.all(np.isfinite(mean))),
                           rmse_to_truth=float(np.sqrt(np.mean((mean - x_true[:Tn]) ** 2))),
                           rmse_angle_to_truth=float(np.sqrt(np.mean((mean[:, 0] - x_true[:Tn, 0]) ** 2))))
                if refs.get(rule) is not None and "1 pass" not in name:
                    row["max_abs_diff_vs_f64"] = max_diff(mean, refs[rule][:Tn])
                if "1 pass" not in name:
                    words, flops = WORDS_PER_STEP_PASS[rule], FLOPS_PER_STEP_PASS[rule]
                    row["counted_bytes"] = words * 4 * T * PASSES
                    row["counted_flops"] = flops * T * PASSES
                    row["roofline_fraction_bandwidth"] = row["counted_bytes"] / row["seconds"] / bw
                    row["roofline_fraction_flops"] = row["counted_flops"] / row["seconds"] / H100_FP32_FLOPS
                if not row["finite"]:
                    failures.append(f"{rule} {name}: non-finite smoothed means")
                rows.append(row)
                write()
                log(f"{name:32s} {fmt_s(med):>11} at T={Tn} median of {len(times)} (first {fmt_s(first)}, "
                    f"compile {row.get('compile_seconds', float('nan')):.1f} s)  RMSE {row['rmse_to_truth']:.4f}"
                    + (f"  max|d| vs f64 {row['max_abs_diff_vs_f64']:.1e}" if "max_abs_diff_vs_f64" in row else ""))


    timed_rows(0)
    # -- 2. finiteness over seeds (probssm parallel, float32) -------------------------------------
    meta["seeds"] = []
    for rule in rules:
        key = ("time", rule, f"probssm {ref_method}")
        if key not in progs or (ref_method == "sequential" and Ts != T) or ready(key).compiled is None:
            continue
        finite, rmse, rmse64, diff64 = [], [], [], []
        for i, s in enumerate(seeds):
            if over_budget(f"{rule} seed {s}"):
                break
            m = call(key, (ydata(T, "float32", i),))
            finite.append(bool(np.all(np.isfinite(m))))
            rmse.append(float(np.sqrt(np.mean((m - xs_all[i]) ** 2))))
            try:
                m64 = call(("ref", rule, "probssm float64"), (ydata(T, "float64", i),))
                rmse64.append(float(np.sqrt(np.mean((m64 - xs_all[i]) ** 2))))
                diff64.append(max_diff(m, m64))
            except Exception as e:
                failures.append(f"seed {s} float64 reference: {type(e).__name__}: {str(e)[:200]}")
        meta["seeds"].append({"rule": rule, "seeds": seeds, "finite": finite, "rmse_to_truth": rmse,
                              "rmse_to_truth_float64": rmse64, "max_abs_diff_vs_f64": diff64})
        log(f"{rule}: probssm {ref_method} float32 finite on {sum(finite)}/{len(seeds)} seeds, "
            f"RMSE {min(rmse, default=float('nan')):.4f}-{max(rmse, default=float('nan')):.4f} (float64 {min(rmse64, default=float('nan')):.4f}-"
            f"{max(rmse64, default=float('nan')):.4f}), max|d| vs f64 median {np.median(diff64) if diff64 else float('nan'):.1e}, "
            f"worst {max(diff64, default=float('nan')):.1e}")
        if not all(finite):
            failures.append(f"{rule}: non-finite on seeds {[s for s, ok in zip(seeds, finite) if not ok]}")
    write()

    timed_rows(1)

    # -- 3. checks in float64 ---------------------------------------------------------------------
    log(f"\n-- checks, float64, T = {Tc} (max |difference| of the smoothed means) --")
    meta["checks"] = []
    for rule in rules:
        got = {}
        for name in tuple(f"probssm {m}" for m in methods) + ("cuthbert parallel",
                     "dynamax sequential (1 pass)", "probssm sequential (1 pass)"):
            if ("check", rule, name) in progs and not over_budget(f"check {rule} {name}"):
                try:
                    got[name] = call(("check", rule, name))
                except Exception as e:
                    failures.append(f"check {rule} {name}: {type(e).__name__}: {str(e)[:300]}")
        for a, b, tol in (("probssm parallel", "probssm sequential", 1e-8),
                          ("probssm kernel", "probssm sequential", 1e-8),
                          ("probssm kernel-prior", "probssm parallel-prior", 1e-8),
                          ("cuthbert parallel", f"probssm {ref_method}", 1e-6),
                          # dynamax adds 1e-9 I to every matrix it solves with (psd_solve); Q's
                          # small eigenvalue is 1.6e-7, so its smoother moves by ~1e-6
                          ("dynamax sequential (1 pass)", "probssm sequential (1 pass)", 1e-5)):
            if a in got and b in got:
                d = max_diff(got[a], got[b])
                ok = d <= tol
                meta["checks"].append({"rule": rule, "check": f"{a} vs {b}", "T": Tc,
                                       "max_abs_diff": d, "tol": tol, "passed": ok})
                log(f"{rule:9s} {a} vs {b}: {d:.2e} (tol {tol:g}) {'ok' if ok else 'FAILED'}")
                if not ok:
                    failures.append(f"check {rule} {a} vs {b}: {d:.2e} > {tol:g}")
    write()

    # -- 4. breakdown -----------------------------------------------------------------------------
    meta["breakdown"] = []
    for (kind, rule, name), prog in progs.items():
        if kind != "breakdown" or over_budget(f"breakdown {rule} {name}"):
            continue
        ready((kind, rule, name))
        if prog.compiled is None:
            meta["breakdown"].append({"rule": rule, "part": name, "error": prog.error})
            continue
        _, first, times = timed(prog, **kw)
        meta["breakdown"].append({"rule": rule, "part": name, "seconds": statistics.median(times),
                                  "runs": len(times), **prog.info})
    write()

    pool.shutdown(wait=False, cancel_futures=True)
    meta["compile_and_run_wall_seconds"] = time.perf_counter() - t_comp
    # -- 5. ratios, targets, table ----------------------------------------------------------------
    def find(rule, name):
        return next((r for r in rows if r["rule"] == rule and r["library"] == name and "seconds" in r), None)

    targets = []
    for rule in rules:
        par = find(rule, "probssm parallel")
        for r in rows:
            if r["rule"] == rule and "seconds" in r and par:
                r["ratio_vs_probssm_parallel"] = r["seconds"] / par["seconds"]
        one = find(rule, "probssm sequential (1 pass)")
        dx = find(rule, "dynamax sequential (1 pass)")
        if one and dx:
            dx["ratio_vs_probssm_sequential_1_pass"] = dx["seconds"] / one["seconds"]
        peers = [r for r in (find(rule, "cuthbert parallel"),) if r]
        if par and peers:
            fastest = min(peers, key=lambda r: r["seconds"])
            ratio = fastest["seconds"] / par["seconds"]
            status = "met" if ratio >= 5 else "not met"
            targets.append({"target": f"{rule}: >= 5x the fastest iterated peer (T = {T}, float32)",
                            "peer": fastest["library"], "ratio": ratio,
                            "status": status if on_gpu else f"not assessed (the target is for a GPU; "
                                                            f"here {ratio:.2f}x on the CPU)"})
        seed_row = next((s for s in meta["seeds"] if s["rule"] == rule), None)
        if seed_row:
            targets.append({"target": f"{rule}: finite in float32 for {len(seeds)} seeds",
                            "status": "met" if all(seed_row["finite"]) else "not met",
                            "ratio": None})
    meta["targets"] = targets
    write()

    dev = meta["device"]
    log(f"\n== {dev.get('device_kind')}: iterated smoothers ({N_ITER} iterations, {PASSES} passes), "
        f"pendulum, T = {T}, float32; ratio = row / probssm parallel ==")
    hdr = (f"{'rule':9s} {'library':32s} {'time':>11} {'est':>3} {'ratio':>7} {'compile':>7} "
           f"{'RMSE':>7} {'max|d|f64':>9} {'BW frac':>8} {'flop frac':>9}")
    log(hdr)
    log("-" * len(hdr))
    for r in rows:
        log(f"{r['rule']:9s} {r['library']:32s} {fmt_s(r.get('seconds')):>11} "
            f"{'yes' if r.get('estimated') else '':>3} {r.get('ratio_vs_probssm_parallel', float('nan')):>7.2f} "
            f"{r.get('compile_seconds', float('nan')):>7.1f} {r.get('rmse_to_truth', float('nan')):>7.4f} "
            f"{r.get('max_abs_diff_vs_f64', float('nan')):>9.1e} "
            f"{r.get('roofline_fraction_bandwidth', float('nan')):>8.1e} "
            f"{r.get('roofline_fraction_flops', float('nan')):>9.1e}")
    if meta["breakdown"]:
        log(f"\nbreakdown of probssm's parallel path at T = {T} (float32):")
        for b in meta["breakdown"]:
            log(f"  {b['rule']:9s} {b['part']:34s} {fmt_s(b.get('seconds'))}")
    for tg in targets:
        log(f"target: {tg['target']}: {tg['status']}"
            + (f" ({tg['peer']} / probssm parallel = {tg['ratio']:.2f}x)" if tg.get("ratio") else ""))


# ------------------------------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--part", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--T", type=int, default=None, help="cpu: 1e4; gpu: 1e5 (--quick: 300 / 400)")
    p.add_argument("--quick", action="store_true", help="tiny sizes, short timing (smoke test)")
    p.add_argument("--libraries", nargs="+", default=["filterpy", "dynamax", "cuthbert"])
    p.add_argument("--ukf", type=float, nargs=3, default=[1.0, 2.0, 1.0], metavar=("ALPHA", "BETA", "KAPPA"))
    p.add_argument("--methods", nargs="+", default=["parallel", "sequential"],
                   choices=("parallel", "sequential", "kernel", "parallel-prior", "kernel-prior"),
                   help="probssm's methods (the float64 reference is the parallel one when run)")
    p.add_argument("--rules", nargs="+", default=["extended", "cubature"], choices=("extended", "cubature"))
    p.add_argument("--sequential-T", type=int, default=None,
                   help="gpu: T of the sequential rows (default 1e4 on a GPU, else T); scaled to T")
    p.add_argument("--check-T", type=int, default=2000)
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-breakdown", action="store_true")
    p.add_argument("--budget-seconds", type=float, default=1e9,
                   help="gpu: start no new row, seed or check after this many seconds")
    p.add_argument("--compile-threads", type=int, default=8)
    p.add_argument("--min-repeats", type=int, default=5)
    p.add_argument("--max-repeats", type=int, default=50)
    p.add_argument("--target-seconds", type=float, default=2.0)
    p.add_argument("--slow-seconds", type=float, default=2.0,
                   help="gpu: a row whose warm-up call took longer is timed once more")
    p.add_argument("--json", nargs="?", const="", default=None,
                   help="write JSON (default path: benchmarks/results/nonlinear_<part>.json)")
    args = p.parse_args(argv)
    if args.quick:
        args.min_repeats, args.target_seconds = min(args.min_repeats, 3), 0.05
    return args


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    out_dir = os.environ.get("OUT")
    if args.json:
        json_path = Path(args.json)
    elif out_dir:
        json_path = Path(out_dir) / f"nonlinear_{args.part}.json"
    elif args.json == "":
        json_path = REPO / "benchmarks" / "results" / f"nonlinear_{args.part}.json"
    else:
        json_path = None
    meta = {
        "benchmark": f"nonlinear_{args.part}",
        "date_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]),
        "device": device_info(), "versions": versions(), "uptime_start": uptime(),
        "model": {"name": "pendulum (Sarkka 2013)", "dt": DT, "g": G, "q_c": QC, "R": R_VAR,
                  "m0": M0.tolist(), "P0": P0.tolist()},
        "settings": {k: v for k, v in vars(args).items() if k != "json"},
        "statistic": "median of repeated calls after a warm-up call, each ending in "
                     "block_until_ready; compile (lower + XLA) timed apart",
        "notes": [], "rows": [], "failures": [],
    }

    def log(msg=""):
        print(msg, flush=True)

    def write():
        if json_path is None:
            return
        meta["total_seconds"] = time.perf_counter() - start
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(finite_or_null(meta), indent=1, allow_nan=False) + "\n")

    log(f"nonlinear ({args.part}): device {meta['device']}")
    log(f"uptime: {meta['uptime_start']}")
    log("versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()))
    (run_cpu if args.part == "cpu" else run_gpu)(args, meta, log, write)
    log("versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()))
    log(f"uptime at the end: {uptime()}")
    write()
    log(f"total {time.perf_counter() - start:.1f} s" + (f"; wrote {json_path}" if json_path else ""))
    if meta["failures"]:
        log("FAILURES:\n  " + "\n  ".join(meta["failures"]))
        return 1
    log("AGREEMENT CHECK PASSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
