"""Sequence layers of deep state-space models, in PyTorch.

Every layer maps ``(batch, length, d_model)`` to ``(batch, length, d_model)``, takes per-step
time gaps ``dt`` and an observed ``mask`` (``(batch, length)``), can start from and return a
recurrent state (``forward(x, state=..., return_state=True)``), and has ``step(x_t, state)``, the
same computation one token at a time for streaming; ``initial_state(batch_size)`` is the zero
state.
"""

from .lru import LRU
from .mamba import Mamba, MambaState
from .mamba2 import Mamba2, Mamba2State
from .s4d import S4D

__all__ = ["Mamba", "MambaState", "Mamba2", "Mamba2State", "S4D", "LRU"]
