"""Lane lists against whole-tile arithmetic in a Pallas kernel: compile time and run time.

A question for the n = 8 compile target of the kernel path (issue 3): the kernels hold every
matrix entry of every lane as its own lane vector (:mod:`probssm.kalman.kernel_algebra`), so an
``n = 8`` kernel traces ~2-3 thousand primitives and Triton's MLIR passes (coalescing, layout
propagation) run over that many operations. The alternative holds a lane's matrix as one
``(n, n, block)`` tensor and writes a product as a broadcast multiply and a sum over an axis:
a few operations per product, whatever ``n``; Triton keeps the ``n x n`` entries of a lane in one
thread (the lanes, last axis, are spread over the threads), so the sums stay in registers.

Both kernels here run the same toy program: every lane (a chunk of ``L`` steps) filters its
chunk from the prior (no chunk scan) with diagonal ``R``, one scalar update per observation,
and writes every step's filtered mean and covariance (lane-minor, as the kernel path does):

* ``lanes``: the kernel path's own step (``kernel._update``, ``kernel._predict``: scalar
  updates with NaN masks, row loops for ``n > 4``) and ``kernel_scan.load_rows`` /
  ``store_rows`` tiles (the eighth session's recorded run used an inline copy of the update
  without NaN masks);
* ``tiles``: whole-tile arithmetic on ``(n, block)`` / ``(n, n, block)`` tensors, a product
  a broadcast multiply summed over an axis;
* ``tiles_outer``: the same, a product a sum of ``n`` outer products.

Checked against each other in float32 (interpreter on the CPU, Triton on the GPU), then timed:
tracing and lowering, XLA compile and run time, one program each.

Usage::

    python benchmarks/tile_algebra_probe.py --n 8 --T 1000000            # GPU
    python benchmarks/tile_algebra_probe.py --n 4 --T 2000 --interpret   # CPU check
    python benchmarks/tile_algebra_probe.py --n 8 --dump DIR             # Triton IR for
        # benchmarks/triton_compile_proxy.py compile DIR/*.ttir (no GPU)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.experimental import pallas as pl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from probssm.kalman import kernel as kp
from probssm.kalman import kernel_algebra as ka
from probssm.kalman import kernel_scan as ks

M_OBS = 2
BLOCK = 32


def layout(n, m):
    """Offsets of ``F, Q, H, r (diagonal of R), u, m0, P0`` in the flat parameter vector."""
    sizes = dict(F=n * n, Q=n * n, H=m * n, r=m, u=n, m0=n, P0=n * n)
    out, pos = {}, 0
    for k, s in sizes.items():
        out[k] = pos
        pos += s
    return out, pos


def lane_kernel(n, m, L):
    """The kernel path's style: a matrix is a list of rows of lane vectors."""
    off, _ = layout(n, m)

    def kernel(p_ref, y_ref, mean_ref, cov_ref):
        def mat(k, r, c):
            return [[p_ref[off[k] + i * c + j] for j in range(c)] for i in range(r)]

        F, Q, H, P0 = mat("F", n, n), mat("Q", n, n), mat("H", m, n), mat("P0", n, n)
        r = [p_ref[off["r"] + i] for i in range(m)]
        u = [p_ref[off["u"] + i] for i in range(n)]
        base = pl.program_id(0) * BLOCK
        zero = jnp.zeros(BLOCK, y_ref.dtype)
        a = [lax.add(zero, p_ref[off["m0"] + i]) for i in range(n)]
        P = [[lax.add(zero, x) for x in row] for row in P0]

        zero_scalar = jnp.zeros((), y_ref.dtype)
        R = [[r[i] if i == j else zero_scalar for j in range(m)] for i in range(m)]
        tiny = ka.const(100 * m * float(jnp.finfo(y_ref.dtype).eps), zero_scalar)
        p = dict(F=F, Q=Q, H=H, R=R, u=u, tiny=tiny)

        def step(k, carry):
            a, P = carry
            ys = ks.load_rows(y_ref, m, base, BLOCK, k)
            a, P, _ = kp._update(p, a, P, ys, n, m)
            ks.store_rows(mean_ref, a, base, BLOCK, k)
            ks.store_rows(cov_ref, [x for row in P for x in row], base, BLOCK, k)
            return kp._predict(p, a, P)

        jax.lax.fori_loop(0, L, step, (a, P))

    return kernel


def tile_kernel(n, m, L, outer=False):
    """Whole-tile style: ``a`` ``(n, block)``, ``P`` ``(n, n, block)``; products are broadcast
    multiplies summed over an axis (``(n, n, n, block)`` intermediates), or with ``outer`` sums
    of ``n`` outer products, the ``k``-th row or column picked by a masked sum (no ``n^3``
    intermediate; the masks are constants once Triton unrolls a thread's entries)."""
    off, _ = layout(n, m)

    def vec(p_ref, k, size):
        return p_ref[pl.ds(off[k], size)]

    def kernel(p_ref, y_ref, mean_ref, cov_ref):
        F = vec(p_ref, "F", n * n).reshape(n, n)
        Q = vec(p_ref, "Q", n * n).reshape(n, n)
        u = vec(p_ref, "u", n)
        base = pl.program_id(0) * BLOCK
        lanes = base + jnp.arange(BLOCK, dtype=jnp.int32)
        rows_n = jnp.arange(n, dtype=jnp.int32)
        zero = jnp.zeros((n, n, BLOCK), y_ref.dtype)
        a = jnp.zeros((n, BLOCK), y_ref.dtype) + vec(p_ref, "m0", n)[:, None]
        P = zero + vec(p_ref, "P0", n * n).reshape(n, n)[:, :, None]
        H = [p_ref[pl.ds(off["H"] + i * n, n)] for i in range(m)]
        r = [p_ref[off["r"] + i] for i in range(m)]
        cov_rows = jnp.arange(n * n, dtype=jnp.int32)
        F_columns = [p_ref[off["F"] + rows_n * n + j] for j in range(n)]
        rows_3 = (lax.broadcasted_iota(jnp.int32, (n, 1, 1), 0),
                  lax.broadcasted_iota(jnp.int32, (1, n, 1), 1))

        def step(k, carry):
            a, P = carry
            for i in range(m):
                yi = y_ref[k, i, lanes]
                h = H[i]
                Ph = jnp.sum(P * h[None, :, None], axis=1)
                f = jnp.sum(h[:, None] * Ph, axis=0) + r[i]
                w = 1.0 / f
                v = yi - jnp.sum(h[:, None] * a, axis=0)
                K = Ph * w[None, :]
                a = a + K * v[None, :]
                P = P - K[:, None, :] * Ph[None, :, :]
            mean_ref[k, rows_n[:, None], lanes[None, :]] = a
            cov_ref[k, cov_rows[:, None], lanes[None, :]] = P.reshape(n * n, BLOCK)
            if not outer:
                a = jnp.sum(F[:, :, None] * a[None, :, :], axis=1) + u[:, None]
                FP = jnp.sum(F[:, :, None, None] * P[None, :, :, :], axis=1)
                P = jnp.sum(FP[:, None, :, :] * F[None, :, :, None], axis=2) + Q[:, :, None]
                return a, P
            FP = jnp.zeros_like(P)
            new_a = jnp.zeros_like(a) + u[:, None]
            for j in range(n):
                column = F_columns[j]
                a_j = jnp.sum(jnp.where(rows_n[:, None] == j, a, 0.0), axis=0)
                P_j = jnp.sum(jnp.where(rows_3[0] == j, P, 0.0), axis=0)
                new_a = new_a + column[:, None] * a_j[None, :]
                FP = FP + column[:, None, None] * P_j[None, :, :]
            new_P = zero + Q[:, :, None]
            for j in range(n):
                FP_j = jnp.sum(jnp.where(rows_3[1] == j, FP, 0.0), axis=1)
                new_P = new_P + FP_j[:, None, :] * F_columns[j][None, :, None]
            return new_a, new_P

        jax.lax.fori_loop(0, L, step, (a, P))

    return kernel


def program(style, n, m, L, T, interpret):
    """``y`` ``(T, m)`` -> filtered means ``(L, n, lanes)`` and covariances ``(L, n*n, lanes)``
    of every chunk filtered from the prior."""
    chunks = -(-T // L)
    lanes = -(-chunks // BLOCK) * BLOCK
    make = {"lanes": lane_kernel, "tiles": tile_kernel,
            "tiles_outer": lambda *a: tile_kernel(*a, outer=True)}[style]
    kwargs = {}
    if not interpret:
        from jax.experimental.pallas import triton as plgpu

        from probssm.kalman._mlir_dialects import register

        register()
        kwargs["compiler_params"] = plgpu.CompilerParams(num_warps=1, num_stages=1)
    spec = pl.BlockSpec(memory_space=pl.ANY)

    def run(params, y):
        y = jnp.pad(y, ((0, chunks * L - T), (0, 0)))
        y = y.reshape(chunks, L, m)
        y = jnp.pad(y, ((0, lanes - chunks), (0, 0), (0, 0))).transpose(1, 2, 0)
        dt = y.dtype
        return pl.pallas_call(
            make(n, m, L),
            out_shape=[jax.ShapeDtypeStruct((L, n, lanes), dt),
                       jax.ShapeDtypeStruct((L, n * n, lanes), dt)],
            grid=(lanes // BLOCK,), in_specs=[spec, spec], out_specs=[spec, spec],
            interpret=interpret, **kwargs)(params, y)

    return run


def model(n, m, seed=0):
    """A stable random model as the flat parameter vector (:func:`layout`)."""
    rng = np.random.default_rng(seed)
    F = rng.normal(size=(n, n))
    F *= 0.9 / np.max(np.abs(np.linalg.eigvals(F)))
    A = rng.normal(size=(n, n))
    Q = A @ A.T / n + 0.1 * np.eye(n)
    H = rng.normal(size=(m, n))
    r = 0.5 + rng.random(m)
    params = np.concatenate([F.ravel(), Q.ravel(), H.ravel(), r, np.zeros(n), np.zeros(n),
                             np.eye(n).ravel()])
    return params


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--T", type=int, default=1_000_000)
    ap.add_argument("--L", type=int, default=64)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--styles", nargs="+", default=["lanes", "tiles", "tiles_outer"])
    ap.add_argument("--interpret", action="store_true")
    ap.add_argument("--dump", default=None, help="write each style's Triton IR to DIR")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    n, m, L, T = args.n, M_OBS, args.L, args.T
    params = jnp.asarray(model(n, m), jnp.float32)
    y = jnp.asarray(np.random.default_rng(1).normal(size=(T, m)), jnp.float32)
    if args.dump:
        from jax._src.pallas.triton import lowering

        out = Path(args.dump)
        out.mkdir(parents=True, exist_ok=True)
        original = lowering.lower_jaxpr_to_triton_module
        unchecked = [jax.export.DisabledSafetyCheck.custom_call("__gpu$xla.gpu.triton")]
        for style in args.styles:
            def capture(jaxpr, *a, style=style, **k):
                result = original(jaxpr, *a, **k)
                (out / f"{style}.ttir").write_text(
                    result.module.operation.get_asm(enable_debug_info=False))
                return result

            lowering.lower_jaxpr_to_triton_module = capture
            t = time.perf_counter()
            jax.export.export(jax.jit(program(style, n, m, L, T, False)), platforms=["cuda"],
                              disabled_checks=unchecked)(params, y)
            print(f"{style}: tracing and lowering {time.perf_counter() - t:.2f} s", flush=True)
        lowering.lower_jaxpr_to_triton_module = original
        return
    results, outputs = [], {}
    for style in args.styles:
        fn = jax.jit(program(style, n, m, L, T, args.interpret))
        t0 = time.perf_counter()
        lowered = fn.lower(params, y)
        t1 = time.perf_counter()
        compiled = lowered.compile()
        t2 = time.perf_counter()
        outputs[style] = jax.block_until_ready(compiled(params, y))
        times = []
        for _ in range(args.runs):
            s = time.perf_counter()
            jax.block_until_ready(compiled(params, y))
            times.append(time.perf_counter() - s)
        row = dict(style=style, n=n, T=T, L=L, trace_lower_s=round(t1 - t0, 3),
                   xla_compile_s=round(t2 - t1, 3), run_ms=round(1e3 * statistics.median(times), 4))
        results.append(row)
        print(json.dumps(row), flush=True)
    chunks = -(-T // L)
    reference = outputs.get("lanes")
    for style, (mean, cov) in outputs.items():
        if reference is None or style == "lanes":
            continue
        diff = {name: float(jnp.max(jnp.abs(x[..., :chunks] - z[..., :chunks]))
                            / jnp.max(jnp.abs(z[..., :chunks])))
                for name, x, z in (("mean", mean, reference[0]), ("cov", cov, reference[1]))}
        print(f"max relative difference {style} vs lanes:", diff, flush=True)
        results.append(dict(style=style, difference_to_lanes=diff))
    if args.json:
        Path(args.json).write_text(json.dumps(dict(device=jax.devices()[0].device_kind,
                                                   results=results), indent=1))


if __name__ == "__main__":
    main()
