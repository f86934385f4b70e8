"""The linear recurrent unit (Orvieto et al. 2023): a diagonal complex recurrence with a stable
exponential parameterisation of its eigenvalues."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..ops.recurrence import linear_scan
from ._sequence import check_sequence, check_state

__all__ = ["LRU"]


class LRU(nn.Module):
    r"""Linear recurrent unit.

    .. math::

        \lambda_n = \exp(-e^{\nu_n} + i e^{\theta_n}), \qquad
        h_t = \lambda^{\tau_t m_t} \odot h_{t-1} + m_t \, \gamma \odot (B u_t), \qquad
        y_t = \operatorname{Re}(C h_t) + D \odot u_t,

    with :math:`|\lambda_n| = e^{-e^{\nu_n}} < 1` for every real :math:`\nu` (stable by
    construction), the normalisation :math:`\gamma_n = \sqrt{1 - |\lambda_n|^2}` (learned, as
    :math:`\log\gamma`) that keeps the state's scale at initialisation, complex
    :math:`B` ``(d_state, d_model)`` and :math:`C` ``(d_model, d_state)``. The eigenvalues are
    initialised uniformly on the ring :math:`r_\text{min} \le |\lambda| \le r_\text{max}` with
    phases in :math:`[0, \text{max\_phase}]`. A time gap :math:`\tau_t` (``dt``) raises the
    decay to the power :math:`\tau_t` (the input term is not scaled); a missing step
    (``mask`` :math:`m_t = 0`) keeps the state and reads it out with a zero skip term.

    Shapes: ``(batch, length, d_model)`` to ``(batch, length, d_model)``; the state is a complex
    tensor ``(batch, d_state)``. The forward pass runs :func:`probssm.deep.ops.linear_scan`.

    Parameters
    ----------
    d_model : int
        Features in and out.
    d_state : int
        Complex state size.
    r_min, r_max : float
        Ring of the initial eigenvalue moduli, ``0 <= r_min < r_max <= 1``.
    max_phase : float
        Largest initial eigenvalue phase.
    """

    def __init__(self, d_model: int, d_state: int = 64, r_min: float = 0.9, r_max: float = 0.999,
                 max_phase: float = 2 * math.pi, device=None, dtype=None):
        super().__init__()
        if not 0 <= r_min < r_max <= 1:
            raise ValueError(f"LRU: need 0 <= r_min < r_max <= 1, got r_min={r_min}, r_max={r_max}")
        kw = {"device": device, "dtype": dtype}
        self.d_model, self.d_state = d_model, d_state
        u1, u2 = torch.rand(d_state, **kw), torch.rand(d_state, **kw)
        # |lambda|^2 uniform between r_min^2 and r_max^2: uniform on the ring's area.
        nu = -0.5 * torch.log(u1 * (r_max ** 2 - r_min ** 2) + r_min ** 2)
        self.nu_log = nn.Parameter(torch.log(nu))
        self.theta_log = nn.Parameter(torch.log(max_phase * u2.clamp(min=1e-4)))
        self.gamma_log = nn.Parameter(0.5 * torch.log(-torch.expm1(-2 * nu)))
        self.B = nn.Parameter(torch.randn(d_state, d_model, 2, **kw) / math.sqrt(2 * d_model))
        self.C = nn.Parameter(torch.randn(d_model, d_state, 2, **kw) / math.sqrt(d_state))
        self.D = nn.Parameter(torch.randn(d_model, **kw))

    def _parts(self):
        log_lambda = torch.complex(-torch.exp(self.nu_log), torch.exp(self.theta_log))
        B = torch.view_as_complex(self.B) * torch.exp(self.gamma_log)[:, None]
        return log_lambda, B, torch.view_as_complex(self.C)

    def _complex_dtype(self):
        return torch.complex128 if self.nu_log.dtype == torch.float64 else torch.complex64

    def initial_state(self, batch_size: int, *, device=None) -> torch.Tensor:
        """The zero state, complex ``(batch_size, d_state)``."""
        return torch.zeros(batch_size, self.d_state, device=device or self.nu_log.device,
                           dtype=self._complex_dtype())

    def _check_state(self, state, batch):
        check_state(self, "state", state, (batch, self.d_state), "(batch, d_state)")

    def forward(self, x, *, dt=None, mask=None, state=None, return_state: bool = False):
        """Outputs ``(batch, length, d_model)`` (and the final complex state with
        ``return_state``), starting from ``state`` (zero when ``None``)."""
        x, dt, mask = check_sequence(self, x, dt, mask)
        batch, length, _ = x.shape
        if state is not None:
            self._check_state(state, batch)
        log_lambda, B, C = self._parts()
        drive = torch.einsum("nh,blh->bnl", B, x.to(B.dtype))  # (batch, d_state, length)
        if dt is None and mask is None:
            decay = torch.exp(log_lambda)[None, :, None]
        else:
            gaps = torch.ones(batch, length, dtype=self.nu_log.dtype, device=x.device) \
                if dt is None else dt.to(self.nu_log.dtype)
            if mask is not None:
                gaps = torch.where(mask, gaps, 0.0)
                # x is already zero at missing steps, so their drive is zero too.
            decay = torch.exp(log_lambda[None, :, None] * gaps[:, None, :])
        h = linear_scan(decay, drive, None if state is None else state.to(drive.dtype))
        y = torch.einsum("hn,bnl->blh", C, h).real + self.D * x.to(self.D.dtype)
        y = y.to(x.dtype)
        return (y, h[..., -1]) if return_state else y

    def step(self, x, state, *, dt=None, mask=None):
        """One step: ``x`` ``(batch, d_model)``, ``dt``/``mask`` ``(batch,)`` ->
        ``(out (batch, d_model), next state)``."""
        x, dt, mask = check_sequence(self, x, dt, mask, token=True)
        self._check_state(state, x.shape[0])
        log_lambda, B, C = self._parts()
        if dt is None and mask is None:
            decay = torch.exp(log_lambda)
        else:
            gaps = torch.ones(x.shape[0], dtype=self.nu_log.dtype, device=x.device) \
                if dt is None else dt.to(self.nu_log.dtype)
            if mask is not None:
                gaps = torch.where(mask, gaps, 0.0)
            decay = torch.exp(log_lambda[None, :] * gaps[:, None])
        h = decay * state + x.to(B.dtype) @ B.T
        y = (h @ C.T).real + self.D * x.to(self.D.dtype)
        return y.to(x.dtype), h
