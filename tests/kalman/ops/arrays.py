"""Array helpers shared by the kernel tests."""

import numpy as np


def max_rel(a, b):
    """Largest absolute difference of ``a`` from ``b`` relative to ``b``'s largest entry."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30)


def psd(rng, shape, n, scale=1.0):
    """Random symmetric positive definite ``(*shape, n, n)`` matrices."""
    a = rng.normal(size=shape + (n, n))
    return scale * (a @ np.swapaxes(a, -1, -2) / n + 0.1 * np.eye(n))
