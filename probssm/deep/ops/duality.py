"""Mamba-2's state-space duality (Dao & Gu 2024): the scan with one scalar decay per head,
computed chunk by chunk with matrix products."""

from __future__ import annotations

import torch

from . import _checks as chk
from .recurrence import linear_scan

__all__ = ["ssd"]

_FN = "ssd"


def _segment_sums(a: torch.Tensor) -> torch.Tensor:
    r"""``out[..., i, j]`` = :math:`\sum_{j < k \le i} a_k` for :math:`j \le i`, :math:`-\infty`
    above the diagonal. Summed directly rather than as a difference of cumulative sums, which
    cancels badly once the sums are large."""
    T = a.shape[-1]
    strict = torch.ones(T, T, dtype=torch.bool, device=a.device).tril(-1)
    terms = a[..., :, None].expand(*a.shape, T).masked_fill(~strict, 0.0)
    sums = terms.cumsum(dim=-2)
    return sums.masked_fill(~strict.logical_or(torch.eye(T, dtype=torch.bool, device=a.device)),
                            float("-inf"))


def ssd(x, dt, A, B, C, D=None, *, chunk_size=64, initial_state=None, return_final_state=False):
    r"""Scan of a state-space model with a scalar decay per head, as chunked matrix products.

    For every batch entry and head, with a state :math:`h_t \in \mathbb R^{P \times N}`:

    .. math::

        h_t = \exp(\Delta_t a) \, h_{t-1} + \Delta_t \, x_t B_t^\top, \qquad
        y_t = h_t C_t + D \, x_t,

    where :math:`a` is the head's (negative) ``A`` and :math:`\Delta_t` its step size ``dt``.
    Unrolled, :math:`y = M x` with the lower-triangular semiseparable matrix
    :math:`M_{ts} = C_t^\top B_s \, \Delta_s \exp\big(\sum_{s < k \le t} \Delta_k a\big)`.
    Inside each chunk of ``chunk_size`` steps the product with :math:`M` is computed as dense
    (quadratic) attention-like matmuls; across chunks the states are passed on by the linear
    recurrence :func:`~probssm.deep.ops.linear_scan` over chunks.

    Parameters
    ----------
    x : Tensor ``(batch, length, heads, headdim)``
        Inputs.
    dt : Tensor ``(batch, length, heads)``
        Step sizes :math:`\Delta_t \ge 0` (already biased, passed through softplus, scaled by the
        time gaps); zero at a step leaves the state unchanged.
    A : Tensor ``(heads,)``
        Continuous-time decay rate of each head.
    B, C : Tensor ``(batch, length, groups, state)``
        Input and output matrices shared by the ``heads / groups`` heads of each group.
    D : Tensor ``(heads,)``, optional
        Skip connection.
    chunk_size : int
        Steps per chunk (the size of the dense blocks).
    initial_state : Tensor ``(batch, heads, headdim, state)``, optional
        :math:`h_{-1}` (zero when ``None``).
    return_final_state : bool
        Also return :math:`h_{L-1}`.

    Returns
    -------
    y : Tensor ``(batch, length, heads, headdim)``
        In the dtype of ``x``.
    final_state : Tensor ``(batch, heads, headdim, state)``
        With ``return_final_state``, in the compute dtype (float32 or float64).

    Notes
    -----
    Inputs are used as given: NaN is not screened here (the layers zero missing steps and set
    their ``dt`` to zero before calling).
    """
    _check(x, dt, A, B, C, D, initial_state, chunk_size)
    batch, length, heads, headdim = x.shape
    groups, state = B.shape[2], B.shape[3]
    per_group = heads // groups
    compute = torch.float32
    for t in (x, dt, A, B, C, D, initial_state):
        if t is not None:
            compute = torch.promote_types(compute, t.dtype)
    dtype_in = x.dtype
    x_, dt_, A_, B_, C_ = (t.to(compute) for t in (x, dt, A, B, C))

    T = min(chunk_size, length)
    pad = (-length) % T
    if pad:
        # Padded steps have dt = 0: no decay, no input, so the final state is that of step L-1.
        x_, dt_, B_, C_ = (torch.cat([t, t.new_zeros(batch, pad, *t.shape[2:])], dim=1)
                           for t in (x_, dt_, B_, C_))
    n = x_.shape[1] // T
    # Chunked layouts: heads split as (groups, heads per group) so B and C broadcast per group.
    X = (x_ * dt_[..., None]).reshape(batch, n, T, groups, per_group, headdim)
    Bc = B_.reshape(batch, n, T, groups, state)
    Cc = C_.reshape(batch, n, T, groups, state)
    log_decay = (dt_ * A_).reshape(batch, n, T, groups, per_group).permute(0, 3, 4, 1, 2)
    cum = log_decay.cumsum(dim=-1)  # (batch, groups, per_group, chunks, T)

    # 1. Inside each chunk: y_i = sum_{j <= i} (C_i . B_j) exp(sum_{j<k<=i} log_decay_k) X_j.
    scores = torch.einsum("bcign,bcjgn->bgcij", Cc, Bc)
    weights = scores[:, :, None] * torch.exp(_segment_sums(log_decay))
    y_diag = torch.einsum("bgrcij,bcjgrp->bcigrp", weights, X)

    # 2. Each chunk's own end state from a zero start.
    to_end = torch.exp(cum[..., -1:] - cum)
    local = torch.einsum("bcjgn,bgrcj,bcjgrp->bgrpnc", Bc, to_end, X)

    # 3. States entering each chunk: the recurrence over chunks with the chunks' total decays.
    chunk_decay = torch.exp(cum[..., -1])[:, :, :, None, None, :]
    h0 = None
    if initial_state is not None:
        h0 = initial_state.to(compute).reshape(batch, groups, per_group, headdim, state)
    ends = linear_scan(chunk_decay, local, h0)
    first = ends.new_zeros(*ends.shape[:-1], 1) if h0 is None else h0[..., None]
    starts = torch.cat([first, ends[..., :-1]], dim=-1)

    # 4. Their contribution to the outputs, decayed to each step.
    y_off = torch.einsum("bcign,bgrpnc,bgrci->bcigrp", Cc, starts, torch.exp(cum))

    y = (y_diag + y_off).reshape(batch, n * T, heads, headdim)[:, :length]
    if D is not None:
        y = y + D.to(compute)[:, None] * x_[:, :length]
    y = y.to(dtype_in)
    if return_final_state:
        return y, ends[..., -1].reshape(batch, heads, headdim, state)
    return y


def _check(x, dt, A, B, C, D, initial_state, chunk_size):
    for name, t in (("x", x), ("dt", dt), ("A", A), ("B", B), ("C", C)):
        chk.expect_tensor(_FN, name, t)
        chk.expect_float(_FN, name, t)
    chk.expect_shape(_FN, "x", x, (None, None, None, None), "(batch, length, heads, headdim)")
    batch, length, heads, headdim = x.shape
    if length == 0:
        raise ValueError(f"{_FN}: x has length 0 (shape {chk.shape_str(x.shape)})")
    chk.expect_shape(_FN, "dt", dt, (batch, length, heads), "(batch, length, heads)")
    chk.expect_shape(_FN, "A", A, (heads,), "(heads,)")
    chk.expect_shape(_FN, "B", B, (batch, length, None, None), "(batch, length, groups, state)")
    chk.expect_shape(_FN, "C", C, B.shape, "(batch, length, groups, state)")
    if B.shape[2] == 0 or heads % B.shape[2]:
        raise ValueError(f"{_FN}: groups = {B.shape[2]} (B {chk.shape_str(B.shape)}) must divide "
                         f"heads = {heads}")
    if D is not None:
        chk.expect_tensor(_FN, "D", D)
        chk.expect_float(_FN, "D", D)
        chk.expect_shape(_FN, "D", D, (heads,), "(heads,)")
    if initial_state is not None:
        chk.expect_tensor(_FN, "initial_state", initial_state)
        chk.expect_float(_FN, "initial_state", initial_state)
        chk.expect_shape(_FN, "initial_state", initial_state,
                         (batch, heads, headdim, B.shape[3]), "(batch, heads, headdim, state)")
    chk.expect_same_dtype(_FN, {"x": x, "dt": dt, "B": B, "C": C})
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"{_FN}: chunk_size must be a positive int, got {chunk_size!r}")
