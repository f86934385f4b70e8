"""S4D (Gu, Gupta, Goel & Ré 2022): a diagonal complex state-space model per feature, as a long
convolution for whole sequences and as a recurrence for streaming."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..ops.recurrence import linear_scan
from ._sequence import check_sequence, check_state

__all__ = ["S4D"]


class S4D(nn.Module):
    r"""Diagonal state-space layer with the S4D-Lin initialisation.

    Each of the ``d_model`` features :math:`u` drives its own ``d_state`` complex modes
    :math:`A_n = -e^{\alpha_n} + i \omega_n` (initialised :math:`-\tfrac12 + i \pi n`),
    discretised by zero-order hold with a learned step :math:`\Delta` per feature:

    .. math::

        \bar A_t = \exp(\Delta_t A), \qquad \bar B_t = (\bar A_t - 1) / A, \qquad
        h_t = \bar A_t \odot h_{t-1} + \bar B_t u_t, \qquad
        y_t = 2 \operatorname{Re}(C^\top h_t) + D u_t,

    (the factor 2 counts each mode's complex conjugate, so :math:`y` is real), followed by
    :math:`\operatorname{GELU}` and a position-wise :math:`\operatorname{GLU}(W y + b)` back to
    ``d_model`` features. With unit steps the SSM is the causal convolution
    :math:`y = K * u + D u` with :math:`K_k = 2 \operatorname{Re}(C^\top \bar A^k \bar B)`,
    computed by FFT in the forward pass. With time gaps :math:`\Delta_t = \Delta \tau_t m_t`
    (``dt`` :math:`\tau`, ``mask`` :math:`m`: exact ZOH over a gap of :math:`\tau_t` steps, and
    a missing step keeps the state) the model is time-varying and the forward pass runs the
    recurrence by :func:`probssm.deep.ops.linear_scan` instead.

    Shapes: ``(batch, length, d_model)`` to ``(batch, length, d_model)``; the state is a complex
    tensor ``(batch, d_model, d_state)``.

    Parameters
    ----------
    d_model : int
        Features in and out.
    d_state : int
        Complex modes per feature (the real state size is twice this).
    dt_min, dt_max : float
        Range of the initial step sizes :math:`\Delta` (log-uniform).
    """

    def __init__(self, d_model: int, d_state: int = 32, dt_min: float = 1e-3,
                 dt_max: float = 0.1, device=None, dtype=None):
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        self.d_model, self.d_state = d_model, d_state
        log_dt = torch.rand(d_model, **kw) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        self.log_dt = nn.Parameter(log_dt)
        self.log_A_real = nn.Parameter(torch.full((d_model, d_state), math.log(0.5), **kw))
        self.A_imag = nn.Parameter(math.pi * torch.arange(d_state, **kw).repeat(d_model, 1))
        # Complex C stored as (real, imaginary) pairs so that optimisers see real parameters;
        # variance 1/2 per part makes |C_n|^2 = 1 on average.
        self.C = nn.Parameter(torch.randn(d_model, d_state, 2, **kw) * math.sqrt(0.5))
        self.D = nn.Parameter(torch.randn(d_model, **kw))
        self.output = nn.Linear(d_model, 2 * d_model, **kw)

    def _modes(self):
        A = torch.complex(-torch.exp(self.log_A_real), self.A_imag)
        return A, torch.view_as_complex(self.C), torch.exp(self.log_dt)

    def _complex_dtype(self):
        return torch.complex128 if self.log_dt.dtype == torch.float64 else torch.complex64

    def initial_state(self, batch_size: int, *, device=None) -> torch.Tensor:
        """The zero state, complex ``(batch_size, d_model, d_state)``."""
        return torch.zeros(batch_size, self.d_model, self.d_state,
                           device=device or self.log_dt.device, dtype=self._complex_dtype())

    def _check_state(self, state, batch):
        check_state(self, "state", state, (batch, self.d_model, self.d_state),
                    "(batch, d_model, d_state)")

    def _readout(self, y, u, dtype):
        y = F.gelu(y + self.D * u)
        return F.glu(self.output(y.to(dtype)), dim=-1)

    def forward(self, x, *, dt=None, mask=None, state=None, return_state: bool = False):
        """Outputs ``(batch, length, d_model)`` (and the final complex state with
        ``return_state``), starting from ``state`` (zero when ``None``)."""
        x, dt, mask = check_sequence(self, x, dt, mask)
        batch, length, _ = x.shape
        if state is not None:
            self._check_state(state, batch)
        A, C, step = self._modes()
        u = x.transpose(1, 2).to(self.log_dt.dtype)  # (batch, d_model, length)
        if dt is None and mask is None:
            y, h = self._convolve(u, A, C, step, state)
        else:
            y, h = self._recur(u, A, C, step, state, dt, mask)
        out = self._readout(y.transpose(1, 2), x.to(y.dtype), x.dtype)
        return (out, h) if return_state else out

    def _convolve(self, u, A, C, step, state):
        length = u.shape[-1]
        dtA = step[:, None] * A  # (d_model, d_state)
        Abar = torch.exp(dtA)
        Bbar = (Abar - 1) / A
        powers = torch.exp(dtA[..., None] * torch.arange(length, device=u.device))  # Abar^k
        kernel = 2 * torch.einsum("hn,hnl->hl", C * Bbar, powers).real
        n = 2 * length  # zero padding to 2L turns the FFT's circular convolution into a causal one
        y = torch.fft.irfft(torch.fft.rfft(u, n=n) * torch.fft.rfft(kernel, n=n), n=n)[..., :length]
        # Final state: sum_k Abar^(L-1-k) Bbar u_k (+ Abar^L h0).
        h = Bbar * torch.einsum("bhl,hnl->bhn", u.to(powers.dtype), powers.flip(-1))
        if state is not None:
            h0 = state.to(powers.dtype)
            y = y + 2 * torch.einsum("hn,bhn,hnl->bhl", C, h0, Abar[..., None] * powers).real
            h = h + Abar ** length * h0
        return y, h

    def _recur(self, u, A, C, step, state, dt, mask):
        batch, _, length = u.shape
        gaps = torch.ones(batch, length, dtype=u.dtype, device=u.device) if dt is None \
            else dt.to(u.dtype)
        if mask is not None:
            gaps = torch.where(mask, gaps, 0.0)
        dtA = (step[None, :, None] * gaps[:, None, :])[:, :, None, :] * A[None, :, :, None]
        Abar = torch.exp(dtA)  # (batch, d_model, d_state, length)
        drive = (Abar - 1) / A[None, :, :, None] * u[:, :, None, :]
        h = linear_scan(Abar, drive, None if state is None else state.to(Abar.dtype))
        y = 2 * torch.einsum("hn,bhnl->bhl", C, h).real
        return y, h[..., -1]

    def step(self, x, state, *, dt=None, mask=None):
        """One step: ``x`` ``(batch, d_model)``, ``dt``/``mask`` ``(batch,)`` ->
        ``(out (batch, d_model), next state)``."""
        x, dt, mask = check_sequence(self, x, dt, mask, token=True)
        self._check_state(state, x.shape[0])
        A, C, step = self._modes()
        u = x.to(self.log_dt.dtype)
        delta = step.expand(x.shape[0], -1)
        if dt is not None:
            delta = delta * dt[:, None].to(u.dtype)
        if mask is not None:
            delta = torch.where(mask[:, None], delta, 0.0)
        Abar = torch.exp(delta[..., None] * A)
        h = Abar * state + (Abar - 1) / A * u[..., None]
        y = 2 * (h * C).sum(-1).real
        return self._readout(y, u, x.dtype), h
