"""Triton compile time of probssm's Pallas kernels without a GPU (a proxy for the H100's).

Two steps, because the project's interpreter has JAX and the proxy needs the ``triton`` wheel
(no torch; e.g. ``python3 -m venv /tmp/tv && /tmp/tv/bin/pip install triton==3.8.0``):

1. ``python benchmarks/probes/triton_compile_proxy.py dump DIR [--mode smooth] [--T 1000000] [--top 256]``
   (project interpreter): lowers the kernel program for CUDA on the CPU (``jax.export``,
   ``platforms=["cuda"]``), writes every ``pallas_call``'s Triton IR to ``DIR/NN.ttir`` and
   prints the wall time of tracing and lowering (the part of a program's compile time spent
   before XLA; at ``n = 8`` on the 2-core VM about half of the H100 machine's).
2. ``/tmp/tv/bin/python benchmarks/probes/triton_compile_proxy.py compile DIR/*.ttir [--timing]``
   (the triton interpreter): for each file, Triton's ``make_ttir`` passes (canonicalise, CSE, as
   XLA runs them first), then the rest of the pipeline for ``sm_90a`` with ``num_warps=1``
   (``--num-warps``), ``num_stages=1``, timed; ``ptxas -v`` for registers and spills; the
   count of shared-memory stores in the PTX (layout conversions), and the time of each stage
   (``make_ttgir``: MLIR passes, coalescing among them; ``make_llir``: LLVM IR and its
   optimisation; ``make_ptx``: LLVM's NVPTX back end; ``make_cubin``: ``ptxas``).
   ``--timing`` prints MLIR's per-pass timing; ``LLVM_ENABLE_TIMING=1`` in the environment
   LLVM's (at ``n = 8`` its straight-line strength reduction took 99 % of ``make_ptx`` on
   256-row tiles).

Calibration (one set of kernels measured both ways): XLA on the H100 machine compiled each kernel in
about 1-4x the time measured here on the 2-core VM (fold 1.47 s here, 1.58 s there; fix-up 1.03
s / 3.23 s; backward pass 0.94 s / 3.70 s; before the tiled memory access: fold 3.6 s / 7.9 s,
fix-up 3.5 s / 10.6 s), with the same slowest kernels. Before the tiled memory access, 95 % of
the time here went to Triton's ``TritonGPUCoalesce`` pass.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def dump(args):
    """Step 1 (module docstring): every kernel's Triton IR to ``args.dir``."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax._src.pallas.triton import lowering

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from probssm import kalman
    from probssm.kalman.ops import filter_kernel as kernel

    out = Path(args.dir)
    out.mkdir(parents=True, exist_ok=True)
    count = [0]
    original = lowering.lower_jaxpr_to_triton_module

    def capture(jaxpr, *a, **k):
        result = original(jaxpr, *a, **k)
        count[0] += 1
        path = out / f"{count[0]:02d}.ttir"
        path.write_text(result.module.operation.get_asm(enable_debug_info=False))
        print(path, flush=True)
        return result

    lowering.lower_jaxpr_to_triton_module = capture
    n = args.n
    eye = np.eye(n, dtype=np.float32)
    model = kalman.LGSSM(0.9 * eye, eye, np.ones((2, n), np.float32), np.eye(2, dtype=np.float32),
                         np.zeros(n, np.float32), eye)
    y = jax.ShapeDtypeStruct((args.batch, args.T, 2), jnp.float32)
    kw = dict(interpret=False, top=args.top)
    fn = {"smooth": lambda m_, y_: kernel.smooth_batch(m_, y_, **kw),
          "filter": lambda m_, y_: kernel.filter_batch(m_, y_, **kw),
          "loglik": lambda m_, y_: kernel.log_likelihood_batch(m_, y_, **kw)}[args.mode]
    unchecked = [jax.export.DisabledSafetyCheck.custom_call("__gpu$xla.gpu.triton")]
    start = time.perf_counter()
    jax.export.export(jax.jit(fn), platforms=["cuda"], disabled_checks=unchecked)(model, y)
    print(f"tracing and lowering {time.perf_counter() - start:.2f} s (with the IR written)")


def compile_files(args):
    """Step 2 (module docstring): compile and report every file of ``args.files``."""
    if args.timing:
        os.environ["MLIR_ENABLE_TIMING"] = "1"
    os.environ.setdefault("TRITON_CACHE_DIR", tempfile.mkdtemp())
    import triton
    from triton._C.libtriton import ir
    from triton.backends.compiler import GPUTarget
    from triton.backends.nvidia.compiler import CUDABackend

    target = GPUTarget("cuda", 90, 32)
    ptxas = Path(triton.__file__).parent / "backends/nvidia/bin/ptxas"
    stages = {}

    def timed(name, stage):
        def run(*a, **k):
            t = time.perf_counter()
            out = stage(*a, **k)
            stages[name] = stages.get(name, 0.0) + time.perf_counter() - t
            return out
        return staticmethod(run) if isinstance(CUDABackend.__dict__[name], staticmethod) else run

    make_ttir = CUDABackend.make_ttir
    for name in ("make_ttgir", "make_llir", "make_ptx", "make_cubin"):
        setattr(CUDABackend, name, timed(name, getattr(CUDABackend, name)))
    for path in args.files:
        backend = CUDABackend(target)
        options = backend.parse_options(dict(num_warps=args.num_warps, num_stages=1))
        context = ir.context()
        ir.load_dialects(context)
        backend.load_dialects(context)
        t0 = time.perf_counter()
        module = ir.parse_mlir_module(path, context)
        module.context = context
        module = make_ttir(module, {}, options, 90)
        stages.clear()
        work = Path(tempfile.mkdtemp())
        (work / "k.ttir").write_text(str(module))
        t1 = time.perf_counter()
        compiled = triton.compile(str(work / "k.ttir"), target=target,
                                  options=dict(num_warps=args.num_warps, num_stages=1))
        t2 = time.perf_counter()
        ptx = compiled.asm["ptx"]
        (work / "k.ptx").write_text(ptx)
        report = subprocess.run([str(ptxas), "--gpu-name", "sm_90a", "-v", str(work / "k.ptx"),
                                 "-o", str(work / "k.cubin")], capture_output=True, text=True)
        usage = " ".join(line.split(":", 1)[-1].strip() for line in report.stderr.splitlines()
                         if "Used" in line or "spill" in line)
        print(f"{path}: ttir {t1 - t0:.2f} s, rest {t2 - t1:.2f} s; shared-memory stores "
              f"{ptx.count('st.shared')}; {usage}; stages "
              + " ".join(f"{k[5:]} {v:.2f} s" for k, v in stages.items()), flush=True)


def main(argv=None):
    """``dump`` or ``compile`` (module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dump", help="write every kernel's Triton IR (project interpreter)")
    d.add_argument("dir")
    d.add_argument("--mode", choices=("smooth", "filter", "loglik"), default="smooth")
    d.add_argument("--T", type=int, default=1_000_000)
    d.add_argument("--batch", type=int, default=1)
    d.add_argument("--n", type=int, default=4)
    d.add_argument("--top", type=int, default=0, help="chunk scan's top level (ops.chunk_scan)")
    c = sub.add_parser("compile", help="compile Triton IR files (interpreter with triton)")
    c.add_argument("files", nargs="+")
    c.add_argument("--timing", action="store_true", help="MLIR per-pass timing")
    c.add_argument("--num-warps", type=int, default=1,
                   help="warps a program (1 for every kernel but the chunk scan's top level: "
                        "top / 32, at most 8)")
    args = ap.parse_args(argv)
    (dump if args.command == "dump" else compile_files)(args)


if __name__ == "__main__":
    main()
