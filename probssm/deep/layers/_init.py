"""Initialisations shared by the selective layers."""

from __future__ import annotations

import math

import torch


def step_size_bias(n: int, dt_min: float, dt_max: float, floor: float, *, device=None,
                   dtype=None) -> torch.Tensor:
    r"""Biases :math:`\beta` with :math:`\operatorname{softplus}(\beta)` log-uniform in
    ``[dt_min, dt_max]`` (at least ``floor``): the initial step sizes span time scales from
    ``1 / dt_max`` to ``1 / dt_min`` steps (Gu & Dao 2023, section 3.6)."""
    if not 0 < dt_min <= dt_max:
        raise ValueError(f"need 0 < dt_min <= dt_max, got dt_min={dt_min}, dt_max={dt_max}")
    u = torch.rand(n, device=device, dtype=torch.float32)
    dt = torch.exp(u * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)).clamp(min=floor)
    # Inverse of softplus: dt + log(1 - exp(-dt)).
    return (dt + torch.log(-torch.expm1(-dt))).to(dtype or torch.get_default_dtype())
