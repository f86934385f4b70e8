"""Compile time, speed and exactness of probssm's fused Kalman kernels on the GPU.

For each size (``--sizes T:batch``, float32, ``n = --n`` (default 4), ``m = 2``, the benchmark's model and
data from :mod:`parallel_kalman`), and each mode (log-likelihood, filter, smoother through the
public API with ``method="kernel"``, the model a constant of the program as in the benchmark):

* ``trace_lower_s`` (``jax.jit(f).lower(y)``: tracing, Pallas -> Triton lowering, StableHLO),
  ``xla_compile_s`` (``.compile()``: XLA and the Triton kernels) and ``compile_s``, their sum;
* ``run_ms``: the median of ``--runs`` calls ending in ``block_until_ready``;
* with ``--grad``, the same for ``jax.value_and_grad`` of the log-likelihood and, with
  ``--grad-outputs loglik filter smooth``, of the filter's or smoother's outputs (:func:`gradient_program`) by each of
  ``--grad-methods`` (default the kernel, whose gradient is the filter's reverse mode of
  :mod:`probssm.kalman.ops.adjoint`);

and, per Pallas kernel of the smoother's program at the first size (``--kernels``), the compile
and run time of that kernel alone on its real inputs.

Exactness on the device (``--check``): the kernel in float64 on the GPU against probssm's
``"sequential"`` filter and smoother in float64 on JAX's CPU backend, on a series with NaN rows
and entries and a correlated ``R`` (``T = --check-T``) and on a batch of 8 series: the largest
relative error of the log-likelihood, filtered and smoothed means and covariances, lag-one
covariances and the log-likelihood's gradient in every field of the model. Also float32 against float64, both on the GPU, at the first size.

Usage (GPU)::

    python benchmarks/probes/kernel_compile_probe.py --json $OUT/probe.json
    python benchmarks/probes/kernel_compile_probe.py --sizes 1000000:1 --modes smooth --no-check
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: parallel_kalman

import jax
import jax.numpy as jnp
import numpy as np
import parallel_kalman as pk

from probssm import kalman

FNS = {"loglik": kalman.log_likelihood, "filter": kalman.filter, "smooth": kalman.smooth}


def parse_args(argv=None):
    """The command line (module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", nargs="+", default=["1000000:1", "1000:1024"], metavar="T:batch")
    ap.add_argument("--modes", nargs="+", default=list(FNS), choices=list(FNS))
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--kernels", action="store_true", help="compile and time every kernel alone")
    ap.add_argument("--grad", action="store_true",
                    help="also the gradient of the log-likelihood (value_and_grad)")
    ap.add_argument("--grad-outputs", nargs="+", default=["loglik"], choices=list(FNS),
                    help="what --grad differentiates: the log-likelihood, the filter's or the "
                         "smoother's outputs")
    ap.add_argument("--grad-methods", nargs="+", default=["kernel"],
                    choices=["kernel", "parallel", "sequential"],
                    help="methods whose gradient --grad times")
    ap.add_argument("--no-check", dest="check", action="store_false")
    ap.add_argument("--check-T", type=int, default=20000)
    ap.add_argument("--n", type=int, default=4, help="state dimension")
    ap.add_argument("--json", default=None)
    return ap.parse_args(argv)


def model_and_data(T, batch, dtype, seed=0, n=4):
    """The benchmark's random stable model (``n`` states, ``m = 2``) and ``y`` ``(batch, T, 2)``
    simulated from it, in ``dtype``."""
    p = pk.make_model(n, seed)
    y = pk.simulate(p, T, batch, seed)
    model = kalman.LGSSM(p["F"], p["Q"], p["H"], p["R"], p["m0"], p["P0"])
    cast = lambda a: jnp.asarray(a, dtype)
    return jax.tree_util.tree_map(cast, model), cast(y)


def timed_program(fn, y, runs):
    """``jax.jit(fn)`` on ``y``: tracing and lowering, XLA compile, and the median run time."""
    t0 = time.perf_counter()
    lowered = jax.jit(fn).lower(y)
    t1 = time.perf_counter()
    compiled = lowered.compile()
    t2 = time.perf_counter()
    jax.block_until_ready(compiled(y))
    times = []
    for _ in range(runs):
        s = time.perf_counter()
        jax.block_until_ready(compiled(y))
        times.append(time.perf_counter() - s)
    return dict(trace_lower_s=t1 - t0, xla_compile_s=t2 - t1, compile_s=t2 - t0,
                run_ms=1e3 * statistics.median(times))


def gradient_program(model, y, runs, method="kernel", output="loglik"):
    """``jax.value_and_grad`` by ``method`` of the log-likelihood (summed over series;
    ``output="loglik"``) or of the filter's or smoother's outputs (``"filter"``, ``"smooth"``:
    the sum of squared filtered or smoothed means and of the covariances' entries), with respect to :math:`\\theta` scaling
    :math:`Q` by :math:`e^{\\theta_0}` and :math:`R` by :math:`e^{\\theta_1}`, ``y`` a
    constant: compile and run time."""
    def objective(theta):
        m_ = model.replace(transition_cov=jnp.exp(theta[0]) * model.transition_cov,
                           observation_cov=jnp.exp(theta[1]) * model.observation_cov)
        if output in ("filter", "smooth"):
            res = FNS[output](m_, y, method=method)
            return jnp.sum(res.mean ** 2) + jnp.sum(res.cov)
        return kalman.log_likelihood(m_, y, method=method).sum()

    return timed_program(jax.value_and_grad(objective), jnp.zeros(2, y.dtype), runs)


def kernel_times(model, y, runs):
    """Every kernel of the smoother's program alone, on its real inputs (the program traced
    with a spy on ``pallas_call`` that returns every kernel's inputs as outputs, and the chunk
    scans' per-level functions inlined): compile time and the median run time of ``runs``
    calls. Of a chunk scan's levels, which all run the same two kernels, the lowest fold and
    the top propagation."""
    from jax._src.pallas import pallas_call as pc

    from probssm.kalman.ops import chunk_scan as ks
    from probssm.kalman.ops import filter_kernel as kmod

    calls = []
    original = pc.pallas_call

    def spy(kernel, *a, **k):
        inner = original(kernel, *a, **k)

        def run(*args):
            calls.append((kernel, a, k, args))
            return inner(*args)
        return run

    def program(y_):
        calls.clear()
        kmod.smooth_batch.__wrapped__(model, y_, chunk=None, block=kmod.DEFAULT_BLOCK,
                                      group=ks.DEFAULT_GROUP, top=0, interpret=None)
        return [c[3] for c in calls]

    traced = jax.jit(program)
    jit = jax.jit
    ks.pl.pallas_call, jax.jit = spy, lambda fn, **_: fn
    try:
        inputs = traced(y if y.ndim == 3 else y[None])
    finally:
        ks.pl.pallas_call, jax.jit = original, jit
    calls = [(kernel, a, k, args) for (kernel, a, k, _), args in zip(calls, inputs)]
    T = y.shape[-2]
    top = len(ks.levels(-(-T // kmod.default_chunk(T)))) - 1
    scan = ["fold"] + [None] * (top - 1) + ["propagate"] + [None] * top if top else ["propagate"]
    names = (["summary"] + scan + ["fixup", "backward summary"]
             + [name and f"backward {name}" for name in scan] + ["smoother"])
    calls = [(name, call) for name, call in zip(names, calls) if name]
    out = []
    for name, (kernel, a, k, args) in calls:
        fn = jax.jit(original(kernel, *a, **k))
        t0 = time.perf_counter()
        lowered = fn.lower(*args)
        t1 = time.perf_counter()
        compiled = lowered.compile()
        t2 = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times = []
        for _ in range(runs):
            s = time.perf_counter()
            jax.block_until_ready(compiled(*args))
            times.append(time.perf_counter() - s)
        run_ms = 1e3 * statistics.median(times)
        out.append(dict(kernel=name, lower_s=t1 - t0, compile_s=t2 - t1, run_ms=run_ms))
        print(f"  kernel {name:20s} lower {t1 - t0:6.2f} s  compile {t2 - t1:6.2f} s  "
              f"run {run_ms:.3f} ms", flush=True)
    return out


def rel(a, b):
    """:math:`\\max|a - b| / \\max|b|`."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def exactness(T, n=4):
    """Largest relative errors of the kernel (float64, default device) against ``"sequential"``
    (float64, CPU), NaN rows and entries, correlated ``R``, ``n`` states, ``T`` steps and
    8 x 1000."""
    cpu = jax.devices("cpu")[0]
    rng = np.random.default_rng(5)
    m = 2
    a = rng.normal(size=(n, n))
    b = rng.normal(size=(m, m))
    fields = [0.6 * rng.normal(size=(n, n)) / np.sqrt(n), a @ a.T / n + 0.1 * np.eye(n),
              rng.normal(size=(m, n)), b @ b.T / m + 0.2 * np.eye(m), rng.normal(size=n), np.eye(n)]
    out = {}
    with jax.enable_x64(True):
        model = kalman.LGSSM(*fields, transition_offset=rng.normal(size=n),
                             observation_offset=rng.normal(size=m))
        for label, shape in ((f"T={T}", (1, T, m)), ("8x1000", (8, 1000, m))):
            y = rng.normal(size=shape)
            y[:, ::37] = np.nan
            y[rng.uniform(size=shape) < 0.1] = np.nan
            with jax.default_device(cpu):
                ref = kalman.smooth(model, y, method="sequential")
                ref = jax.tree_util.tree_map(np.asarray, ref)
                ref_grad = _model_gradient(model, y, "sequential")
            ker = kalman.smooth(model, jnp.asarray(y), method="kernel")
            ker_grad = _model_gradient(model, jnp.asarray(y), "kernel")
            ll = kalman.log_likelihood(model, jnp.asarray(y), method="kernel")
            errs = dict(loglik=rel(ll, ref.filtered.log_likelihood),
                        loglik_states=rel(ker.filtered.log_likelihood, ref.filtered.log_likelihood),
                        filtered_mean=rel(ker.filtered.mean, ref.filtered.mean),
                        filtered_cov=rel(ker.filtered.cov, ref.filtered.cov),
                        predicted_cov=rel(ker.filtered.predicted_cov, ref.filtered.predicted_cov),
                        observation_cov=rel(ker.filtered.observation_cov,
                                            ref.filtered.observation_cov),
                        smoothed_mean=rel(ker.mean, ref.mean), smoothed_cov=rel(ker.cov, ref.cov),
                        lag_one_cov=rel(ker.lag_one_cov, ref.lag_one_cov),
                        loglik_gradient=_gradient_error(ker_grad, ref_grad))
            out[label] = errs
            print(f"  exactness {label}: " + " ".join(f"{k} {v:.1e}" for k, v in errs.items()),
                  flush=True)
    return out


def _model_gradient(model, y, method):
    """Gradient of the summed log-likelihood with respect to every field of ``model``."""
    return jax.grad(lambda m_: kalman.log_likelihood(m_, y, method=method).sum())(model)


def _gradient_error(got, want):
    """Largest relative error over the fields (covariances along symmetric directions)."""
    sym = lambda g: 0.5 * (g + np.swapaxes(g, -1, -2))  # noqa: E731
    errs = []
    for name in ("transition_matrix", "transition_cov", "observation_matrix", "observation_cov",
                 "initial_mean", "initial_cov", "transition_offset", "observation_offset"):
        g, w = np.asarray(getattr(got, name), np.float64), np.asarray(getattr(want, name), np.float64)
        if name.endswith("_cov"):
            g, w = sym(g), sym(w)
        errs.append(rel(g, w))
    return max(errs)


def float32_vs_float64(T, batch, n=4):
    """Largest relative errors of the kernel in float32 against itself in float64."""
    model32, y32 = model_and_data(T, batch, jnp.float32, n=n)
    s32 = kalman.smooth(model32, y32, method="kernel")
    l32 = kalman.log_likelihood(model32, y32, method="kernel")
    g32 = _model_gradient(model32, y32, "kernel")
    with jax.enable_x64(True):
        model64, y64 = model_and_data(T, batch, jnp.float64, n=n)
        s64 = kalman.smooth(model64, y64, method="kernel")
        g64 = _model_gradient(model64, y64, "kernel")
        errs = dict(loglik=rel(l32, s64.filtered.log_likelihood),
                    filtered_mean=rel(s32.filtered.mean, s64.filtered.mean),
                    filtered_cov=rel(s32.filtered.cov, s64.filtered.cov),
                    smoothed_mean=rel(s32.mean, s64.mean), smoothed_cov=rel(s32.cov, s64.cov),
                    loglik_gradient=_gradient_error(g32, g64),
                    finite=bool(np.all(np.isfinite(np.asarray(s32.mean)))
                                and np.all(np.isfinite(np.asarray(s32.cov)))))
    print("  float32 vs float64: " + " ".join(f"{k} {v}" for k, v in errs.items()), flush=True)
    return errs



def _record(result, info, **where):
    """Append one program's timings, labelled with ``where`` (T, batch, mode, n), and print them."""
    info.update(where)
    result["entries"].append(info)
    print(f"n={where['n']} T={where['T']} batch={where['batch']} {where['mode']:7s} "
          f"{where.get('method', 'kernel')} "
          f"trace+lower {info['trace_lower_s']:5.2f} s  xla {info['xla_compile_s']:5.2f} s  "
          f"total {info['compile_s']:5.2f} s  run {info['run_ms']:.3f} ms", flush=True)


def main(argv=None):
    """Run the probe (module docstring); JSON to ``--json``."""
    args = parse_args(argv)
    device = jax.devices()[0]
    result = dict(device=getattr(device, "device_kind", str(device)), jax=jax.__version__,
                  entries=[])
    print(f"device: {result['device']}, jax {jax.__version__}", flush=True)

    def save():
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=1))

    for size in args.sizes:
        T, batch = (int(float(v)) for v in size.split(":"))
        model, y = model_and_data(T, batch, jnp.float32, n=args.n)
        if batch == 1:
            y = y[0]
        for mode in args.modes:
            fn = FNS[mode]
            info = timed_program(lambda y_, fn=fn, model=model: fn(model, y_, method="kernel"), y, args.runs)
            _record(result, info, T=T, batch=batch, mode=mode, n=args.n)
            save()
        for method in args.grad_methods if args.grad else ():
            for output in args.grad_outputs:
                info = gradient_program(model, y, max(3, args.runs // 10), method, output)
                _record(result, info, T=T, batch=batch, mode=f"value_and_grad {output}",
                        n=args.n, method=method)
                save()
    if args.kernels:
        T, batch = (int(float(v)) for v in args.sizes[0].split(":"))
        model, y = model_and_data(T, batch, jnp.float32, n=args.n)
        result["kernels"] = kernel_times(model, y, args.runs)
        save()
    if args.check:
        result["exactness"] = exactness(args.check_T, args.n)
        save()
        T, batch = (int(float(v)) for v in args.sizes[0].split(":"))
        result["float32_vs_float64"] = float32_vs_float64(T, batch, args.n)
        save()


if __name__ == "__main__":
    main()
