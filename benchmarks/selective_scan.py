"""Selective scan: probssm's Triton kernel against mamba_ssm's CUDA kernel and the PyTorch
reference, same process, same inputs.

Mamba's configuration: bfloat16 ``u``, ``delta``, ``z`` and per-step ``B``, ``C`` (one group),
float32 ``A`` (negative), ``D`` and ``delta_bias``, softplus on ``delta``, state 16. For each
shape ``(batch, dim, length)`` the script reports, per implementation:

* the median time of the forward pass and of forward + backward (CUDA events, after a warm-up);
* the forward pass's **HBM roofline fraction**: the bytes it must move (the five bf16 inputs read,
  the bf16 output written) / its time / the copy bandwidth measured in the same process
  (``torch.Tensor.copy_`` of 1 GiB);
* the error of the bf16 output against the float32 PyTorch reference on float32 copies of the
  same inputs (max absolute error / max absolute value), and the same for the gradients.

mamba_ssm's kernel is built from its source archive on the GPU machine (``--mamba-ssm-src``: the
folder of the unpacked sdist; ``torch.utils.cpp_extension.load`` over
``csrc/selective_scan/*`` with the nvcc flags of its ``setup.py``, sm_90 only). Without it the
peer row is left out. ``--quick`` runs the reference alone on the CPU at a small shape (a check
that the script works where there is no GPU).

Usage::

    python benchmarks/selective_scan.py --mamba-ssm-src /tmp/mamba_ssm-2.2.4 --json $OUT/scan.json
    python benchmarks/selective_scan.py --quick
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import sys
from pathlib import Path

import torch

from probssm.deep.ops import selective_scan, selective_scan_ref

SHAPES = ((8, 2048, 2048), (64, 512, 96), (256, 512, 336))
STATE = 16
# nvcc flags of mamba_ssm's setup.py for its selective-scan extension (sm_90 only)
MAMBA_NVCC_FLAGS = [
    "-O3", "-std=c++17", "-U__CUDA_NO_HALF_OPERATORS__", "-U__CUDA_NO_HALF_CONVERSIONS__",
    "-U__CUDA_NO_BFLOAT16_OPERATORS__", "-U__CUDA_NO_BFLOAT16_CONVERSIONS__",
    "-U__CUDA_NO_BFLOAT162_OPERATORS__", "-U__CUDA_NO_BFLOAT162_CONVERSIONS__",
    "--expt-relaxed-constexpr", "--expt-extended-lambda", "--use_fast_math", "-lineinfo",
    "-gencode", "arch=compute_90,code=sm_90",
]


def make_inputs(batch, dim, length, device, dtype=torch.bfloat16, seed=0):
    """Mamba-like inputs: the per-step tensors in ``dtype``, the parameters in float32."""
    g = torch.Generator(device="cpu").manual_seed(seed)

    def normal(*shape, scale=1.0):
        return (scale * torch.randn(*shape, generator=g)).to(device)

    A = -torch.exp(normal(dim, STATE, scale=0.5))
    return dict(
        u=normal(batch, dim, length).to(dtype), delta=normal(batch, dim, length, scale=0.5).to(dtype),
        A=A, B=normal(batch, 1, STATE, length).to(dtype), C=normal(batch, 1, STATE, length).to(dtype),
        D=normal(dim), z=normal(batch, dim, length).to(dtype), delta_bias=normal(dim, scale=0.1) - 4.0,
    )


def build_mamba_ssm(src: str):
    """``selective_scan_cuda`` compiled from mamba_ssm's sources in ``src``."""
    from torch.utils.cpp_extension import load

    sources = sorted(glob.glob(os.path.join(src, "csrc", "selective_scan", "*.cpp"))
                     + glob.glob(os.path.join(src, "csrc", "selective_scan", "*.cu")))
    if not sources:
        raise SystemExit(f"no csrc/selective_scan sources under {src}")
    return load(name="selective_scan_cuda", sources=sources, extra_cflags=["-O3", "-std=c++17"],
                extra_cuda_cflags=MAMBA_NVCC_FLAGS, verbose=False)


def implementations(mamba_ext):
    """``name -> fn(inputs) -> output`` (differentiable)."""
    def probssm_scan(x):
        return selective_scan(delta_softplus=True, **x)

    def reference(x):
        return selective_scan_ref(delta_softplus=True, **x)

    found = {"probssm": probssm_scan, "PyTorch reference": reference}
    if mamba_ext is not None:
        found["mamba_ssm"] = _mamba_function(mamba_ext)
    return found


def _mamba_function(ext):
    """mamba_ssm's kernel as an autograd function (the calls of its ``selective_scan_fn``)."""
    class Scan(torch.autograd.Function):
        @staticmethod
        def forward(ctx, u, delta, A, B, C, D, z, delta_bias):
            out, x, *rest = ext.fwd(u, delta, A, B, C, D, z, delta_bias, True)
            ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, x, out)
            return rest[0]

        @staticmethod
        def backward(ctx, dout):
            u, delta, A, B, C, D, z, delta_bias, x, out = ctx.saved_tensors
            grads = ext.bwd(u, delta, A, B, C, D, z, delta_bias, dout.contiguous(), x, out, None,
                            True, False)
            du, ddelta, dA, dB, dC, dD, ddelta_bias, dz, *_ = grads  # dz: z was given
            return du, ddelta, dA, dB, dC, dD, dz, ddelta_bias

    return lambda x: Scan.apply(x["u"], x["delta"], x["A"], x["B"], x["C"], x["D"], x["z"],
                                x["delta_bias"])


def _leaves(inputs):
    return {k: v.detach().clone().requires_grad_(True) for k, v in inputs.items()}


def relative_errors(fn, inputs, reference_out, reference_grads, cotangent):
    x = _leaves(inputs)
    out = fn(x)
    out.backward(cotangent.to(out.dtype))
    scale = reference_out.abs().max()
    errors = {"output": float((out.detach().float() - reference_out).abs().max() / scale)}
    for k, g in reference_grads.items():
        errors[f"grad_{k}"] = float((x[k].grad.float() - g).abs().max() / g.abs().max().clamp_min(1e-30))
    return errors


def time_ms(fn, repeats, device):
    """Median milliseconds of ``fn()`` (CUDA events on a GPU, perf_counter on the CPU)."""
    import time

    fn()
    samples = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            samples.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            samples.append(1e3 * (time.perf_counter() - t0))
    return statistics.median(samples)


def copy_bandwidth(device) -> float:
    """Bytes per second of a device-to-device copy of 1 GiB (read + write counted)."""
    src = torch.empty(2 ** 29, dtype=torch.float16, device=device)
    dst = torch.empty_like(src)
    ms = time_ms(lambda: dst.copy_(src), 20, device)
    return 2 * src.numel() * src.element_size() / (ms * 1e-3)


def forward_bytes(batch, dim, length, itemsize=2):
    """HBM bytes a fused forward pass must move: u, delta, z and the output ``(batch, dim,
    length)``, B and C ``(batch, 1, state, length)``."""
    return itemsize * (4 * batch * dim * length + 2 * batch * STATE * length)


def run_shape(shape, impls, device, repeats, bandwidth):
    inputs = make_inputs(*shape, device)
    ref_inputs = _leaves({k: v.float() for k, v in inputs.items()})
    ref_out = selective_scan_ref(delta_softplus=True, **ref_inputs)
    cotangent = torch.randn(ref_out.shape, generator=torch.Generator().manual_seed(1)).to(device)
    ref_out.backward(cotangent)
    ref_grads = {k: v.grad for k, v in ref_inputs.items()}
    ref_out = ref_out.detach()
    rows = {}
    for name, fn in impls.items():
        x = _leaves(inputs)
        forward = time_ms(lambda: fn(x), repeats, device)

        def forward_backward():
            out = fn(x)
            out.backward(cotangent.to(out.dtype))

        both = time_ms(forward_backward, repeats, device)
        rows[name] = {
            "forward_ms": forward, "forward_backward_ms": both,
            "roofline_forward": forward_bytes(*shape) / (forward * 1e-3) / bandwidth if bandwidth else None,
            "errors": relative_errors(fn, inputs, ref_out, ref_grads, cotangent),
        }
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mamba-ssm-src", help="unpacked mamba_ssm sdist (builds its CUDA kernel)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="reference only, CPU, small shape")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)

    device = torch.device("cuda" if torch.cuda.is_available() and not args.quick else "cpu")
    if args.quick:
        shapes, repeats = ((2, 64, 48),), 3
        impls = {"PyTorch reference": implementations(None)["PyTorch reference"]}
    else:
        if device.type != "cuda":
            raise SystemExit("the benchmark needs a CUDA GPU (use --quick on a CPU)")
        shapes, repeats = SHAPES, args.repeats
        impls = implementations(build_mamba_ssm(args.mamba_ssm_src) if args.mamba_ssm_src else None)
    bandwidth = copy_bandwidth(device) if device.type == "cuda" else None
    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__, "state": STATE, "dtype": "bfloat16",
        "copy_bandwidth_GBps": bandwidth / 1e9 if bandwidth else None,
        "command": " ".join(sys.argv), "shapes": {},
    }
    for shape in shapes:
        rows = run_shape(shape, impls, device, repeats, bandwidth)
        result["shapes"]["x".join(map(str, shape))] = rows
        for name, row in rows.items():
            peer = rows.get("mamba_ssm")
            ratio = (f"  {peer['forward_backward_ms'] / row['forward_backward_ms']:.2f}x mamba_ssm"
                     if peer else "")
            print(f"{shape} {name:18s} fwd {row['forward_ms']:8.3f} ms  fwd+bwd "
                  f"{row['forward_backward_ms']:8.3f} ms  output err {row['errors']['output']:.1e}{ratio}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
