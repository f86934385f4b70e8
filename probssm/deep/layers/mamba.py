"""The Mamba block (Gu & Dao 2023): projection, causal convolution, selective scan, gate."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..ops.selective import selective_scan
from ._conv import CausalDepthwiseConv
from ._init import step_size_bias
from ._sequence import check_sequence, check_state

__all__ = ["Mamba", "MambaState"]


class MambaState(NamedTuple):
    """Recurrent state of a :class:`Mamba` block between calls."""

    conv: torch.Tensor
    """``(batch, d_inner, d_conv - 1)``: the last convolution inputs."""
    ssm: torch.Tensor
    """``(batch, d_inner, d_state)``: the scan state :math:`h`, float32 (float64 for a float64
    layer)."""


class Mamba(nn.Module):
    r"""Mamba block: a selective state-space model between input and output projections.

    For input :math:`x_t \in \mathbb R^{d_\text{model}}` and :math:`E = ` ``expand * d_model``:

    .. math::

        (v_t, z_t) &= W_\text{in} x_t, \qquad v_t, z_t \in \mathbb R^{E}, \\
        u_t &= \operatorname{silu}\big(\textstyle\sum_{k} w_k \odot v_{t-K+1+k} + b\big)
              \quad \text{(causal depthwise convolution, width } K = \texttt{d\_conv}), \\
        (\delta^\text{low}_t, B_t, C_t) &= W_x u_t, \qquad
        \Delta_t = \tau_t \, m_t \, \operatorname{softplus}(W_\Delta \delta^\text{low}_t + \beta), \\
        h_t &= \exp(\Delta_t A) \odot h_{t-1} + \Delta_t B_t u_t, \qquad
        y_t = (C_t^\top h_t + D u_t) \odot \operatorname{silu}(z_t), \\
        \text{out}_t &= W_\text{out} y_t,

    with :math:`A = -\exp(A_\text{log})` ``(E, d_state)`` (S4D-real initialisation
    :math:`A_{dn} = -(n + 1)`), :math:`B_t, C_t \in \mathbb R^{N}` shared by all channels, the
    time gaps :math:`\tau` (``dt``) and the observed flags :math:`m` (``mask``) of
    :func:`probssm.deep.ops.selective_scan`.

    Shapes: ``forward(x)`` maps ``(batch, length, d_model)`` to ``(batch, length, d_model)``;
    ``step(x_t, state)`` maps ``(batch, d_model)`` and a :class:`MambaState` to the output
    ``(batch, d_model)`` and the next state.

    Missing steps (``mask`` False) carry the scan state over; their input is replaced by zeros
    before the projection (so it may be NaN), which the convolution then sees as a zero input.

    Parameters
    ----------
    d_model : int
        Features in and out.
    d_state : int
        State size :math:`N` per channel.
    d_conv : int
        Width of the causal convolution.
    expand : int
        Inner width :math:`E` = ``expand * d_model``.
    dt_rank : int or "auto"
        Rank of the step-size projection (``ceil(d_model / 16)`` for ``"auto"``).
    dt_min, dt_max, dt_init_floor : float
        Range of the initial step sizes (log-uniform).
    conv_bias, bias : bool
        Biases of the convolution and of the input/output projections.
    """

    def __init__(self, d_model: int, d_state: int = 16, d_conv: int = 4, expand: int = 2,
                 dt_rank: int | str = "auto", dt_min: float = 1e-3, dt_max: float = 0.1,
                 dt_init_floor: float = 1e-4, conv_bias: bool = True, bias: bool = False,
                 device=None, dtype=None):
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        self.d_model, self.d_state, self.d_conv = d_model, d_state, d_conv
        self.d_inner = expand * d_model
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == "auto" else int(dt_rank)
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=bias, **kw)
        self.conv = CausalDepthwiseConv(self.d_inner, d_conv, bias=conv_bias, **kw)
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False, **kw)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True, **kw)
        # Step-size projection initialised so that the initial Delta neither vanishes nor
        # explodes whatever dt_rank is, and its bias sets the time scales.
        with torch.no_grad():
            bound = self.dt_rank ** -0.5
            self.dt_proj.weight.uniform_(-bound, bound)
            self.dt_proj.bias.copy_(step_size_bias(self.d_inner, dt_min, dt_max, dt_init_floor,
                                                   device=device, dtype=dtype))
        A = torch.arange(1, d_state + 1, device=device, dtype=torch.float32)
        self.A_log = nn.Parameter(torch.log(A).repeat(self.d_inner, 1).to(dtype or torch.get_default_dtype()))
        self.D = nn.Parameter(torch.ones(self.d_inner, **kw))
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=bias, **kw)

    def initial_state(self, batch_size: int, *, device=None) -> MambaState:
        """The zero state for ``batch_size`` sequences."""
        device = device or self.A_log.device
        return MambaState(
            conv=self.conv.empty_history(batch_size, device=device),
            ssm=torch.zeros(batch_size, self.d_inner, self.d_state, device=device,
                            dtype=torch.promote_types(self.A_log.dtype, torch.float32)))

    def _check_state(self, state: MambaState, batch: int) -> None:
        check_state(self, "state.conv", state.conv, (batch, self.d_inner, self.d_conv - 1),
                    "(batch, d_inner, d_conv - 1)")
        check_state(self, "state.ssm", state.ssm, (batch, self.d_inner, self.d_state),
                    "(batch, d_inner, d_state)")

    def forward(self, x, *, dt=None, mask=None, state: MambaState | None = None,
                return_state: bool = False):
        """Outputs ``(batch, length, d_model)`` of the whole sequence (and the final
        :class:`MambaState` with ``return_state``), starting from ``state`` (zero when ``None``).

        ``dt``, ``mask``: ``(batch, length)`` time gaps and observed flags."""
        x, dt, mask = check_sequence(self, x, dt, mask)
        if state is not None:
            self._check_state(state, x.shape[0])
        v, z = self.in_proj(x).transpose(1, 2).chunk(2, dim=1)  # (batch, E, length) each
        u, history = self.conv(v, None if state is None else state.conv)
        u = F.silu(u)
        low, B, C = self.x_proj(u.transpose(1, 2)).split(
            [self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = F.linear(low, self.dt_proj.weight).transpose(1, 2)  # bias added in the scan
        y, h = selective_scan(
            u, delta, -torch.exp(self.A_log), B.transpose(1, 2), C.transpose(1, 2), D=self.D, z=z,
            delta_bias=self.dt_proj.bias, delta_softplus=True,
            initial_state=None if state is None else state.ssm, return_final_state=True,
            dt=dt, mask=mask)
        out = self.out_proj(y.transpose(1, 2))
        return (out, MambaState(history, h)) if return_state else out

    def step(self, x, state: MambaState, *, dt=None, mask=None):
        """One step: ``x`` ``(batch, d_model)``, ``dt`` and ``mask`` ``(batch,)`` ->
        ``(out (batch, d_model), next MambaState)``; the recurrence of :meth:`forward`."""
        x, dt, mask = check_sequence(self, x, dt, mask, token=True)
        self._check_state(state, x.shape[0])
        v, z = self.in_proj(x).chunk(2, dim=-1)
        u, history = self.conv.step(v, state.conv)
        u = F.silu(u)
        low, B, C = self.x_proj(u).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        compute = state.ssm.dtype
        delta = F.softplus(self.dt_proj(low).to(compute))
        uc = u.to(compute)
        if dt is not None:
            delta = delta * dt.to(compute)[:, None]
        if mask is not None:
            delta = torch.where(mask[:, None], delta, 0.0)
            uc = torch.where(mask[:, None], uc, 0.0)
        A = -torch.exp(self.A_log.to(compute))
        h = torch.exp(delta[..., None] * A) * state.ssm \
            + (delta * uc)[..., None] * B.to(compute)[:, None, :]
        y = (h * C.to(compute)[:, None, :]).sum(-1) + self.D.to(compute) * uc
        y = (y * F.silu(z.to(compute))).to(x.dtype)
        return self.out_proj(y), MambaState(history, h)
