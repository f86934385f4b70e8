"""The Mamba-2 block (Dao & Gu 2024): one scalar decay per head, computed by the chunked
state-space-duality scan."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..ops.duality import ssd
from ._conv import CausalDepthwiseConv
from ._init import step_size_bias
from ._norm import GatedRMSNorm
from ._sequence import check_sequence, check_state

__all__ = ["Mamba2", "Mamba2State"]


class Mamba2State(NamedTuple):
    """Recurrent state of a :class:`Mamba2` block between calls."""

    conv: torch.Tensor
    """``(batch, d_inner + 2 * ngroups * d_state, d_conv - 1)``: the last convolution inputs."""
    ssm: torch.Tensor
    """``(batch, nheads, headdim, d_state)``: the scan state, float32 (float64 for a float64
    layer)."""


class Mamba2(nn.Module):
    r"""Mamba-2 block: a state-space model with a scalar decay per head (SSD).

    With :math:`E` = ``expand * d_model`` channels in ``nheads = E / headdim`` heads of
    ``headdim`` channels, and ``ngroups`` groups of heads sharing :math:`B, C`:

    .. math::

        (z_t, \xi_t, \delta_t) &= W_\text{in} x_t, \qquad
        (u_t, B_t, C_t) = \operatorname{silu}(\operatorname{conv}(\xi)_t), \\
        \Delta_t &= \tau_t \, m_t \, \operatorname{softplus}(\delta_t + \beta)
            \in \mathbb R^{\text{nheads}}, \\
        h_t &= \exp(\Delta_t a) \, h_{t-1} + \Delta_t \, u_t B_t^\top
            \quad (h_t \in \mathbb R^{\text{headdim} \times N} \text{ per head}), \\
        y_t &= h_t C_t + D u_t, \qquad
        \text{out}_t = W_\text{out} \operatorname{RMSNorm}(y_t \odot \operatorname{silu}(z_t)),

    with :math:`a = -\exp(A_\text{log}) < 0` one scalar per head. The whole-sequence forward
    uses :func:`probssm.deep.ops.ssd` (chunks of ``chunk_size`` steps as matmuls); ``step`` runs
    the recurrence. ``dt`` and ``mask`` as in :class:`Mamba`.

    Shapes: ``(batch, length, d_model)`` to ``(batch, length, d_model)``; ``step`` maps
    ``(batch, d_model)`` and a :class:`Mamba2State` to ``(batch, d_model)`` and the next state.

    Parameters
    ----------
    d_model : int
        Features in and out.
    d_state : int
        State size :math:`N` per head and channel.
    d_conv : int
        Width of the causal convolution (over :math:`u, B, C`).
    expand : int
        Inner width :math:`E` = ``expand * d_model``.
    headdim : int
        Channels per head (divides :math:`E`).
    ngroups : int
        Groups of heads sharing :math:`B_t, C_t` (divides ``nheads``).
    chunk_size : int
        Chunk length of the SSD computation.
    dt_min, dt_max, dt_init_floor : float
        Range of the initial step sizes (log-uniform).
    A_init_range : (float, float)
        :math:`-a` is initialised uniform in this range.
    conv_bias, bias : bool
        Biases of the convolution and of the projections.
    """

    def __init__(self, d_model: int, d_state: int = 64, d_conv: int = 4, expand: int = 2,
                 headdim: int = 32, ngroups: int = 1, chunk_size: int = 64,
                 dt_min: float = 1e-3, dt_max: float = 0.1, dt_init_floor: float = 1e-4,
                 A_init_range: tuple[float, float] = (1.0, 16.0), conv_bias: bool = True,
                 bias: bool = False, device=None, dtype=None):
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        self.d_model, self.d_state, self.d_conv = d_model, d_state, d_conv
        self.d_inner = expand * d_model
        if self.d_inner % headdim:
            raise ValueError(f"Mamba2: headdim = {headdim} must divide d_inner = expand * d_model "
                             f"= {self.d_inner}")
        self.headdim, self.nheads = headdim, self.d_inner // headdim
        if self.nheads % ngroups:
            raise ValueError(f"Mamba2: ngroups = {ngroups} must divide nheads = {self.nheads}")
        self.ngroups, self.chunk_size = ngroups, chunk_size
        self.conv_dim = self.d_inner + 2 * ngroups * d_state
        self.in_proj = nn.Linear(d_model, self.d_inner + self.conv_dim + self.nheads, bias=bias,
                                 **kw)
        self.conv = CausalDepthwiseConv(self.conv_dim, d_conv, bias=conv_bias, **kw)
        self.dt_bias = nn.Parameter(step_size_bias(self.nheads, dt_min, dt_max, dt_init_floor,
                                                   device=device, dtype=dtype))
        lo, hi = A_init_range
        if not 0 < lo <= hi:
            raise ValueError(f"Mamba2: A_init_range must satisfy 0 < low <= high, got {A_init_range}")
        A = torch.empty(self.nheads, device=device, dtype=torch.float32).uniform_(lo, hi)
        self.A_log = nn.Parameter(torch.log(A).to(dtype or torch.get_default_dtype()))
        self.D = nn.Parameter(torch.ones(self.nheads, **kw))
        self.norm = GatedRMSNorm(self.d_inner, groups=ngroups, **kw)
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=bias, **kw)

    def initial_state(self, batch_size: int, *, device=None) -> Mamba2State:
        """The zero state for ``batch_size`` sequences."""
        device = device or self.A_log.device
        return Mamba2State(
            conv=self.conv.empty_history(batch_size, device=device),
            ssm=torch.zeros(batch_size, self.nheads, self.headdim, self.d_state, device=device,
                            dtype=torch.promote_types(self.A_log.dtype, torch.float32)))

    def _check_state(self, state: Mamba2State, batch: int) -> None:
        check_state(self, "state.conv", state.conv, (batch, self.conv_dim, self.d_conv - 1),
                    "(batch, d_inner + 2 * ngroups * d_state, d_conv - 1)")
        check_state(self, "state.ssm", state.ssm,
                    (batch, self.nheads, self.headdim, self.d_state),
                    "(batch, nheads, headdim, d_state)")

    def _split(self, projected):
        return projected.split([self.d_inner, self.conv_dim, self.nheads], dim=-1)

    def _step_sizes(self, raw, dt, mask):
        delta = F.softplus(raw + self.dt_bias)
        if dt is not None:
            delta = delta * dt[..., None].to(delta.dtype)
        if mask is not None:
            delta = torch.where(mask[..., None], delta, 0.0)
        return delta

    def forward(self, x, *, dt=None, mask=None, state: Mamba2State | None = None,
                return_state: bool = False):
        """Outputs ``(batch, length, d_model)`` (and the final :class:`Mamba2State` with
        ``return_state``), starting from ``state`` (zero when ``None``)."""
        x, dt, mask = check_sequence(self, x, dt, mask)
        batch, length, _ = x.shape
        if state is not None:
            self._check_state(state, batch)
        z, xi, raw = self._split(self.in_proj(x))
        xi, history = self.conv(xi.transpose(1, 2), None if state is None else state.conv)
        xi = F.silu(xi).transpose(1, 2)
        u, B, C = xi.split([self.d_inner, self.ngroups * self.d_state,
                            self.ngroups * self.d_state], dim=-1)
        if mask is not None:
            # The skip term of a missing step is zero, as in selective_scan.
            u = torch.where(mask[..., None], u, 0.0)
        delta = self._step_sizes(raw, dt, mask).to(u.dtype)
        y, h = ssd(u.reshape(batch, length, self.nheads, self.headdim), delta,
                   -torch.exp(self.A_log), B.reshape(batch, length, self.ngroups, self.d_state),
                   C.reshape(batch, length, self.ngroups, self.d_state), D=self.D,
                   chunk_size=self.chunk_size,
                   initial_state=None if state is None else state.ssm, return_final_state=True)
        out = self.out_proj(self.norm(y.reshape(batch, length, self.d_inner), z))
        return (out, Mamba2State(history, h)) if return_state else out

    def step(self, x, state: Mamba2State, *, dt=None, mask=None):
        """One step: ``x`` ``(batch, d_model)``, ``dt`` and ``mask`` ``(batch,)`` ->
        ``(out (batch, d_model), next Mamba2State)``."""
        x, dt, mask = check_sequence(self, x, dt, mask, token=True)
        batch = x.shape[0]
        self._check_state(state, batch)
        z, xi, raw = self._split(self.in_proj(x))
        xi, history = self.conv.step(xi, state.conv)
        u, B, C = F.silu(xi).split([self.d_inner, self.ngroups * self.d_state,
                                    self.ngroups * self.d_state], dim=-1)
        compute = state.ssm.dtype
        if mask is not None:
            u = torch.where(mask[:, None], u, 0.0)
        delta = self._step_sizes(raw, dt, mask).to(compute)  # (batch, nheads)
        per_group = self.nheads // self.ngroups
        uh = u.to(compute).reshape(batch, self.nheads, self.headdim)
        Bh = B.to(compute).reshape(batch, self.ngroups, self.d_state).repeat_interleave(per_group, 1)
        Ch = C.to(compute).reshape(batch, self.ngroups, self.d_state).repeat_interleave(per_group, 1)
        decay = torch.exp(delta * -torch.exp(self.A_log.to(compute)))
        h = decay[..., None, None] * state.ssm + (delta[..., None] * uh)[..., None] * Bh[:, :, None, :]
        y = (h * Ch[:, :, None, :]).sum(-1) + self.D.to(compute)[:, None] * uh
        y = y.reshape(batch, self.d_inner).to(x.dtype)
        return self.out_proj(self.norm(y, z)), Mamba2State(history, h)
