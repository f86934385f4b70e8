"""The fused Triton selective scan against the plain per-step loop: values, final state and
every gradient, every option and B/C layout. Without a GPU the kernel runs under Triton's
interpreter (TRITON_INTERPRET=1) on CPU tensors; on a CUDA machine it runs compiled on the GPU,
and the full-size comparisons with the reference run too."""

import math
import os

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton")  # TRITON_INTERPRET is set by conftest.py where there is no GPU
DEVICE = "cpu" if os.environ.get("TRITON_INTERPRET") == "1" else "cuda"

from probssm.deep.ops import selective_scan_kernel, selective_scan_ref  # noqa: E402

from .scan_reference import (  # noqa: E402
    assert_close, loop_scan, make_inputs, run_with_grads)

ALL = ("z", "D", "delta_bias", "softplus", "initial_state", "dt", "mask")
# Small shapes: the interpreter runs every program op by op in Python. Ten steps in chunks of
# four exercise three checkpoints and a ragged last chunk; two batch rows the summed parameter
# gradients.
SHAPE = {"batch": 2, "dim": 4, "state": 3, "length": 10}
CASES = [((), "dim", "dim"), (ALL, "groups", "groups"), (ALL, "dim", "groups"),
         (ALL, "batch", "batch"), (ALL, "groups", "dim")]


def _kernel(**kw):
    """The kernel on DEVICE with CPU tensors in and out (the moves are differentiable)."""
    on_device = {k: (v.to(DEVICE) if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
    y, h = selective_scan_kernel(**on_device, return_final_state=True, chunk_size=4)
    return y.cpu(), h.cpu()


@pytest.mark.parametrize("options,layout_b,layout_c", CASES,
                         ids=[f"{'all' if o else 'plain'}-B_{b}-C_{c}" for o, b, c in CASES])
def test_matches_loop(options, layout_b, layout_c):
    kw = make_inputs(options, layout_b, layout_c, seed=len(options) + len(layout_b), **SHAPE)
    want_y, want_h, want_g = run_with_grads(loop_scan, kw, torch.float64)
    got_y, got_h, got_g = run_with_grads(_kernel, kw, torch.float32)
    assert_close(got_y, want_y, 1e-5, "y")
    assert_close(got_h, want_h, 1e-5, "final state")
    assert set(got_g) == set(want_g)
    for name in want_g:
        assert_close(got_g[name], want_g[name], 1e-5, f"gradient of {name}")


def test_missing_steps_with_nan_and_a_loss_on_the_final_state_only():
    kw = make_inputs(ALL, "groups", "groups", seed=3, **SHAPE)
    missing = ~kw["mask"]
    clean = {k: (v.float().requires_grad_() if k in ("u", "delta", "dt", "A") else
                 v.float() if isinstance(v, torch.Tensor) and v.is_floating_point() else v)
             for k, v in kw.items()}
    dirty = dict(clean)
    dirty["u"] = clean["u"].masked_fill(missing[:, None, :], math.nan)
    dirty["delta"] = clean["delta"].masked_fill(missing[:, None, :], math.nan)
    dirty["dt"] = clean["dt"].masked_fill(missing, math.nan)
    dirty["B"] = clean["B"].masked_fill(missing[:, None, None, :], math.nan)
    _, h = _kernel(**dirty)
    _, h_want = loop_scan(**{k: (v.detach().double() if isinstance(v, torch.Tensor)
                                 and v.is_floating_point() else v) for k, v in clean.items()})
    assert_close(h, h_want, 1e-5, "final state")
    grads = torch.autograd.grad(h.sum(), [clean["u"], clean["delta"], clean["dt"], clean["A"]])
    for g in grads:
        assert torch.isfinite(g).all()
    assert (grads[0].masked_select(missing[:, None, :].expand_as(grads[0])) == 0).all()
    assert (grads[2][missing] == 0).all()


def test_bfloat16_inputs_keep_a_float32_state():
    kw = make_inputs(ALL, "groups", "groups", seed=11, **SHAPE)
    low = {k: (v.to(torch.bfloat16) if k in ("u", "delta", "z", "B", "C") else v.float()
               if isinstance(v, torch.Tensor) and v.is_floating_point() else v)
           for k, v in kw.items()}
    y, h = _kernel(**low)
    assert y.dtype == torch.bfloat16 and h.dtype == torch.float32
    want_y, want_h = loop_scan(**{k: (v.double() if isinstance(v, torch.Tensor)
                                      and v.is_floating_point() else v) for k, v in low.items()})
    assert_close(y, want_y, 2 * torch.finfo(torch.bfloat16).eps, "y")
    assert_close(h, want_h, 1e-5, "final state")


def test_float64_is_refused():
    kw = make_inputs((), "dim", "dim", **SHAPE)
    with pytest.raises(TypeError, match="inputs must be float32, bfloat16 or float16, got u "
                                        "torch.float64"):
        selective_scan_kernel(**kw)


@pytest.mark.skipif(DEVICE != "cuda", reason="full-size comparison on a CUDA GPU")
@pytest.mark.parametrize("shape", [(64, 512, 96), (256, 512, 336), (2, 128, 2048)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
def test_full_size_matches_the_reference_on_the_gpu(shape, dtype):
    batch, dim, length = shape
    kw = make_inputs(ALL, "batch", "batch", seed=1, batch=batch, dim=dim, state=16,
                     length=length)
    kw = {k: (v.to("cuda") if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
    low = {k: (v.to(dtype) if k in ("u", "delta", "z", "B", "C") else v.float()
               if isinstance(v, torch.Tensor) and v.is_floating_point() else v)
           for k, v in kw.items()}
    ref = {k: (v.float() if isinstance(v, torch.Tensor) and v.is_floating_point() else v)
           for k, v in low.items()}
    got_y, got_h, got_g = run_with_grads(
        lambda **a: selective_scan_kernel(**a, return_final_state=True), low, dtype)
    want_y, want_h, want_g = run_with_grads(
        lambda **a: selective_scan_ref(**a, return_final_state=True), ref, torch.float32)
    # float32: the two summation orders; bfloat16: the output's rounding and the gradients'
    # rounding to the inputs' dtype.
    tol = 1e-4 if dtype == torch.float32 else 2e-2
    assert_close(got_y.float(), want_y.double(), tol, "y")
    assert_close(got_h, want_h.double(), 1e-4, "final state")
    for name in want_g:
        assert_close(got_g[name].float(), want_g[name].double(), tol, f"gradient of {name}")


COMPILE = """
import sys
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource, compile
from probssm.deep.ops import _selective_triton as programs

for flag in (True, False):  # every option on, every option off
    flags = dict(HAS_D=flag, HAS_Z=flag, HAS_BIAS=flag, SOFTPLUS=flag, HAS_DT=flag,
                 HAS_MASK=flag, B_VAR=flag, C_VAR=flag, CHUNK=64, BLOCK_D=32, BLOCK_N=16)
    for fn, last in ((programs.selective_fwd, "HAS_H0"), (programs.selective_bwd, "HAS_GHT")):
        constants = {**flags, last: flag}
        half = ("u_ptr", "delta_ptr", "z_ptr", "y_ptr", "gy_ptr", "B_ptr", "C_ptr")
        signature = {name: "constexpr" if name in constants else
                     ("*bf16" if name in half else "*i8" if name == "mask_ptr" else "*fp32")
                     if name.endswith("_ptr") else "i32" for name in fn.arg_names}
        source = ASTSource(fn=fn, signature=signature, constexprs={
            (fn.arg_names.index(k),): v for k, v in constants.items()})
        kernel = compile(source, target=GPUTarget("cuda", 90, 32))
        assert ".entry" in kernel.asm["ptx"], fn
print("compiled")
"""


@pytest.mark.skipif(DEVICE == "cuda", reason="the GPU tests above compile the kernels")
def test_kernels_compile_for_hopper_without_a_gpu(tmp_path):
    """The interpreter accepts code the compiler rejects (Python ints for loop indices, say), so
    the programs are also compiled to PTX for sm_90, which needs no GPU."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = str(tmp_path)
    out = subprocess.run([sys.executable, "-c", COMPILE], capture_output=True, text=True,
                         env=env, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "compiled", out.stderr[-3000:]


@pytest.mark.skipif(DEVICE != "cuda", reason="dispatch to the kernel happens on CUDA tensors")
def test_selective_scan_dispatches_to_the_kernel_on_the_gpu():
    from probssm.deep.ops import selective_scan

    kw = make_inputs(ALL, "groups", "groups", seed=2, batch=4, dim=64, state=16, length=200)
    kw = {k: (v.to("cuda").float() if isinstance(v, torch.Tensor) and v.is_floating_point()
              else v.to("cuda") if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
    y = selective_scan(**kw)
    assert torch.equal(y, selective_scan_kernel(**kw))  # the forward pass is deterministic
    assert_close(y, selective_scan_ref(**kw).double(), 1e-4, "y")
    # float64 anywhere keeps the float64 reference.
    y64 = selective_scan(**{**kw, "A": kw["A"].double()})
    assert y64.dtype == torch.float32
    assert torch.equal(y64, selective_scan_ref(**{**kw, "A": kw["A"].double()}))
