"""White noise: independent variance on every observation, carried by no state."""

from __future__ import annotations

import jax.numpy as jnp

from .base import Kernel, register_kernel

__all__ = ["WhiteNoise"]


@register_kernel
class WhiteNoise(Kernel):
    """:math:`k(t_i, t_j) = \\sigma^2 [i = j]`, independent noise on each observation
    (scikit-learn's ``WhiteKernel``): it is added to the observation noise variance, so it has
    no state (state dimension 0) and may appear in a sum but not in a product. Two observations
    at the same time stamp get independent noise. ``kernel(t1)`` has :math:`\\sigma^2` on its
    diagonal; ``kernel(t1, t2)`` is zero (different inputs), as in scikit-learn.

    Parameters
    ----------
    variance : float
        :math:`\\sigma^2 > 0`.
    """

    hyperparameter_names = ("variance",)

    def __init__(self, variance=1.0):
        self._set_hyperparameters(variance=variance)

    @property
    def state_dim(self) -> int:
        return 0

    @property
    def white_noise_variance(self):
        return self.variance

    def evaluate(self, t1, t2):
        return jnp.zeros(jnp.broadcast_shapes(jnp.shape(t1), jnp.shape(t2)),
                         jnp.result_type(self.variance, 1.0))
