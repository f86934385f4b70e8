"""The selective scan of Mamba (Gu & Dao 2023) with per-step time gaps and missing steps: the
checked public entry point."""

from __future__ import annotations

import torch

from . import _checks as chk
from .selective_kernel import kernel_available, selective_scan_kernel
from .selective_reference import selective_scan_ref

__all__ = ["selective_scan"]

_FN = "selective_scan"


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                   initial_state=None, return_final_state=False, dt=None, mask=None):
    r"""Selective state-space scan, mamba_ssm's ``selective_scan_fn`` with time gaps and a mask.

    For every batch entry :math:`b` and channel :math:`d`, with a state :math:`h_t \in
    \mathbb R^N` per channel (``N = state``):

    .. math::

        \Delta_t &= m_t \, \tau_t \, \sigma\!\left(\delta_t + \beta\right), \\
        h_t &= \exp(\Delta_t A) \odot h_{t-1} + \Delta_t \, B_t \, u_t, \\
        y_t &= \left(C_t^\top h_t + D \, u_t\right) \cdot \operatorname{silu}(z_t),

    where :math:`\sigma` is softplus when ``delta_softplus`` (the identity otherwise),
    :math:`\beta` is ``delta_bias``, :math:`\tau_t` is the time gap ``dt`` (1 when ``None``),
    :math:`m_t \in \{0, 1\}` is ``mask`` (1 when ``None``), :math:`h_{-1}` is ``initial_state``
    (zero when ``None``) and the gate applies only when ``z`` is given. This is the zero-order-hold
    discretisation :math:`\bar A = \exp(\Delta A)` with mamba's simplified input matrix
    :math:`\bar B = \Delta B`.

    Parameters
    ----------
    u : Tensor ``(batch, dim, length)``
        Inputs; float16, bfloat16, float32 or float64.
    delta : Tensor ``(batch, dim, length)``
        Step sizes before bias and softplus, the dtype of ``u``.
    A : Tensor ``(dim, state)``
        Continuous-time diagonal state matrix (real; negative entries give decay).
    B, C : Tensor ``(dim, state)``, ``(batch, state, length)`` or ``(batch, groups, state, length)``
        Input and output matrices: fixed per channel, or selected per step and shared by the
        ``dim / groups`` channels of each group (``groups`` divides ``dim``). Per-step ones have
        the dtype of ``u``.
    D : Tensor ``(dim,)``, optional
        Skip connection.
    z : Tensor ``(batch, dim, length)``, optional
        Gate, applied as :math:`y \cdot \operatorname{silu}(z)`; the dtype of ``u``.
    delta_bias : Tensor ``(dim,)``, optional
        Added to ``delta`` before the softplus.
    delta_softplus : bool
        Apply softplus to ``delta + delta_bias``.
    initial_state : Tensor ``(batch, dim, state)``, optional
        :math:`h_{-1}`, float32 or float64; it receives a gradient like every other input.
    return_final_state : bool
        Also return :math:`h_{L-1}`.
    dt : Tensor ``(batch, length)``, optional
        Time gap before each step (in units of the nominal step), finite and :math:`\ge 0` at
        observed steps. It multiplies the step size, so a gap of 3 decays the state like three
        nominal steps: irregularly sampled series need no resampling.
    mask : bool Tensor ``(batch, length)``, optional
        ``False`` marks a missing step: its step size is zero, so the state carries over
        unchanged (:math:`h_t = h_{t-1}`) and the output there is the read-out
        :math:`C_t^\top h_{t-1}`, gated (the skip term is zero). At missing steps ``u``,
        ``delta``, ``dt`` and per-step ``B`` are ignored and may be NaN; ``z`` and ``C`` are
        used.

    Returns
    -------
    y : Tensor ``(batch, dim, length)``
        In the dtype of ``u``.
    final_state : Tensor ``(batch, dim, state)``
        With ``return_final_state``: :math:`h_{L-1}` in the compute dtype (float32, or float64
        when an input is float64).

    Raises
    ------
    ValueError
        A shape that does not fit (the message names the argument, the expected and the received
        shape), ``groups`` not dividing ``dim``, NaN in ``u``, ``delta``, per-step ``B`` or ``dt``
        at an observed step or in ``z`` or ``C`` anywhere, a negative or infinite ``dt``.
    TypeError
        A non-floating or complex tensor, ``u``, ``delta``, ``z`` and per-step ``B``/``C`` of
        different dtypes, ``initial_state`` in half precision, a ``mask`` that is not bool.

    Notes
    -----
    On a CUDA device with Triton installed, and no float64 input, the fused Triton kernels
    (:func:`~probssm.deep.ops.selective_scan_kernel`: float32 state, no ``(batch, dim, state,
    length)`` tensors) compute the scan; everywhere else the pure-PyTorch reference
    (:func:`~probssm.deep.ops.selective_scan_ref`: a chunked parallel scan, differentiable by
    autograd). Both are tested against the same per-step loop. The value checks (NaN, gaps)
    read the data once, which synchronises with an accelerator.
    """
    _check(u, delta, A, B, C, D, z, delta_bias, initial_state, dt, mask)
    if _use_kernel(u, A, B, C, D, delta_bias, initial_state, dt):
        return selective_scan_kernel(u, delta, A, B, C, D=D, z=z, delta_bias=delta_bias,
                                     delta_softplus=delta_softplus, initial_state=initial_state,
                                     return_final_state=return_final_state, dt=dt, mask=mask)
    return selective_scan_ref(u, delta, A, B, C, D=D, z=z, delta_bias=delta_bias,
                              delta_softplus=delta_softplus, initial_state=initial_state,
                              return_final_state=return_final_state, dt=dt, mask=mask)


def _use_kernel(u, *others) -> bool:
    """The fused kernel on CUDA tensors when Triton is there and nothing asks for float64 (the
    kernel's state is float32; the reference then computes in float64)."""
    if not u.is_cuda or not kernel_available(u.device):
        return False
    return all(t is None or t.dtype != torch.float64 for t in (u, *others))


def _check_bc(name, x, batch, dim, state, length):
    chk.expect_tensor(_FN, name, x)
    chk.expect_float(_FN, name, x)
    if x.dim() == 2:
        chk.expect_shape(_FN, name, x, (dim, state), "(dim, state)")
    elif x.dim() == 3:
        chk.expect_shape(_FN, name, x, (batch, state, length), "(batch, state, length)")
    elif x.dim() == 4:
        chk.expect_shape(_FN, name, x, (batch, None, state, length),
                         "(batch, groups, state, length)")
        if x.shape[1] == 0 or dim % x.shape[1]:
            raise ValueError(f"{_FN}: the groups of {name} {chk.shape_str(x.shape)} must divide "
                             f"dim = {dim}, got groups = {x.shape[1]}")
    else:
        raise ValueError(
            f"{_FN}: {name} must have shape (dim, state) = ({dim}, {state}) or (batch, groups, "
            f"state, length) = ({batch}, ?, {state}, {length}), got {chk.shape_str(x.shape)}")


def _check(u, delta, A, B, C, D, z, delta_bias, initial_state, dt, mask):
    for name, x in (("u", u), ("delta", delta), ("A", A)):
        chk.expect_tensor(_FN, name, x)
        chk.expect_float(_FN, name, x)
    chk.expect_shape(_FN, "u", u, (None, None, None), "(batch, dim, length)")
    batch, dim, length = u.shape
    if length == 0:
        raise ValueError(f"{_FN}: u has length 0 (shape {chk.shape_str(u.shape)})")
    chk.expect_shape(_FN, "delta", delta, (batch, dim, length), "(batch, dim, length)")
    chk.expect_shape(_FN, "A", A, (dim, None), "(dim, state)")
    state = A.shape[1]
    _check_bc("B", B, batch, dim, state, length)
    _check_bc("C", C, batch, dim, state, length)
    optional = {"D": (D, (dim,), "(dim,)"), "delta_bias": (delta_bias, (dim,), "(dim,)"),
                "z": (z, (batch, dim, length), "(batch, dim, length)"),
                "initial_state": (initial_state, (batch, dim, state), "(batch, dim, state)"),
                "dt": (dt, (batch, length), "(batch, length)")}
    for name, (x, shape, labels) in optional.items():
        if x is not None:
            chk.expect_tensor(_FN, name, x)
            chk.expect_float(_FN, name, x)
            chk.expect_shape(_FN, name, x, shape, labels)
    if initial_state is not None and initial_state.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{_FN}: initial_state is the scan state and must be float32 or float64, "
                        f"got {initial_state.dtype}")
    # Activations (computed from the data each step) share a dtype; parameters may be wider
    # (float32 weights with bfloat16 activations is the usual mixed-precision setting).
    chk.expect_same_dtype(_FN, {"u": u, "delta": delta, "z": z,
                                "B (per step)": B if B.dim() > 2 else None,
                                "C (per step)": C if C.dim() > 2 else None})
    chk.expect_same_device(_FN, {"u": u, "delta": delta, "A": A, "B": B, "C": C, "D": D, "z": z,
                                 "delta_bias": delta_bias, "initial_state": initial_state,
                                 "dt": dt, "mask": mask})
    observed = None
    if mask is not None:
        chk.expect_tensor(_FN, "mask", mask)
        chk.expect_mask(_FN, mask, (batch, length), "(batch, length)")
        observed = mask
    per_channel = None if observed is None else observed[:, None, :]
    chk.first_nan(_FN, "u", u, per_channel, "batch channel step")
    chk.first_nan(_FN, "delta", delta, per_channel, "batch channel step")
    if z is not None:
        chk.first_nan(_FN, "z", z, None, "batch channel step")
    for name, x in (("B", B), ("C", C)):
        if x.dim() > 2:
            seen = None
            if observed is not None and name == "B":
                seen = observed[:, None, :] if x.dim() == 3 else observed[:, None, None, :]
            axes = "batch state step" if x.dim() == 3 else "batch group state step"
            chk.first_nan(_FN, name, x, seen, axes)
    if dt is not None:
        chk.expect_gaps(_FN, dt, observed)
