"""GPU benchmark: parallel-in-time Kalman filtering, probssm against dynamax, cuthbert, pyro, statsmodels.

One process, one simulated data set per size, shared by every library; the arrays are put on
the device once, before any timing. For each size the script

1. checks in float64 (``with jax.enable_x64(True)``, the global flag is never flipped) that
   every method's log-likelihood agrees with probssm's ``"sequential"`` filter on the first
   ``min(T, --agree-T)`` steps (and ``min(batch, --agree-batch)`` series); a relative
   difference above ``1e-6`` is printed loudly and makes the script exit with status 1;
2. computes a float64 reference at full size with probssm ``"sequential"`` on JAX's CPU
   backend (log-likelihood, filtered and smoothed means);
3. times every method in the run dtype (float32 by default): ahead-of-time compile
   (``jax.jit(f).lower(...).compile()``, reported separately), then the median of
   ``>= --min-runs`` steady-state calls ending with ``block_until_ready``
   (``torch.cuda.synchronize`` for pyro), and reports the relative error of each method's
   log-likelihood against the float64 reference, the peak memory and the roofline fraction.

Methods
-------
* probssm: every method in ``kalman.METHODS`` and ``"auto"``, for (a) ``log_likelihood``,
  (b) ``filter`` with ``predictions=False``: filtered moments and log-likelihood, the outputs
  of the peers' (parallel) filters and of the roofline's byte count (``--predictions``: the
  whole ``FilterResult``, one-step predictions of states and observations included),
  (c) ``smooth`` (the whole ``SmoothResult``),
  each wrapped in ``jax.jit`` with ``y`` as the argument and the model a constant of the
  program, so the prior is checked before compiling and only the path taken is compiled
  (``--traced-model`` passes the model as an argument too; a model built without a diffuse part
  still compiles the kernel path alone, through its static ``proper_prior`` flag).
* dynamax: ``lgssm_filter`` / ``lgssm_smoother`` (sequential) and ``parallel_lgssm_filter`` /
  ``parallel_lgssm_smoother`` with ``ParamsLGSSM``; the log-likelihood is the filter's
  ``marginal_loglik`` (the parallel filter returns it too); ``jax.vmap`` over series.
* cuthbert: ``cuthbert.gaussian.kalman.build_filter`` / ``build_smoother`` run by
  ``cuthbert.filter`` / ``cuthbert.smoother`` with ``parallel=False`` and ``parallel=True``
  (square-root elements; the covariances come out as Cholesky factors); log-likelihood
  ``states.log_normalizing_constant[-1]``; ``jax.vmap`` over series.
* pyro: ``pyro.distributions.GaussianHMM(...).log_prob(y)`` (log-likelihood only), torch on
  the GPU, time includes building the distribution.
* statsmodels: ``KalmanFilter.loglike()`` / ``.filter()`` and ``KalmanSmoother.smooth()``,
  CPU, float64, only for ``T <= --statsmodels-max-T``; default settings (conventional
  filter, steady-state detection on); a Python loop over series.

Model and conventions
---------------------
``x_0 ~ N(m0, P0)``, ``y_t = H x_t + eps_t`` (``R``), ``x_{t+1} = F x_t + eta_t`` (``Q``),
``t = 0..T-1`` (probssm, dynamax, statsmodels: the prior is on the first observed state).
``F`` is random with spectral radius 0.9, ``Q``, ``R`` random positive definite, ``m = 2``.
``P0`` is the stationary covariance (``P0 = F P0 F^T + Q``) and ``m0 = F m_prev``: cuthbert's
``init_prepare`` and pyro's ``initial_dist`` describe the state one step *before* the first
observation (a transition is applied before ``y_0``), so they get ``N(m_prev, P0)``, whose
image under one transition is exactly ``N(m0, P0)``. pyro right-multiplies (``z @ F^T``,
``z @ H^T``). cuthbert returns ``T + 1`` states (the first is that earlier state; it is
dropped when comparing means). statsmodels uses ``initialize_known(m0, P0)``, ``selection=I``.

Importing dynamax sets ``jax_default_matmul_precision='float32'`` for the whole process; the
script then sets it to ``--matmul-precision`` (default ``float32``, i.e. full-precision
float32 matmuls, no TF32) for every JAX library alike.

Roofline
--------
``fraction = bytes / time / copy_bandwidth``; ``bytes`` = observations read
(``batch * T * m * itemsize``) plus the states written: nothing per step for the
log-likelihood (one scalar per series), filtered means and covariances
(``batch * T * (n + n*n) * itemsize``) for the filter, twice that (filtered + smoothed) for
the smoother. ``copy_bandwidth`` is measured once in this process by a large device-to-device
``y = x + 1`` in JAX (bytes read + written per second). Every timed call pays a fixed cost
that no kernel can remove, JAX's dispatch and the wait for the result: the *call floor*, the
same timing of a jitted ``x + 1`` on 8 numbers, is measured once too and printed beside it, and
each row also reports ``roofline_fraction_above_floor`` (the time minus the floor) and, for
calls under 0.1 s, ``roofline_fraction_pipelined`` (the time a call when 20 calls are queued
back to back, :func:`pipelined_time`: the device's time once dispatch overlaps). On a GPU,
before the methods of each size and mode, a *bandwidth ceiling* program
(:func:`ceiling_program`) that only reads ``y`` and writes the counted bytes is timed the same
way: no method can beat its fraction in this process.

Usage::

    python benchmarks/parallel_kalman.py                    # default grid (GPU)
    python benchmarks/parallel_kalman.py --full             # every (T, n) pair
    python benchmarks/parallel_kalman.py --quick            # tiny sizes, CPU smoke test
    python benchmarks/parallel_kalman.py --sizes 100000:4 1000:4:1024 --modes loglik
    python benchmarks/parallel_kalman.py --libraries probssm dynamax --budget-seconds 540

JSON goes to ``$OUT/parallel_kalman.json`` when ``OUT`` is set, else
``benchmarks/results/parallel_kalman_<device>.json`` (or ``--json PATH``); it is rewritten after
every size, so an interrupted run keeps what it measured. See ``benchmarks/gpu_env.md`` for the
peers' wheels on an offline GPU machine.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import gc
import json
import math
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
import traceback
import types
from importlib import metadata
from functools import partial
from pathlib import Path

# JAX must not grab 75% of the GPU up front: torch (pyro) shares the device in this process.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import numpy as np  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from probssm import kalman  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
REL_TOL = 1e-6
MODES = ("loglik", "filter", "smooth")
LIBRARIES = ("probssm", "dynamax", "cuthbert", "pyro", "statsmodels")
M_OBS = 2
# rough cost of a mode relative to the log-likelihood, for the skip estimate from the float64
# check (which times the log-likelihood only)
MODE_COST = {"loglik": 1.0, "filter": 1.5, "smooth": 3.0}


# ------------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------------
def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="tiny sizes (T in {100, 1000}, batch 8): a CPU smoke test")
    ap.add_argument("--full", action="store_true", help="every (T, n) pair of the grid")
    ap.add_argument("--sizes", nargs="+", metavar="T:n[:batch]",
                    help="explicit sizes instead of the grid, e.g. 100000:4 1000:4:1024")
    ap.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                    help="dtype of the timed runs (default float32)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--libraries", nargs="+", choices=LIBRARIES, default=list(LIBRARIES))
    ap.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    ap.add_argument("--probssm-methods", nargs="+", choices=list(kalman.METHODS) + ["auto"],
                    default=list(kalman.METHODS) + ["auto"],
                    help="probssm methods to run (default: all and 'auto')")
    ap.add_argument("--min-runs", type=int, default=10, help="timed runs per cell, at least")
    ap.add_argument("--target-seconds", type=float, default=None,
                    help="more runs for fast cells, up to this much timed time (default 2, quick 0.3)")
    ap.add_argument("--max-run-seconds", type=float, default=20.0,
                    help="skip a cell whose single run is estimated (from the previous size) "
                         "to take longer than this")
    ap.add_argument("--agree-T", type=int, default=10_000,
                    help="float64 agreement check on the first min(T, this) steps")
    ap.add_argument("--agree-batch", type=int, default=64,
                    help="float64 agreement check on the first min(batch, this) series")
    ap.add_argument("--no-full-ref", action="store_true",
                    help="skip the full-size float64 reference on the CPU backend")
    ap.add_argument("--statsmodels-max-T", type=int, default=100_000)
    ap.add_argument("--matmul-precision", default="float32",
                    choices=("float32", "default", "tensorfloat32", "bfloat16"),
                    help="jax_default_matmul_precision for every JAX library (dynamax's import "
                         "sets float32 globally; 'default' restores JAX's default)")
    ap.add_argument("--bw-mib", type=int, default=None,
                    help="size of the array for the copy-bandwidth measurement "
                         "(default 2048 on a GPU, 256 otherwise)")
    ap.add_argument("--budget-seconds", type=float, default=None,
                    help="start no new cell after this many seconds (results so far are kept)")
    ap.add_argument("--json", metavar="PATH", default=None, help="where to write the JSON")
    ap.add_argument("--traced-model", action="store_true",
                    help="pass probssm's model as an argument of the jitted function (traced) "
                         "instead of a constant (its static proper_prior flag still settles the "
                         "prior before compiling)")
    ap.add_argument("--predictions", action="store_true",
                    help="probssm's filter returns the whole FilterResult (one-step predictions "
                         "of states and observations too) instead of predictions=False")
    ap.add_argument("--no-fail", action="store_true",
                    help="exit 0 even if a float64 disagreement was found")
    args = ap.parse_args(argv)
    if args.target_seconds is None:
        args.target_seconds = 0.3 if args.quick else 2.0
    return args


def grid(args):
    """List of (T, n, batch); batch 0 means one series ``y`` of shape ``(T, m)``."""
    if args.sizes:
        out = []
        for s in args.sizes:
            parts = [int(float(p)) for p in s.split(":")]
            T, n, batch = (parts + [4, 0])[:3] if len(parts) == 1 else (parts + [0])[:3]
            out.append((T, n, batch))
        return out
    if args.quick:
        Ts, batch = (100, 1000), (100, 4, 8)
        base = [(100, 4, 0), (1000, 4, 0)]
    else:
        Ts, batch = (1_000, 10_000, 100_000, 1_000_000), (1_000, 4, 1024)
        base = [(T, 4, 0) for T in Ts] + [(100_000, 2, 0), (100_000, 8, 0)]
    if args.full:
        base = [(T, n, 0) for n in (4, 2, 8) for T in Ts]
    return base + [batch]


def size_label(T, n, batch):
    return f"T={T:.0e} n={n}" + (f" B={batch}" if batch else "")


# ------------------------------------------------------------------------------------------------
# Model and data (numpy float64)
# ------------------------------------------------------------------------------------------------
def make_model(n: int, seed: int, m: int = M_OBS, spectral_radius: float = 0.9):
    """Random stable time-invariant model; ``P0`` stationary and ``m0 = F m_prev`` (see module doc)."""
    import scipy.linalg

    rng = np.random.default_rng([seed, n])
    F = rng.normal(size=(n, n))
    F *= spectral_radius / np.max(np.abs(np.linalg.eigvals(F)))

    def pd(k, floor):
        a = rng.normal(size=(k, k))
        return a @ a.T / k + floor * np.eye(k)

    Q = pd(n, 0.1)
    H = rng.normal(size=(m, n))
    R = pd(m, 0.1)
    P0 = scipy.linalg.solve_discrete_lyapunov(F, Q)
    P0 = 0.5 * (P0 + P0.T)
    m_prev = rng.normal(size=n)
    p = dict(F=F, Q=Q, H=H, R=R, m0=F @ m_prev, P0=P0, m_prev=m_prev)
    p.update(chol_Q=np.linalg.cholesky(Q), chol_R=np.linalg.cholesky(R), chol_P0=np.linalg.cholesky(P0))
    return p


def simulate(p, T: int, batch: int, seed: int) -> np.ndarray:
    """Observations ``(T, m)`` (``batch == 0``) or ``(batch, T, m)``, float64.

    Separate random streams for ``x_0``, state and observation noise, so a shorter series is a
    prefix of a longer one.
    """
    B = max(batch, 1)
    n, m = p["F"].shape[0], p["H"].shape[0]
    r0, r_eta, r_eps = (np.random.default_rng(s)
                        for s in np.random.SeedSequence([seed, n, batch]).spawn(3))
    x = p["m0"] + r0.standard_normal(size=(B, n)) @ p["chol_P0"].T
    eta = r_eta.standard_normal(size=(T, B, n)) @ p["chol_Q"].T
    eps = r_eps.standard_normal(size=(T, B, m)) @ p["chol_R"].T
    Ft = p["F"].T
    states = np.empty((T, B, n))
    for t in range(T):
        states[t] = x
        x = x @ Ft + eta[t]
    y = states @ p["H"].T + eps  # (T, B, m)
    y = np.ascontiguousarray(np.swapaxes(y, 0, 1))
    return y if batch else y[0]


# ------------------------------------------------------------------------------------------------
# Peers
# ------------------------------------------------------------------------------------------------
class Peers:
    """Lazily imported peer libraries; an import failure is recorded, not fatal."""

    def __init__(self, libraries):
        self.errors, self.notes = {}, []
        self.dynamax = self.cuthbert = self.torch = self.pyro_dist = self.statsmodels = None
        if "dynamax" in libraries:
            try:
                import dynamax  # noqa: F401  (sets jax_default_matmul_precision globally)
                import dynamax.linear_gaussian_ssm as dl
                self.dynamax = dl
            except Exception as e:  # pragma: no cover - depends on the machine
                self.errors["dynamax"] = f"{type(e).__name__}: {e}"
        if "cuthbert" in libraries:
            try:
                try:
                    import numba  # noqa: F401
                except ImportError:
                    # cuthbertlib imports numba at import time for one CPU resampling helper
                    # (SMC), which the Kalman filter never calls; numba + llvmlite would be
                    # ~64 MB of wheels, so a stand-in njit (identity decorator) is used.
                    stub = types.ModuleType("numba")

                    def njit(*a, **k):
                        return a[0] if len(a) == 1 and callable(a[0]) and not k else (lambda f: f)

                    stub.njit = stub.jit = njit
                    stub.__probssm_stub__ = True
                    sys.modules["numba"] = stub
                    self.notes.append("numba not installed: a stand-in numba.njit (identity) was "
                                      "used to import cuthbertlib (only its CPU SMC resampling "
                                      "uses numba; not on the Kalman path)")
                import cuthbert
                from cuthbert.gaussian import kalman as ck
                self.cuthbert = (cuthbert, ck)
            except Exception as e:  # pragma: no cover
                self.errors["cuthbert"] = f"{type(e).__name__}: {e}"
        if "pyro" in libraries:
            try:
                import torch
                import pyro.distributions as pdist
                self.torch, self.pyro_dist = torch, pdist
            except Exception as e:  # pragma: no cover
                self.errors["pyro"] = f"{type(e).__name__}: {e}"
        if "statsmodels" in libraries:
            try:
                from statsmodels.tsa.statespace.kalman_filter import KalmanFilter
                from statsmodels.tsa.statespace.kalman_smoother import KalmanSmoother
                self.statsmodels = (KalmanFilter, KalmanSmoother)
            except Exception as e:  # pragma: no cover
                self.errors["statsmodels"] = f"{type(e).__name__}: {e}"


def set_matmul_precision(choice):
    jax.config.update("jax_default_matmul_precision", None if choice == "default" else choice)


# ------------------------------------------------------------------------------------------------
# Per-size data on the devices
# ------------------------------------------------------------------------------------------------
class Ctx:
    """Model parameters and data of one size in one dtype, already on their devices."""

    def __init__(self, p, y_np, dtype, peers, device=None):
        self.p, self.dtype = p, jnp.dtype(dtype)
        self.np_dtype = np.dtype(self.dtype.name)
        self.batch = y_np.shape[0] if y_np.ndim == 3 else 0
        self.T, self.n = y_np.shape[-2], p["F"].shape[0]
        self.y_np = y_np
        put = (lambda a: jax.device_put(a, device)) if device is not None else jax.device_put
        cast = lambda a: put(jnp.asarray(np.asarray(a, self.np_dtype)))  # noqa: E731
        self.model = jax.tree_util.tree_map(
            put, kalman.LGSSM(*(np.asarray(p[k], self.np_dtype) for k in ("F", "Q", "H", "R", "m0", "P0"))))
        self.y = cast(y_np)
        self.cuthbert_args = tuple(cast(p[k]) for k in ("m_prev", "chol_P0", "F", "chol_Q", "H", "chol_R"))
        self.dynamax_params = None
        if peers.dynamax is not None:
            dl = peers.dynamax
            n, m = self.n, p["H"].shape[0]
            zeros = lambda *s: put(jnp.zeros(s, self.dtype))  # noqa: E731
            self.dynamax_params = dl.ParamsLGSSM(
                initial=dl.ParamsLGSSMInitial(mean=cast(p["m0"]), cov=cast(p["P0"])),
                dynamics=dl.ParamsLGSSMDynamics(weights=cast(p["F"]), bias=zeros(n),
                                                input_weights=zeros(n, 0), cov=cast(p["Q"])),
                emissions=dl.ParamsLGSSMEmissions(weights=cast(p["H"]), bias=zeros(m),
                                                  input_weights=zeros(m, 0), cov=cast(p["R"])),
            )
        self._torch = {}

    def torch_tensors(self, torch, device):
        key = str(device)
        if key not in self._torch:
            tdt = torch.float64 if self.np_dtype == np.float64 else torch.float32
            t = lambda a: torch.as_tensor(np.asarray(a, self.np_dtype), dtype=tdt, device=device)  # noqa: E731
            self._torch[key] = dict(
                y=t(self.y_np), m_prev=t(self.p["m_prev"]), chol_P0=t(self.p["chol_P0"]),
                Ft=t(self.p["F"].T), Ht=t(self.p["H"].T), chol_Q=t(self.p["chol_Q"]),
                chol_R=t(self.p["chol_R"]), zn=torch.zeros(self.n, dtype=tdt, device=device),
                zm=torch.zeros(self.p["H"].shape[0], dtype=tdt, device=device))
        return self._torch[key]


# ------------------------------------------------------------------------------------------------
# Methods: each gives, for a mode, either a JAX function + arguments or a Python callable
# ------------------------------------------------------------------------------------------------
class Method:
    library = ""
    kind = "jax"  # "jax" (timed through jit + AOT compile), "torch", "cpu"
    modes = MODES

    def __init__(self, name):
        self.name = name

    def jax_fn(self, ctx, mode):
        raise NotImplementedError

    def call(self, ctx, mode):
        raise NotImplementedError

    def extract(self, out, mode):
        """-> dict(loglik=ndarray, mean=ndarray or None [filter: filtered, smooth: smoothed])."""
        raise NotImplementedError


class Probssm(Method):
    library = "probssm"

    traced_model = False  # set from --traced-model
    predictions = False  # set from --predictions

    def __init__(self, method):
        super().__init__(f"probssm {method}")
        self.method = method

    def jax_fn(self, ctx, mode):
        M = self.method
        fn = {"loglik": kalman.log_likelihood, "filter": kalman.filter, "smooth": kalman.smooth}[mode]
        if mode == "filter":
            fn = partial(fn, predictions=self.predictions)
        if self.traced_model:
            return (lambda model, y: fn(model, y, method=M)), (ctx.model, ctx.y)
        model = ctx.model  # a concrete constant of the program: its values are checked first
        return (lambda y: fn(model, y, method=M)), (ctx.y,)

    def extract(self, out, mode):
        if mode == "loglik":
            return dict(loglik=np.asarray(out), mean=None)
        return dict(loglik=np.asarray(out.log_likelihood), mean=np.asarray(out.mean))


class Dynamax(Method):
    library = "dynamax"

    def __init__(self, parallel, peers):
        super().__init__("dynamax parallel" if parallel else "dynamax sequential")
        dl = peers.dynamax
        self.filt = dl.parallel_lgssm_filter if parallel else dl.lgssm_filter
        self.smooth = dl.parallel_lgssm_smoother if parallel else dl.lgssm_smoother

    def jax_fn(self, ctx, mode):
        filt, smooth = self.filt, self.smooth
        if mode == "loglik":
            f = lambda params, y: filt(params, y).marginal_loglik  # noqa: E731
        elif mode == "filter":
            f = lambda params, y: filt(params, y)  # noqa: E731
        else:
            f = lambda params, y: smooth(params, y)  # noqa: E731
        if ctx.batch:
            f = jax.vmap(f, in_axes=(None, 0))
        return f, (ctx.dynamax_params, ctx.y)

    def extract(self, out, mode):
        if mode == "loglik":
            return dict(loglik=np.asarray(out), mean=None)
        mean = out.filtered_means if mode == "filter" else out.smoothed_means
        return dict(loglik=np.asarray(out.marginal_loglik), mean=np.asarray(mean))


class Cuthbert(Method):
    library = "cuthbert"

    def __init__(self, parallel, peers):
        super().__init__("cuthbert parallel" if parallel else "cuthbert sequential")
        self.parallel = parallel
        self.lib, self.ck = peers.cuthbert

    def jax_fn(self, ctx, mode):
        cuthbert, ck, parallel = self.lib, self.ck, self.parallel

        def one(args, y):
            m_prev, chol_P0, F, chol_Q, H, chol_R = args
            c = jnp.zeros(F.shape[0], F.dtype)
            d = jnp.zeros(H.shape[0], H.dtype)
            dynamics = lambda inputs: (F, c, chol_Q)  # noqa: E731
            observation = lambda inputs: (H, d, chol_R, inputs)  # noqa: E731  (inputs = y_t)
            filt = ck.build_filter(m_prev, chol_P0, dynamics, observation)
            states = cuthbert.filter(filt, y, filt.init_prepare(), parallel=parallel)
            ll = states.log_normalizing_constant[-1]
            if mode == "loglik":
                return ll
            # Outputs keep the T + 1 states (slicing off the first would copy them).
            if mode == "filter":
                return dict(loglik=ll, mean=states.mean, chol_cov=states.chol_cov)
            smoothed = cuthbert.smoother(ck.build_smoother(dynamics), states, parallel=parallel)
            return dict(loglik=ll, mean=smoothed.mean, chol_cov=smoothed.chol_cov,
                        filtered_mean=states.mean, filtered_chol_cov=states.chol_cov)

        f = jax.vmap(one, in_axes=(None, 0)) if ctx.batch else one
        return f, (ctx.cuthbert_args, ctx.y)

    def extract(self, out, mode):
        if mode == "loglik":
            return dict(loglik=np.asarray(out), mean=None)
        return dict(loglik=np.asarray(out["loglik"]), mean=np.asarray(out["mean"])[..., 1:, :])


class Pyro(Method):
    library = "pyro"
    kind = "torch"
    modes = ("loglik",)

    def __init__(self, peers, device):
        super().__init__("pyro GaussianHMM")
        self.torch, self.dist, self.device = peers.torch, peers.pyro_dist, device

    def call(self, ctx, mode):
        torch, dist = self.torch, self.dist
        t = ctx.torch_tensors(torch, self.device)

        def run():
            with torch.inference_mode():
                hmm = dist.GaussianHMM(
                    dist.MultivariateNormal(t["m_prev"], scale_tril=t["chol_P0"], validate_args=False),
                    t["Ft"],
                    dist.MultivariateNormal(t["zn"], scale_tril=t["chol_Q"], validate_args=False),
                    t["Ht"],
                    dist.MultivariateNormal(t["zm"], scale_tril=t["chol_R"], validate_args=False),
                    validate_args=False,
                )
                return hmm.log_prob(t["y"])

        return run

    def extract(self, out, mode):
        return dict(loglik=out.detach().cpu().numpy(), mean=None)


class Statsmodels(Method):
    library = "statsmodels"
    kind = "cpu"

    def __init__(self, peers):
        super().__init__("statsmodels (CPU, f64)")
        self.KalmanFilter, self.KalmanSmoother = peers.statsmodels

    def _make(self, p, smoother):
        n, m = p["F"].shape[0], p["H"].shape[0]
        cls = self.KalmanSmoother if smoother else self.KalmanFilter
        kf = cls(k_endog=m, k_states=n, k_posdef=n)
        kf["design"], kf["obs_cov"] = p["H"], p["R"]
        kf["transition"], kf["selection"], kf["state_cov"] = p["F"], np.eye(n), p["Q"]
        kf.initialize_known(p["m0"], p["P0"])
        return kf

    def call(self, ctx, mode):
        # One filter object per series, bound once, outside the timed call: re-binding a used
        # statsmodels KalmanFilter to new data of the same shape keeps filtering the old data
        # (its Cython state-space object is cached), so a loop must not reuse one object.
        series = [ctx.y_np] if not ctx.batch else list(ctx.y_np)
        filters = []
        for y in series:
            kf = self._make(ctx.p, smoother=(mode == "smooth"))
            kf.bind(np.ascontiguousarray(y, dtype=np.float64))
            filters.append(kf)

        def one(kf):
            if mode == "loglik":
                return kf.loglike(), None
            res = kf.filter() if mode == "filter" else kf.smooth()
            return res.llf, (res.filtered_state if mode == "filter" else res.smoothed_state).T

        if not ctx.batch:
            return lambda: one(filters[0])
        return lambda: [one(kf) for kf in filters]

    def extract(self, out, mode):
        if isinstance(out, list):
            ll = np.array([o[0] for o in out])
            mean = None if mode == "loglik" else np.stack([o[1] for o in out])
            return dict(loglik=ll, mean=mean)
        return dict(loglik=np.asarray(out[0]), mean=None if out[1] is None else np.asarray(out[1]))


def build_methods(args, peers, torch_device):
    methods = []
    if "probssm" in args.libraries:
        Probssm.traced_model = args.traced_model
        Probssm.predictions = args.predictions
        methods += [Probssm(M) for M in args.probssm_methods]
    if peers.dynamax is not None:
        methods += [Dynamax(False, peers), Dynamax(True, peers)]
    if peers.cuthbert is not None:
        methods += [Cuthbert(False, peers), Cuthbert(True, peers)]
    if peers.torch is not None:
        methods.append(Pyro(peers, torch_device))
    if peers.statsmodels is not None:
        methods.append(Statsmodels(peers))
    return methods


# ------------------------------------------------------------------------------------------------
# Timing
# ------------------------------------------------------------------------------------------------
def jax_mem_stats(device):
    try:
        return device.memory_stats() or None
    except Exception:
        return None


def n_runs(first_s, args):
    if first_s >= args.max_run_seconds:
        return 1
    want = math.ceil(args.target_seconds / max(first_s, 1e-7))
    return max(args.min_runs, min(want, 200))


def time_jax(fn, fargs, args, device):
    info = {}
    t0 = time.perf_counter()
    lowered = jax.jit(fn).lower(*fargs)
    t1 = time.perf_counter()
    compiled = lowered.compile()
    t2 = time.perf_counter()
    info.update(trace_lower_s=t1 - t0, xla_compile_s=t2 - t1, compile_s=t2 - t0)
    try:
        ma = compiled.memory_analysis()
        if ma is not None:
            info["xla_temp_bytes"] = int(ma.temp_size_in_bytes)
            info["xla_output_bytes"] = int(ma.output_size_in_bytes)
            info["xla_argument_bytes"] = int(ma.argument_size_in_bytes)
    except Exception:
        pass
    before = jax_mem_stats(device)
    t3 = time.perf_counter()
    out = compiled(*fargs)
    jax.block_until_ready(out)
    first = time.perf_counter() - t3
    times = []
    for _ in range(n_runs(first, args)):
        s = time.perf_counter()
        o = compiled(*fargs)
        jax.block_until_ready(o)
        times.append(time.perf_counter() - s)
        del o
    if not times:
        times = [first]
    if first < 0.1:
        info["pipelined_s"] = pipelined_time(compiled, fargs)
    after = jax_mem_stats(device)
    if before and after and "peak_bytes_in_use" in after:
        info["mem_in_use_before"] = int(before.get("bytes_in_use", 0))
        info["mem_peak_before"] = int(before.get("peak_bytes_in_use", 0))
        info["mem_peak_after"] = int(after["peak_bytes_in_use"])
        if info["mem_peak_after"] > info["mem_peak_before"]:
            info["peak_bytes"] = info["mem_peak_after"] - info["mem_in_use_before"]
    info["first_call_s"] = first
    return info, times, out


def pipelined_time(compiled, fargs, calls=20):
    """Time a call of ``compiled`` when ``calls`` calls are queued back to back (at most two
    results alive, so the allocator reuses their memory) and the last one is waited for: the
    device's time a call once the host's dispatch overlaps the previous call's work."""
    outs = []
    start = time.perf_counter()
    for _ in range(calls):
        outs.append(compiled(*fargs))
        if len(outs) > 2:
            outs.pop(0)
    jax.block_until_ready(outs)
    return (time.perf_counter() - start) / calls


def ceiling_program(mode, n, m=M_OBS):
    """A program that only moves the roofline's bytes for ``mode``: it reads ``y`` and writes
    means ``(..., T, n)`` and covariances ``(..., T, n, n)`` (twice for the smoother; the sum of
    ``y`` for the log-likelihood) in one XLA fusion each. Timed like the methods, it is the
    fastest any method could be in this process: the measured ceiling of the roofline fraction."""
    def program(y):
        if mode == "loglik":
            return jnp.nansum(y, axis=(-2, -1))
        first = y[..., :1]
        out = [first * jnp.arange(1, n + 1, dtype=y.dtype),
               first[..., None] * jnp.ones((n, n), y.dtype)]
        if mode == "smooth":
            out += [2.0 * out[0], 2.0 * out[1]]
        return out
    return program


def time_callable(run, args, torch=None, cuda=False):
    info = {}
    sync = (lambda: torch.cuda.synchronize()) if cuda else (lambda: None)  # noqa: E731
    if cuda:
        sync()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    out = run()
    sync()
    first = time.perf_counter() - t0
    times = []
    for _ in range(n_runs(first, args)):
        s = time.perf_counter()
        o = run()
        sync()
        times.append(time.perf_counter() - s)
        del o
    if not times:
        times = [first]
    if cuda:
        info["peak_bytes"] = int(torch.cuda.max_memory_allocated() - base)
    info["first_call_s"] = first
    return info, times, out


# ------------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------------
def rel_err(a, ref):
    a, ref = np.asarray(a, np.float64), np.asarray(ref, np.float64)
    if a.shape != ref.shape:
        return float("nan")
    return float(np.max(np.abs(a - ref) / np.maximum(np.abs(ref), np.finfo(float).tiny)))


def mean_err(mean, ref):
    if mean is None or ref is None:
        return None
    mean, ref = np.asarray(mean, np.float64), np.asarray(ref, np.float64)
    if mean.shape != ref.shape:
        return f"shape {mean.shape} != {ref.shape}"
    return float(np.max(np.abs(mean - ref)) / max(np.max(np.abs(ref)), np.finfo(float).tiny))


def state_bytes(mode, T, n, batch, itemsize, m=M_OBS):
    B = max(batch, 1)
    y = B * T * m * itemsize
    states = B * T * (n + n * n) * itemsize
    return {"loglik": y + B * itemsize, "filter": y + states, "smooth": y + 2 * states}[mode]


def measure_bandwidth(device, mib):
    n = mib * 2**20 // 4
    x = jax.device_put(jnp.ones((n,), jnp.float32), device)
    f = jax.jit(lambda a: a + 1.0).lower(x).compile()
    jax.block_until_ready(f(x))
    times = []
    for _ in range(10):
        s = time.perf_counter()
        jax.block_until_ready(f(x))
        times.append(time.perf_counter() - s)
    del x
    gc.collect()
    t = statistics.median(times)
    return dict(array_bytes=n * 4, median_s=t, bytes_per_s=2 * n * 4 / t)


def measure_call_floor(device):
    """Median time of a blocked call of a jitted ``x + 1`` on 8 numbers: JAX's dispatch and the
    wait for the result, which every timed call pays."""
    x = jax.device_put(jnp.ones((8,), jnp.float32), device)
    f = jax.jit(lambda a: a + 1.0).lower(x).compile()
    for _ in range(10):
        jax.block_until_ready(f(x))
    times = []
    for _ in range(100):
        s = time.perf_counter()
        jax.block_until_ready(f(x))
        times.append(time.perf_counter() - s)
    return statistics.median(times)


def device_tag(device_kind: str) -> str:
    """Short device name for result files: the model number ("NVIDIA H100 80GB HBM3" -> "H100")."""
    found = re.search(r"\b([A-Z]+[0-9]{2,4}[A-Za-z]?)\b", device_kind)
    return found.group(1) if found else re.sub(r"[^A-Za-z0-9]+", "_", device_kind).strip("_")


def versions():
    out = {"python": sys.version.split()[0], "probssm": getattr(sys.modules["probssm"], "__version__", None)}
    try:
        out["probssm_git"] = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
            timeout=10).stdout.strip() or None
    except Exception:
        out["probssm_git"] = None
    for dist in ("jax", "jaxlib", "jax-cuda13-plugin", "jax-cuda13-pjrt", "jax-cuda12-plugin",
                 "numpy", "scipy", "dynamax", "tfp-nightly", "cuthbert", "cuthbertlib", "torch",
                 "pyro-ppl", "statsmodels", "numba"):
        try:
            out[dist] = metadata.version(dist)
        except Exception:
            pass
    return out


def device_info():
    dev = jax.devices()[0]
    info = dict(backend=jax.default_backend(), device_kind=dev.device_kind, platform=dev.platform,
                devices=[str(d) for d in jax.devices()], processor=platform.processor(),
                machine=platform.platform())
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        model = [ln.split(":", 1)[1].strip() for ln in lscpu.splitlines() if ln.startswith("Model name")]
        info["cpu_model"] = model[0] if model else None
    except Exception:
        info["cpu_model"] = None
    info["cpu_count"] = os.cpu_count()
    if shutil.which("nvidia-smi"):
        try:
            info["nvidia_smi_L"] = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True,
                                                  timeout=20).stdout.strip()
        except Exception as e:
            info["nvidia_smi_L"] = f"failed: {e}"
    return info


def fmt(x, spec):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        width = re.match(r"\d*", spec).group()
        text = "-" if x is None else "nan"
        return format(text, ">" + width) if width else text
    return format(x, spec)


def log(msg=""):
    print(msg, flush=True)


# ------------------------------------------------------------------------------------------------
# Main
# ------------------------------------------------------------------------------------------------
def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    precision_before = jax.config.jax_default_matmul_precision
    peers = Peers(args.libraries)
    precision_after_import = jax.config.jax_default_matmul_precision
    set_matmul_precision(args.matmul_precision)

    dev = jax.devices()[0]
    gpu = dev.platform == "gpu"
    cpu_dev = jax.devices("cpu")[0]
    torch_device = None
    if peers.torch is not None:
        torch_device = "cuda" if peers.torch.cuda.is_available() else "cpu"
        if gpu and torch_device == "cpu":
            peers.notes.append("torch has no CUDA here: pyro runs on the CPU")
    dinfo = device_info()
    vers = versions()
    dtype = jnp.dtype(args.dtype)
    itemsize = dtype.itemsize
    x64_ctx = (lambda: jax.enable_x64(True)) if dtype == jnp.float64 else contextlib.nullcontext

    log("=" * 100)
    log("parallel_kalman: probssm vs dynamax / cuthbert / pyro / statsmodels")
    log(f"device: {dinfo['device_kind']} ({dinfo['backend']}); jax devices {dinfo['devices']}")
    if "nvidia_smi_L" in dinfo:
        log(f"nvidia-smi -L: {dinfo['nvidia_smi_L']}")
    log(f"cpu: {dinfo.get('cpu_model')} x{dinfo['cpu_count']}")
    log("versions: " + ", ".join(f"{k} {v}" for k, v in vers.items() if v))
    log(f"kalman.METHODS = {kalman.METHODS}; dtype {args.dtype}; matmul precision "
        f"{args.matmul_precision} (before dynamax import: {precision_before}, after: "
        f"{precision_after_import}); XLA_PYTHON_CLIENT_PREALLOCATE="
        f"{os.environ.get('XLA_PYTHON_CLIENT_PREALLOCATE')}; pyro on {torch_device or '-'}")
    for lib, err in peers.errors.items():
        log(f"!!! {lib} NOT AVAILABLE: {err} -- its rows are skipped")
    for note in peers.notes:
        log(f"note: {note}")

    bw_mib = args.bw_mib or (2048 if gpu else 256)
    bw = measure_bandwidth(dev, bw_mib)
    log(f"copy bandwidth (y = x + 1, {bw_mib} MiB float32, read + write): "
        f"{bw['bytes_per_s'] / 1e9:.1f} GB/s")
    bw["call_floor_s"] = measure_call_floor(dev)
    log(f"call floor (blocked call of a jitted x + 1 on 8 numbers): "
        f"{bw['call_floor_s'] * 1e3:.3f} ms")

    methods = build_methods(args, peers, torch_device)
    sizes = grid(args)
    log(f"sizes: {[size_label(*s) for s in sizes]}")
    log(f"methods: {[m.name for m in methods]}; modes: {args.modes}")

    out_path = Path(args.json) if args.json else (
        Path(os.environ["OUT"]) / "parallel_kalman.json" if os.environ.get("OUT") else
        REPO / "benchmarks" / "results" /
        f"parallel_kalman_{device_tag(dinfo['device_kind'])}.json")
    result = dict(
        benchmark="parallel_kalman", date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        command=" ".join(shlex.quote(a) for a in [sys.executable] + sys.argv), args=vars(args),
        device=dinfo, versions=vers, kalman_methods=list(kalman.METHODS),
        matmul_precision=dict(used=args.matmul_precision, before_imports=precision_before,
                              after_dynamax_import=precision_after_import),
        env={k: os.environ.get(k) for k in ("XLA_FLAGS", "XLA_PYTHON_CLIENT_PREALLOCATE",
                                            "XLA_PYTHON_CLIENT_MEM_FRACTION", "JAX_PLATFORMS",
                                            "CUDA_VISIBLE_DEVICES")},
        peer_errors=peers.errors, notes=peers.notes, bandwidth=bw, rel_tol=REL_TOL, sizes=[],
        disagreements=[],
    )

    def over_budget(extra=0.0):
        return bool(args.budget_seconds) and time.perf_counter() - start + extra > args.budget_seconds

    def write_json():
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(result, indent=1, default=str))

    models, data = {}, {}
    last = {}  # (method, mode) -> (T * B, n, seconds): for the skip estimate
    all_rows = []

    for (T, n, batch) in sizes:
        label = size_label(T, n, batch)
        log("\n" + "-" * 100)
        log(f"size {label}")
        if n not in models:
            models[n] = make_model(n, args.seed)
        p = models[n]
        key = (n, batch)
        longest = max(TT for (TT, nn, bb) in sizes if nn == n and bb == batch)
        if key not in data:
            data[key] = simulate(p, longest, batch, args.seed)
        y_np = data[key][..., :T, :]
        entry = dict(T=T, n=n, m=M_OBS, batch=batch, label=label, rows=[], agreement={})
        result["sizes"].append(entry)

        # -- 1. float64 agreement on the first min(T, agree_T) steps -------------------------------
        T_chk = min(T, args.agree_T)
        B_chk = min(batch, args.agree_batch) if batch else 0
        y_chk = y_np[:B_chk, :T_chk] if batch else y_np[:T_chk]
        entry["agreement_T"], entry["agreement_batch"] = T_chk, B_chk
        log(f"float64 agreement check on T={T_chk}" + (f", {B_chk} series" if batch else "")
            + " vs probssm sequential:")
        check_time = {}
        with jax.enable_x64(True):
            ctx64 = Ctx(p, y_chk, jnp.float64, peers)
            ref_ll = None
            ordered = sorted((m for m in methods if "loglik" in m.modes),
                             key=lambda m: m.name != "probssm sequential")
            for meth in ordered:
                if meth.library == "statsmodels" and T_chk > args.statsmodels_max_T:
                    continue
                if over_budget():
                    entry["agreement"][meth.name] = dict(skipped="time budget")
                    log(f"  {meth.name:28s} skipped (time budget)")
                    continue
                try:
                    if meth.kind == "jax":
                        f, fa = meth.jax_fn(ctx64, "loglik")
                        run = (lambda jf, a: (lambda: jax.block_until_ready(jf(*a))))(jax.jit(f), fa)
                    else:
                        run = meth.call(ctx64, "loglik")
                        if meth.kind == "torch" and torch_device == "cuda":
                            run = (lambda r: (lambda: (r(), peers.torch.cuda.synchronize())[0]))(run)
                    out = run()
                    s0 = time.perf_counter()
                    run()
                    # float64 time of one call at the check size: a (pessimistic) estimate for
                    # the timed runs when no earlier size measured this method
                    check_time[meth.name] = (T_chk * max(B_chk, 1), n, time.perf_counter() - s0)
                    ll = meth.extract(out, "loglik")["loglik"]
                except Exception as e:
                    entry["agreement"][meth.name] = dict(error=f"{type(e).__name__}: {e}")
                    log(f"  {meth.name:28s} ERROR {type(e).__name__}: {e}")
                    continue
                if ref_ll is None:
                    ref_ll = ll
                rel = rel_err(ll, ref_ll)
                ok = rel <= REL_TOL
                entry["agreement"][meth.name] = dict(loglik=np.asarray(ll, float).tolist(),
                                                     rel_diff=rel, ok=ok)
                flag = "ok" if ok else "!!! DISAGREES (> 1e-6) !!!"
                log(f"  {meth.name:28s} loglik {float(np.ravel(ll)[0]):.10g}  rel diff {rel:.2e}  {flag}")
                if not ok:
                    result["disagreements"].append(dict(size=label, method=meth.name, rel_diff=rel))
            del ctx64
        gc.collect()

        # -- 2. full-size float64 reference on the CPU backend ---------------------------------------
        ref = None
        if not args.no_full_ref and not over_budget():
            try:
                t0 = time.perf_counter()
                with jax.enable_x64(True), jax.default_device(cpu_dev):
                    ctxr = Ctx(p, y_np, jnp.float64, peers, device=cpu_dev)
                    fref = jax.jit(lambda mo, yy: (lambda r: (r.log_likelihood, r.filtered.mean, r.mean))(
                        kalman.smooth(mo, yy, method="sequential")))
                    ll, fm, sm = jax.block_until_ready(fref(ctxr.model, ctxr.y))
                    ref = dict(loglik=np.asarray(ll), filter=np.asarray(fm), smooth=np.asarray(sm))
                    del ctxr
                entry["reference"] = dict(method="probssm sequential float64 on CPU",
                                          loglik=np.asarray(ref["loglik"]).ravel()[:8].tolist(),
                                          seconds=time.perf_counter() - t0)
                log(f"float64 reference (probssm sequential, CPU backend): loglik "
                    f"{float(np.ravel(ref['loglik'])[0]):.10g} ({time.perf_counter() - t0:.1f} s)")
            except Exception as e:
                entry["reference"] = dict(error=f"{type(e).__name__}: {e}")
                log(f"float64 reference failed: {type(e).__name__}: {e}")

        # -- 3. timing in the run dtype -----------------------------------------------------------
        with x64_ctx():
            ctx = Ctx(p, y_np, dtype, peers)
            for mode in args.modes:
                if gpu:
                    info, times, _ = time_jax(ceiling_program(mode, n), (ctx.y,), args, dev)
                    ceiling = dict(time_s=statistics.median(times), **info)
                    cbytes = state_bytes(mode, T, n, batch, itemsize)
                    ceiling["roofline_fraction"] = cbytes / ceiling["time_s"] / bw["bytes_per_s"]
                    if "pipelined_s" in info:
                        ceiling["roofline_fraction_pipelined"] = (
                            cbytes / info["pipelined_s"] / bw["bytes_per_s"])
                    entry.setdefault("ceiling", {})[mode] = ceiling
                    log(f"  {mode:6s} {'bandwidth ceiling':28s} time "
                        f"{ceiling['time_s'] * 1e3:10.3f} ms  roofline "
                        f"{ceiling['roofline_fraction']:.2e} (pipelined "
                        f"{fmt(ceiling.get('roofline_fraction_pipelined'), '.2e')})")
                for meth in methods:
                    if mode not in meth.modes:
                        continue
                    row = dict(size=label, T=T, n=n, batch=batch, mode=mode, method=meth.name,
                               library=meth.library, dtype=args.dtype if meth.kind != "cpu" else "float64",
                               device=("cpu" if meth.kind == "cpu" else
                                       torch_device if meth.kind == "torch" else dinfo["device_kind"]))
                    if meth.name == "probssm auto":
                        try:
                            row["auto_resolves_to"] = kalman.inference._resolve_method("auto", T)
                        except Exception:
                            pass
                    entry["rows"].append(row)
                    all_rows.append(row)
                    tag = f"  {mode:6s} {meth.name:28s}"
                    if meth.library == "statsmodels" and T > args.statsmodels_max_T:
                        row["skipped"] = f"T > {args.statsmodels_max_T}"
                        continue
                    est, src = None, None
                    prev = last.get((meth.name, mode))
                    if prev is None and meth.name in check_time:
                        prev, src = check_time[meth.name], "float64 check"
                        prev = (prev[0], prev[1], prev[2] * MODE_COST[mode])
                    elif prev is not None:
                        src = "previous size"
                    if prev is not None:
                        est = prev[2] * (T * max(batch, 1) / prev[0]) * (n / prev[1]) ** 2
                        row["estimate_s"], row["estimate_from"] = est, src
                    if est is not None and est > args.max_run_seconds:
                        row["skipped"] = f"est. {est:.1f} s"
                        log(f"{tag} skipped (est. {est:.1f} s, from the {src})")
                        continue
                    if over_budget((est or 0.0) * (args.min_runs + 1)):
                        row["skipped"] = "time budget"
                        log(f"{tag} skipped (time budget)")
                        continue
                    try:
                        if meth.kind == "jax":
                            f, fa = meth.jax_fn(ctx, mode)
                            info, times, out = time_jax(f, fa, args, dev)
                        elif meth.kind == "torch":
                            info, times, out = time_callable(meth.call(ctx, mode), args, peers.torch,
                                                             cuda=torch_device == "cuda")
                        else:
                            info, times, out = time_callable(meth.call(ctx, mode), args)
                        ext = meth.extract(out, mode)
                        del out
                    except Exception as e:
                        row["error"] = f"{type(e).__name__}: {e}"
                        row["traceback"] = traceback.format_exc(limit=6)
                        log(f"{tag} ERROR {row['error']}")
                        gc.collect()
                        continue
                    med = statistics.median(times)
                    row.update(info, time_s=med, min_s=min(times), max_s=max(times), runs=len(times))
                    if meth.kind != "jax":
                        row["compile_s"] = None
                        row["first_minus_steady_s"] = info["first_call_s"] - med
                    last[(meth.name, mode)] = (T * max(batch, 1), n, med)
                    row["loglik"] = np.asarray(ext["loglik"], float).ravel()[:4].tolist()
                    if not np.all(np.isfinite(ext["loglik"])):
                        row["non_finite_loglik"] = True
                        log(f"{tag} !!! NON-FINITE LOG-LIKELIHOOD in {args.dtype}")
                    if ref is not None:
                        row["loglik_relerr_vs_f64"] = rel_err(ext["loglik"], ref["loglik"])
                        if mode != "loglik":
                            row["mean_relerr_vs_f64"] = mean_err(ext["mean"], ref[mode])
                    on_gpu_dev = meth.kind == "jax" or (meth.kind == "torch" and (torch_device == "cuda") == gpu)
                    row["bytes"] = state_bytes(mode, T, n, batch, itemsize if meth.kind != "cpu" else 8)
                    row["roofline_fraction"] = (row["bytes"] / med / bw["bytes_per_s"]) if on_gpu_dev else None
                    if on_gpu_dev and "pipelined_s" in info:
                        row["roofline_fraction_pipelined"] = (
                            row["bytes"] / info["pipelined_s"] / bw["bytes_per_s"])
                    if on_gpu_dev and med > bw["call_floor_s"]:
                        row["roofline_fraction_above_floor"] = (
                            row["bytes"] / (med - bw["call_floor_s"]) / bw["bytes_per_s"])
                    if "peak_bytes" not in row and "xla_temp_bytes" in row:
                        row["xla_peak_estimate_bytes"] = (row["xla_temp_bytes"] + row["xla_output_bytes"]
                                                          + row["xla_argument_bytes"])
                    log(f"{tag} compile {fmt(row.get('compile_s'), '7.2f')} s  time "
                        f"{med * 1e3:10.3f} ms ({len(times)} runs)  roofline "
                        f"{fmt(row['roofline_fraction'], '.2e')} (above the call floor "
                        f"{fmt(row.get('roofline_fraction_above_floor'), '.2e')}, pipelined "
                        f"{fmt(row.get('roofline_fraction_pipelined'), '.2e')})  ll relerr "
                        f"{fmt(row.get('loglik_relerr_vs_f64'), '.1e')}"
                        + (f"  mean relerr {fmt(row.get('mean_relerr_vs_f64'), '.1e')}"
                           if mode != "loglik" and isinstance(row.get('mean_relerr_vs_f64'), float) else ""))
                    del ext
                    gc.collect()
                    write_json()
                if peers.torch is not None and torch_device == "cuda":
                    peers.torch.cuda.empty_cache()
            del ctx
        # speed-ups: peer time / best probssm time, per mode
        for mode in args.modes:
            rows = [r for r in entry["rows"] if r["mode"] == mode and "time_s" in r]
            mine = [r for r in rows if r["library"] == "probssm"]
            if not mine:
                continue
            best = min(mine, key=lambda r: r["time_s"])
            for r in rows:
                r["vs_best_probssm"] = r["time_s"] / best["time_s"]
                r["best_probssm_method"] = best["method"]
        jax.clear_caches()
        gc.collect()
        write_json()

    # -- final table ---------------------------------------------------------------------------------
    log("\n" + "=" * 100)
    log(f"Results ({args.dtype} unless marked; device {dinfo['device_kind']}; copy bandwidth "
        f"{bw['bytes_per_s'] / 1e9:.1f} GB/s; call floor {bw['call_floor_s'] * 1e3:.3f} ms; "
        f"probssm filter {'with' if args.predictions else 'without'} predictions). "
        "'x best' = time / best probssm time for the same "
        "size and mode (peer rows: the speed-up of probssm's best method over that peer).")
    header = (f"{'size':22s} {'mode':6s} {'method':28s} {'compile s':>9s} {'time ms':>11s} {'runs':>4s} "
              f"{'x best':>8s} {'roofline':>9s} {'peak MB':>9s} {'ll relerr':>9s}")
    log(header)
    log("-" * len(header))
    for r in all_rows:
        if "time_s" not in r:
            why = r.get("skipped") or r.get("error", "")
            if r.get("skipped", "").startswith("T >"):
                continue
            log(f"{r['size']:22s} {r['mode']:6s} {r['method']:28s} {'':>9s} "
                f"{('skipped (' + why + ')') if 'skipped' in r else 'ERROR ' + why[:60]}")
            continue
        peak = r.get("peak_bytes", r.get("xla_peak_estimate_bytes"))
        peak_s = "-" if peak is None else (f"{peak / 2**20:.1f}" + ("" if "peak_bytes" in r else "*"))
        name = r["method"]
        log(f"{r['size']:22s} {r['mode']:6s} {name:28s} {fmt(r.get('compile_s'), '9.2f')} "
            f"{r['time_s'] * 1e3:11.3f} {r['runs']:4d} {fmt(r.get('vs_best_probssm'), '8.2f')} "
            f"{fmt(r.get('roofline_fraction'), '9.2e')} {peak_s:>9s} "
            f"{fmt(r.get('loglik_relerr_vs_f64'), '9.1e')}")
    log("peak MB: runtime peak increase over the memory in use before the method (JAX "
        "memory_stats, torch max_memory_allocated); '*' = XLA's static estimate "
        "(arguments + outputs + temporaries) where no runtime figure exists; ll relerr: "
        "relative error of the log-likelihood against the float64 reference.")
    log("\nSpeed-up of probssm's best method over each peer (peer time / probssm time; > 1: "
        "probssm faster):")
    for entry in result["sizes"]:
        for mode in args.modes:
            rows = [r for r in entry["rows"] if r["mode"] == mode and "time_s" in r]
            mine = [r for r in rows if r["library"] == "probssm"]
            if not mine:
                continue
            best = min(mine, key=lambda r: r["time_s"])
            peers_s = ", ".join(f"{r['method']} {r['vs_best_probssm']:.2f}x" for r in rows
                                if r["library"] != "probssm")
            log(f"  {entry['label']:22s} {mode:6s} best probssm: {best['method']} "
                f"{best['time_s'] * 1e3:.3f} ms | {peers_s or 'no peer measured'}")
    if result["disagreements"]:
        log("\n" + "!" * 100)
        for d in result["disagreements"]:
            log(f"!!! FLOAT64 DISAGREEMENT: {d['size']} {d['method']}: rel diff {d['rel_diff']:.3e} > {REL_TOL}")
        log("!" * 100)
    result["total_seconds"] = time.perf_counter() - start
    write_json()
    log(f"\nJSON: {out_path}  (total {result['total_seconds']:.0f} s)")
    return 1 if result["disagreements"] and not args.no_fail else 0


if __name__ == "__main__":
    sys.exit(main())
