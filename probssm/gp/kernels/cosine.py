"""The cosine kernel: a sinusoid of fixed frequency with random amplitude and phase."""

from __future__ import annotations

import math

import jax.numpy as jnp

from .base import SDE, Kernel, register_kernel

__all__ = ["Cosine"]


def rotation(angle):
    """:math:`R(\\theta) = \\begin{pmatrix} \\cos\\theta & -\\sin\\theta \\\\ \\sin\\theta &
    \\cos\\theta \\end{pmatrix} = e^{\\theta J}`, :math:`J = \\begin{pmatrix} 0 & -1 \\\\ 1 & 0
    \\end{pmatrix}`; ``angle`` of shape ``(...)`` gives ``(..., 2, 2)``."""
    c, s = jnp.cos(angle), jnp.sin(angle)
    return jnp.stack([jnp.stack([c, -s], -1), jnp.stack([s, c], -1)], -2)


def generator(frequency, dtype):
    """:math:`\\omega J`, the feedback of an undamped oscillator; ``(2, 2)``."""
    return frequency * jnp.asarray([[0.0, -1.0], [1.0, 0.0]], dtype)


@register_kernel
class Cosine(Kernel):
    """:math:`k(\\tau) = \\sigma^2 \\cos(\\omega \\tau)`, :math:`\\omega = 2\\pi / p`:
    :math:`f(t) = a \\cos(\\omega t) + b \\sin(\\omega t)` with independent
    :math:`a, b \\sim N(0, \\sigma^2)`. Exact, state dimension 2:

    .. math::

        F = \\omega \\begin{pmatrix} 0 & -1 \\\\ 1 & 0 \\end{pmatrix}, \\quad
        H = (1, 0), \\quad P_\\infty = \\sigma^2 I_2, \\quad
        A(\\Delta) = R(\\omega \\Delta), \\quad Q = 0

    (a rotation; no driving noise, ``noise_effect`` and ``spectral_density`` are zero
    ``(2, 1)`` and ``(1, 1)``).

    Parameters
    ----------
    period : float
        :math:`p > 0`, in the units of the time stamps.
    variance : float
        :math:`\\sigma^2 > 0`, keyword only.
    """

    hyperparameter_names = ("variance", "period")

    def __init__(self, period=1.0, *, variance=1.0):
        self._set_hyperparameters(variance=variance, period=period)

    @property
    def state_dim(self) -> int:
        return 2

    @property
    def frequency(self):
        """:math:`\\omega = 2\\pi / p`."""
        return 2 * math.pi / self.period

    def sde(self) -> SDE:
        dtype = jnp.result_type(self.period, self.variance, 1.0)
        return SDE(
            feedback=generator(self.frequency, dtype),
            noise_effect=jnp.zeros((2, 1), dtype),
            spectral_density=jnp.zeros((1, 1), dtype),
            measurement=jnp.asarray([1.0, 0.0], dtype),
            stationary_cov=self.variance * jnp.eye(2, dtype=dtype),
        )

    def stationary_transition_matrix(self, dt):
        return rotation(self.frequency * dt)

    def transition(self, t, dt):
        A = self.stationary_transition_matrix(dt)
        return A, jnp.zeros_like(A)

    def evaluate(self, t1, t2):
        return self.variance * jnp.cos(self.frequency * (t1 - t2))
