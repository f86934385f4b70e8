"""Causal depthwise convolution over time with a carried history, for streaming."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CausalDepthwiseConv(nn.Module):
    r"""Per-channel causal convolution :math:`y_t = b + \sum_{k=0}^{K-1} w_k \, x_{t-K+1+k}`.

    The ``K - 1`` inputs before the sequence come from ``history`` (zeros when ``None``) and the
    last ``K - 1`` inputs are returned as the next history, so a sequence cut into pieces gives
    the same outputs as in one piece.
    """

    def __init__(self, channels: int, kernel_size: int, bias: bool = True, device=None,
                 dtype=None):
        super().__init__()
        if kernel_size < 1:
            raise ValueError(f"kernel_size must be >= 1, got {kernel_size}")
        # nn.Conv1d for its parameters and their default initialisation only.
        conv = nn.Conv1d(channels, channels, kernel_size, groups=channels, bias=bias,
                         device=device, dtype=dtype)
        self.weight = conv.weight  # (channels, 1, kernel_size)
        self.bias = conv.bias
        self.kernel_size = kernel_size

    def empty_history(self, batch: int, *, device=None, dtype=None) -> torch.Tensor:
        return self.weight.new_zeros(batch, self.weight.shape[0], self.kernel_size - 1,
                                     device=device, dtype=dtype)

    def forward(self, x: torch.Tensor, history: torch.Tensor | None = None):
        """``x`` ``(batch, channels, length)`` -> ``(y, history)``, ``y`` like ``x``,
        ``history`` ``(batch, channels, kernel_size - 1)``."""
        if history is None:
            history = self.empty_history(x.shape[0], dtype=x.dtype)
        context = torch.cat([history.to(x.dtype), x], dim=-1)
        y = F.conv1d(context, self.weight, self.bias, groups=self.weight.shape[0])
        return y, context[..., context.shape[-1] - (self.kernel_size - 1):]

    def step(self, x: torch.Tensor, history: torch.Tensor):
        """One input ``(batch, channels)`` -> ``(y_t, history)``."""
        window = torch.cat([history.to(x.dtype), x[..., None]], dim=-1)
        y = (window * self.weight[:, 0]).sum(-1)
        if self.bias is not None:
            y = y + self.bias
        return y, window[..., 1:]
