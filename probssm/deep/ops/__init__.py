"""Sequence operators of the deep state-space layers, in PyTorch.

- :func:`selective_scan`: Mamba's selective scan with per-step time gaps and missing steps;
- :func:`ssd`: the chunked state-space-duality scan of Mamba-2 (scalar decay per head), in matmuls;
- :func:`linear_scan`: the diagonal linear recurrence both reduce to, parallel over time.

Each operator is pure PyTorch and differentiable by autograd (the CPU path and the reference);
:func:`selective_scan_kernel` is the selective scan as fused Triton kernels (optional: Triton).
"""

from .recurrence import linear_scan
from .selective import selective_scan
from .selective_kernel import kernel_available, selective_scan_kernel
from .selective_reference import selective_scan_ref
from .duality import ssd

__all__ = ["selective_scan", "selective_scan_ref", "selective_scan_kernel", "kernel_available",
           "ssd", "linear_scan"]
