"""The selective scan as fused Triton kernels, forward and backward (recompute in the backward
pass), with a float32 state for float32, bfloat16 and float16 inputs."""

from __future__ import annotations

import importlib.util
import math
import os

import torch

__all__ = ["selective_scan_kernel", "kernel_available"]

# Steps between two checkpoints of the state: the backward pass recomputes one chunk at a time
# from its checkpoint, so memory is (batch, dim, state) per chunk plus one chunk of scratch.
CHUNK = 64
_KERNEL_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def kernel_available(device: torch.device | str | None = None) -> bool:
    """Whether :func:`selective_scan_kernel` can run on ``device``: Triton is installed and the
    device is a CUDA GPU, or any device under Triton's interpreter (``TRITON_INTERPRET=1``)."""
    if importlib.util.find_spec("triton") is None:
        return False
    if os.environ.get("TRITON_INTERPRET") == "1":
        return True
    return device is not None and torch.device(device).type == "cuda"


def _block_d(dim: int, per_group: int) -> int:
    # A block of channels must lie inside one group of B and C (their per-step gradients are
    # summed over the group's channels): the largest power of two dividing the group size.
    return min(32, per_group & -per_group, 1 << (dim.bit_length() - 1))


class _SelectiveScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, initial_state, dt, mask, softplus,
                chunk):
        from . import _selective_triton as prog

        batch, dim, length = u.shape
        state = A.shape[1]
        b_var, c_var = B.dim() == 4, C.dim() == 4
        groups_b = B.shape[1] if b_var else 1
        groups_c = C.shape[1] if c_var else 1
        per_b, per_c = dim // groups_b, dim // groups_c
        block_d = _block_d(dim, math.gcd(per_b, per_c))
        block_n = max(2, _next_pow2(state))
        n_chunks = -(-length // chunk)
        f32 = torch.float32
        y = torch.empty_like(u)
        h_final = torch.empty(batch, dim, state, device=u.device, dtype=f32)
        ckpt = torch.empty(batch, n_chunks, dim, state, device=u.device, dtype=f32)
        dummy = u.new_empty(1)
        mask8 = None if mask is None else mask.to(torch.int8).contiguous()
        grid = (batch, dim // block_d)
        prog.selective_fwd[grid](
            u, delta, A, B, C, _or(D, dummy), _or(z, dummy), _or(delta_bias, dummy),
            _or(initial_state, dummy), _or(dt, dummy), _or(mask8, dummy), y, h_final, ckpt,
            dim, length, state, n_chunks, per_b, per_c, groups_b, groups_c,
            HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None,
            SOFTPLUS=bool(softplus), HAS_H0=initial_state is not None, HAS_DT=dt is not None,
            HAS_MASK=mask is not None, B_VAR=b_var, C_VAR=c_var, CHUNK=chunk,
            BLOCK_D=block_d, BLOCK_N=block_n)
        ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, initial_state, dt, mask8, ckpt)
        ctx.config = (softplus, chunk, block_d, block_n, n_chunks, per_b, per_c, groups_b,
                      groups_c)
        return y, h_final

    @staticmethod
    def backward(ctx, gy, gh_final):
        from . import _selective_triton as prog

        u, delta, A, B, C, D, z, delta_bias, initial_state, dt, mask8, ckpt = ctx.saved_tensors
        softplus, chunk, block_d, block_n, n_chunks, per_b, per_c, groups_b, groups_c = ctx.config
        batch, dim, length = u.shape
        state = A.shape[1]
        b_var, c_var = B.dim() == 4, C.dim() == 4
        dev, f32 = u.device, torch.float32
        gy = torch.zeros_like(u) if gy is None else gy.contiguous()
        zeros = lambda *shape: torch.zeros(*shape, device=dev, dtype=f32)  # noqa: E731
        gu, gdelta = zeros(batch, dim, length), zeros(batch, dim, length)
        gz = zeros(batch, dim, length) if z is not None else None
        gA = zeros(batch, dim, state)
        gB = zeros(*B.shape) if b_var else zeros(batch, dim, state)
        gC = zeros(*C.shape) if c_var else zeros(batch, dim, state)
        gD = zeros(batch, dim) if D is not None else None
        gbias = zeros(batch, dim) if delta_bias is not None else None
        gh0 = zeros(batch, dim, state)
        gdt = zeros(batch, length) if dt is not None else None
        scratch = torch.empty(batch * (dim // block_d) * (chunk + 1) * block_d * block_n,
                              device=dev, dtype=f32)
        dummy = gu.new_empty(1)
        prog.selective_bwd[(batch, dim // block_d)](
            u, delta, A, B, C, _or(D, dummy), _or(z, dummy), _or(delta_bias, dummy),
            _or(dt, dummy), _or(mask8, dummy), ckpt, scratch, gy, _or(gh_final, dummy),
            gu, gdelta, _or(gz, dummy), gA, gB, gC, _or(gD, dummy), _or(gbias, dummy), gh0,
            _or(gdt, dummy),
            dim, length, state, n_chunks, per_b, per_c, groups_b, groups_c,
            HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None,
            SOFTPLUS=bool(softplus), HAS_GHT=gh_final is not None, HAS_DT=dt is not None,
            HAS_MASK=mask8 is not None, B_VAR=b_var, C_VAR=c_var, CHUNK=chunk,
            BLOCK_D=block_d, BLOCK_N=block_n)
        sum_rows = lambda g: g.sum(0)  # noqa: E731 - parameters: per-row partials summed here
        grads = (
            gu.to(u.dtype), gdelta.to(delta.dtype), sum_rows(gA).to(A.dtype),
            (gB if b_var else sum_rows(gB)).to(B.dtype),
            (gC if c_var else sum_rows(gC)).to(C.dtype),
            None if D is None else sum_rows(gD).to(D.dtype),
            None if z is None else gz.to(z.dtype),
            None if delta_bias is None else sum_rows(gbias).to(delta_bias.dtype),
            None if initial_state is None else gh0.to(initial_state.dtype),
            None if dt is None else gdt.to(dt.dtype),
            None, None, None)
        return tuple(g if need else None for g, need in zip(grads, ctx.needs_input_grad))


def _or(x, default):
    return default if x is None else x


def _next_pow2(n: int) -> int:
    return 1 << (max(n, 1) - 1).bit_length()


def selective_scan_kernel(u, delta, A, B, C, D=None, z=None, delta_bias=None,
                          delta_softplus=False, initial_state=None, return_final_state=False,
                          dt=None, mask=None, *, chunk_size=CHUNK):
    r"""The selective scan of :func:`probssm.deep.ops.selective_scan` as fused Triton kernels.

    Same arguments, semantics and results (:math:`h_t = \exp(\Delta_t A) h_{t-1} + \Delta_t B_t
    u_t`, :math:`y_t = (C_t^\top h_t + D u_t)\operatorname{silu}(z_t)` with time gaps and missing
    steps), unchecked: call it through ``selective_scan`` unless the inputs are known good.
    Inputs float32, bfloat16 or float16 (``u``, ``delta``, ``z``, per-step ``B``/``C``); the
    state is float32. One program per batch row and block of channels walks time with its state
    in registers. The backward pass recomputes the states chunk by chunk from checkpoints taken
    every ``chunk_size`` steps (a power of two), then runs the adjoint recurrence backwards, so no
    ``(batch, dim, state, length)`` tensor is stored. Runs on CUDA GPUs, and on any device under
    ``TRITON_INTERPRET=1`` (how the tests run it on a CPU).
    """
    if u.dtype not in _KERNEL_DTYPES:
        raise TypeError(f"selective_scan_kernel: inputs must be float32, bfloat16 or float16, "
                        f"got u {u.dtype} (use selective_scan_ref for float64)")
    if B.dim() == 3:  # (batch, state, length) is one group
        B = B[:, None]
    if C.dim() == 3:
        C = C[:, None]
    contiguous = lambda x: None if x is None else x.contiguous()  # noqa: E731
    f32 = lambda x: None if x is None else x.float().contiguous()  # noqa: E731
    y, h = _SelectiveScan.apply(
        u.contiguous(), delta.contiguous(), f32(A), contiguous(B), contiguous(C), f32(D),
        contiguous(z), f32(delta_bias), f32(initial_state), f32(dt), mask, delta_softplus,
        chunk_size)
    return (y, h) if return_final_state else y
