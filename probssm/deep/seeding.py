"""Seeds of the deep forecasters: one integer from ``random_state``, applied to torch's
generators inside a fork, so that a fit is reproducible and the caller's global torch state is
left as it was."""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from .. import _data

__all__ = ["seeded", "torch_seed"]


def torch_seed(random_state) -> int:
    """An int seed from ``None`` (fresh entropy), an int, or a ``numpy.random.Generator`` (one
    draw from it)."""
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        return int(random_state) % 2**63
    return int(_data.random_generator(random_state).integers(0, 2**63 - 1))


@contextlib.contextmanager
def seeded(seed: int, device: torch.device):
    """Run the block with torch's CPU generator (and ``device``'s, on CUDA) seeded by ``seed``,
    restoring the generators' states afterwards."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
