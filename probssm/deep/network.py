r"""The networks behind :class:`~probssm.deep.MambaForecaster`: a stack of residual sequence
layers (``Mamba``, ``Mamba2``, ``S4D`` or ``LRU``) and a direct multi-horizon decoder.

**Channel-independent** (:class:`ChannelNetwork`): each series is its own sequence. For window
inputs :math:`x_{1:L}` ``(batch, L, F)``,

.. math::

    e_s = W_\text{in} x_s, \qquad
    e^{(j)}_{s} = e^{(j-1)}_s + \text{layer}_j\big(\operatorname{LN}(e^{(j-1)})\big)_s, \qquad
    f = \operatorname{LN}(e^{(J)}_L) \in \mathbb R^{d},

and the decoder gives every horizon step :math:`k` its raw head outputs

.. math::

    r_k = W_\text{out} \operatorname{gelu}\big((W_\text{dec} f)_k + W_\text{fut} c_{L+k}\big),

with :math:`c_{L+k}` the known covariates of step :math:`k` (calendar, regressors). The encoder
is recurrent: :meth:`ChannelNetwork.advance` moves :math:`f` and the layers' states over one more
step with the layers' ``step``, equal to running the whole sequence again.

**Variate tokens** (:class:`VariateNetwork`, as in S-Mamba): the tokens are the series. Each
series' normalised lookback and its observed flags become one token
:math:`e_b = W_\text{in}[z_{b,1:L}, m_{b,1:L}]`, and each layer reads the tokens in both
directions, :math:`e \leftarrow e + \text{fwd}(\operatorname{LN} e) +
\operatorname{flip}(\text{bwd}(\operatorname{flip} \operatorname{LN} e))`, so that every series
sees every other; the decoder is the one above, per series.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .layers import LRU, S4D, Mamba, Mamba2

__all__ = ["BACKBONES", "ChannelNetwork", "VariateNetwork", "make_layer"]

BACKBONES = ("mamba", "mamba2", "s4d", "lru")


def make_layer(backbone: str, d_model: int, d_state: int) -> nn.Module:
    """One sequence layer of width ``d_model`` and state size ``d_state``."""
    if backbone == "mamba":
        return Mamba(d_model, d_state=d_state, d_conv=4, expand=2)
    if backbone == "mamba2":
        d_inner = 2 * d_model
        return Mamba2(d_model, d_state=d_state, expand=2, headdim=math.gcd(d_inner, 32), chunk_size=32)
    if backbone == "s4d":
        return S4D(d_model, d_state=d_state)
    if backbone == "lru":
        return LRU(d_model, d_state=d_state)
    raise ValueError(f"backbone must be one of {BACKBONES}, got {backbone!r}")


class _Decoder(nn.Module):
    """Features ``(batch, d)`` and future covariates ``(batch, H, c)`` -> raw head outputs
    ``(batch, H, n_params)``."""

    def __init__(self, d_model: int, horizon: int, n_covariates: int, n_params: int):
        super().__init__()
        self.horizon, self.d_model = horizon, d_model
        self.expand = nn.Linear(d_model, horizon * d_model)
        self.covariates = nn.Linear(n_covariates, d_model, bias=False) if n_covariates else None
        self.out = nn.Linear(d_model, n_params)

    def forward(self, features, future):
        h = self.expand(features).view(features.shape[0], self.horizon, self.d_model)
        if self.covariates is not None:
            h = h + self.covariates(future)
        return self.out(F.gelu(h))


class ChannelNetwork(nn.Module):
    """Channel-independent encoder (see the module docstring) and decoder.

    ``forward(inputs (batch, L, F), mask (batch, L), future (batch, H, c))`` -> raw head outputs
    ``(batch, H, n_params)``."""

    def __init__(self, backbone: str, n_inputs: int, n_covariates: int, horizon: int, n_params: int,
                 d_model: int, n_layers: int, d_state: int):
        super().__init__()
        self.embed = nn.Linear(n_inputs, d_model)
        self.norms = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(n_layers))
        self.layers = nn.ModuleList(make_layer(backbone, d_model, d_state) for _ in range(n_layers))
        self.final = nn.LayerNorm(d_model)
        self.decoder = _Decoder(d_model, horizon, n_covariates, n_params)

    def encode(self, inputs, mask):
        """Features ``(batch, d)`` after the last step and the layers' states."""
        e = self.embed(inputs)
        states = []
        if mask is not None and bool(mask.all()):  # the layers' fast paths (S4D's FFT convolution) need no mask
            mask = None
        for norm, layer in zip(self.norms, self.layers):
            out, state = layer(norm(e), mask=mask, return_state=True)
            e = e + out
            states.append(state)
        return self.final(e[:, -1]), states

    def advance(self, inputs, mask, states):
        """One more step: ``inputs`` ``(batch, F)``, ``mask`` ``(batch,)`` -> features and
        states, the recurrence of :meth:`encode`."""
        e = self.embed(inputs)
        new = []
        for norm, layer, state in zip(self.norms, self.layers, states):
            out, state = layer.step(norm(e), state, mask=mask)
            e = e + out
            new.append(state)
        return self.final(e), new

    def forward(self, inputs, mask, future):
        return self.decoder(self.encode(inputs, mask)[0], future)


class VariateNetwork(nn.Module):
    """Variate-token encoder (see the module docstring) and decoder.

    ``forward(inputs (batch, L, F), mask (batch, L), future (batch, H, c))``: the ``batch`` rows
    are the series of one panel at one origin, read as a sequence of ``batch`` tokens."""

    def __init__(self, backbone: str, lookback: int, n_covariates: int, horizon: int, n_params: int,
                 d_model: int, n_layers: int, d_state: int):
        super().__init__()
        self.embed = nn.Linear(2 * lookback, d_model)
        self.norms = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(n_layers))
        self.forward_layers = nn.ModuleList(make_layer(backbone, d_model, d_state) for _ in range(n_layers))
        self.backward_layers = nn.ModuleList(make_layer(backbone, d_model, d_state) for _ in range(n_layers))
        self.final = nn.LayerNorm(d_model)
        self.decoder = _Decoder(d_model, horizon, n_covariates, n_params)

    def forward(self, inputs, mask, future):
        tokens = torch.cat([inputs[..., 0], inputs[..., 1]], dim=-1)[None]  # (1, series, 2L)
        e = self.embed(tokens)
        for norm, fwd, bwd in zip(self.norms, self.forward_layers, self.backward_layers):
            n = norm(e)
            e = e + fwd(n) + bwd(n.flip(1)).flip(1)
        return self.decoder(self.final(e[0]), future)
