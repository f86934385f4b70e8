"""The fused GPU kernels of the linear-Gaussian engine (Pallas: Triton on a GPU, the Pallas
interpreter on a CPU), each beside the pure reference it is tested against.

Nothing is imported here: the kernels load with :mod:`probssm.kalman.inference`, which uses
them for ``method="kernel"``.
"""
