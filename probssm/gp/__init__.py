"""Gaussian-process state-space models: kernels as SDEs, exact O(T) inference through
:mod:`probssm.kalman`."""

from .kernels import *  # noqa: F403
from .kernels import __all__ as _kernel_names

__all__ = [*_kernel_names]
