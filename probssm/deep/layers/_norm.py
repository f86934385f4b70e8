"""Gated RMS normalisation of Mamba-2's output."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GatedRMSNorm(nn.Module):
    r""":math:`\operatorname{RMSNorm}(y \cdot \operatorname{silu}(z)) \odot w`, normalised over
    groups of ``dim / groups`` features (one group per B/C group, so that the output does not mix
    statistics across groups)."""

    def __init__(self, dim: int, groups: int = 1, eps: float = 1e-5, device=None, dtype=None):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim, device=device, dtype=dtype))
        self.groups = groups
        self.eps = eps

    def forward(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        g = (y * F.silu(z)).unflatten(-1, (self.groups, -1))
        g = g * torch.rsqrt(g.pow(2).mean(-1, keepdim=True) + self.eps)
        return g.flatten(-2) * self.weight
