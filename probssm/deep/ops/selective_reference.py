"""The selective scan in plain PyTorch: the CPU path and the reference every kernel is tested
against. Inputs are assumed checked (see :func:`probssm.deep.ops.selective_scan`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .recurrence import linear_scan

__all__ = ["selective_scan_ref"]


def _compute_dtype(*tensors) -> torch.dtype:
    # The state is carried in float32 at least, float64 when any input asks for it.
    dtype = torch.float32
    for t in tensors:
        if t is not None:
            dtype = torch.promote_types(dtype, t.dtype)
    return dtype


def _per_step(x: torch.Tensor, dim: int) -> torch.Tensor:
    """B or C as ``(batch, groups, 1, state, length)`` (variable) or ``(1, 1, dim, state, 1)``."""
    if x.dim() == 2:
        return x.reshape(1, 1, dim, x.shape[1], 1)
    if x.dim() == 3:
        x = x[:, None]
    return x[:, :, None]


def selective_scan_ref(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                       initial_state=None, return_final_state=False, dt=None, mask=None):
    r"""Selective scan by a chunked parallel linear recurrence (:func:`~probssm.deep.ops.linear_scan`).

    Same arguments, semantics and results as :func:`probssm.deep.ops.selective_scan`, which
    checks the inputs and calls this function on every device. The work is vectorised over
    ``(batch, dim, state)`` and parallel over time; the memory is a few ``(batch, dim, state,
    length)`` tensors in the compute dtype (float32, float64 when an input is float64), kept for
    autograd.
    """
    compute = _compute_dtype(u, delta, A, B, C, D, z, delta_bias, initial_state)
    batch, dim, length = u.shape
    state = A.shape[1]
    dtype_in = u.dtype
    u = u.to(compute)
    delta = delta.to(compute)
    observed = None
    if mask is not None:
        observed = mask[:, None, :]
        # Zero the ignored values *before* any arithmetic: where() after a NaN would still send
        # NaN into the gradients of delta_bias and B (0 * NaN in the backward pass).
        u = torch.where(observed, u, 0.0)
        delta = torch.where(observed, delta, 0.0)
    if delta_bias is not None:
        delta = delta + delta_bias.to(compute)[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    if dt is not None:
        gaps = dt.to(compute)
        if mask is not None:
            gaps = torch.where(mask, gaps, 0.0)
        delta = delta * gaps[:, None, :]
    if observed is not None:
        # A missing step has step size zero: exp(0 A) = 1 and 0 B u = 0, the state carries over.
        delta = torch.where(observed, delta, 0.0)

    B_ = B.to(compute)
    if mask is not None and B.dim() > 2:
        B_ = torch.where(mask[:, None, None, :] if B.dim() == 4 else mask[:, None, :], B_, 0.0)
    B_ = _per_step(B_, dim)
    C_ = _per_step(C.to(compute), dim)

    # (batch, dim, state, length) laid out as (batch, groups, dim / groups, state, length) so a
    # group's B and C broadcast over its channels without being copied.
    decay = torch.exp(delta[:, :, None, :] * A.to(compute)[None, :, :, None])
    drive = (delta * u)[:, :, None, :]
    g_in = B.shape[1] if B.dim() == 4 else 1
    inputs = drive.reshape(batch, g_in, dim // g_in, 1, length) * B_
    inputs = inputs.reshape(batch, dim, state, -1)
    h0 = None if initial_state is None else initial_state.to(compute)
    h = linear_scan(decay, inputs, h0)

    g_out = C.shape[1] if C.dim() == 4 else 1
    y = (h.reshape(batch, g_out, dim // g_out, state, length) * C_).sum(3).reshape(batch, dim, length)
    if D is not None:
        y = y + D.to(compute)[:, None] * u
    if z is not None:
        y = y * F.silu(z.to(compute))
    out = y.to(dtype_in)
    if return_final_state:
        return out, h[..., -1]
    return out
