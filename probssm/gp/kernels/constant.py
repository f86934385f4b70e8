"""The constant kernel: a random offset shared by every time stamp."""

from __future__ import annotations

import jax.numpy as jnp

from .base import SDE, Kernel, register_kernel

__all__ = ["Constant"]


@register_kernel
class Constant(Kernel):
    """:math:`k(s, t) = \\sigma^2`: :math:`f(t) = c` with :math:`c \\sim N(0, \\sigma^2)`
    (scikit-learn's ``ConstantKernel``). State dimension 1, :math:`F = 0`, no noise:
    :math:`A = 1`, :math:`Q = 0`, :math:`P_\\infty = \\sigma^2`.

    ``number * kernel`` is ``Constant(variance=number) * kernel`` and ``kernel + number`` is
    ``kernel + Constant(variance=number)``.

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
        return 1

    def sde(self) -> SDE:
        dtype = jnp.result_type(self.variance, 1.0)
        zero = jnp.zeros((1, 1), dtype)
        return SDE(zero, zero, zero, jnp.ones(1, dtype), jnp.reshape(self.variance, (1, 1)).astype(dtype))

    def stationary_transition_matrix(self, dt):
        return jnp.ones((1, 1), jnp.result_type(dt, self.variance, 1.0))

    def evaluate(self, t1, t2):
        return self.variance * jnp.ones(jnp.broadcast_shapes(jnp.shape(t1), jnp.shape(t2)))
