"""Matérn kernels of half-integer smoothness :math:`\\nu = p + 1/2`: exact SDEs of order ``p + 1``.

.. math::

    k(\\tau) = \\sigma^2 e^{-u} \\frac{p!}{(2p)!} \\sum_{i=0}^{p}
    \\frac{(p + i)!}{i! \\, (p - i)!} (2u)^{p - i},
    \\qquad u = \\lambda |\\tau|, \\quad \\lambda = \\frac{\\sqrt{2\\nu}}{\\ell}.

Its spectral density is proportional to :math:`(\\lambda^2 + \\omega^2)^{-(p + 1)}`, so :math:`f`
solves :math:`(\\mathrm d/\\mathrm dt + \\lambda)^{p + 1} f = w` with white noise :math:`w`. The
state holds the scaled derivatives :math:`z_j = f^{(j)} / \\lambda^j`, :math:`j = 0..p`, which
keeps every matrix of order one whatever the lengthscale: :math:`F = \\lambda C` with the
companion matrix :math:`C` of :math:`(s + 1)^{p + 1}`, :math:`P_\\infty = \\sigma^2 \\hat P` with a
constant :math:`\\hat P` (unit variance in :math:`z_0`), and since :math:`N = C + I` is nilpotent
the discretisation is exact and closed:

.. math::

    A(\\Delta) = e^{-\\lambda \\Delta} \\sum_{j=0}^{p} \\frac{(\\lambda \\Delta)^j}{j!} N^j .
"""

from __future__ import annotations

import functools
import math

import jax.numpy as jnp
import numpy as np
from scipy import linalg

from .base import SDE, Kernel, register_kernel

__all__ = ["Matern12", "Matern32", "Matern52", "Matern72"]


@functools.cache
def _companion(p: int) -> np.ndarray:
    """:math:`C`, the companion matrix of :math:`(s + 1)^{p + 1}`, shape ``(p + 1, p + 1)``."""
    n = p + 1
    C = np.diag(np.ones(n - 1), 1)
    C[-1, :] = [-math.comb(n, j) for j in range(n)]
    return C


@functools.cache
def _unit_stationary_cov(p: int) -> tuple[np.ndarray, float]:
    """:math:`\\hat P` (stationary covariance of the scaled state, :math:`\\hat P_{00} = 1`) and
    the white-noise intensity :math:`c` it takes per unit :math:`\\lambda \\sigma^2`
    (:math:`C \\hat P + \\hat P C^T + c \\, e_p e_p^T = 0`)."""
    n = p + 1
    noise = np.zeros((n, n))
    noise[-1, -1] = 1.0
    P = linalg.solve_continuous_lyapunov(_companion(p), -noise)
    return P / P[0, 0], 1.0 / P[0, 0]


@functools.cache
def _nilpotent_powers(p: int) -> np.ndarray:
    """:math:`N^j / j!` for :math:`j = 0..p`, shape ``(p + 1, p + 1, p + 1)``."""
    N = _companion(p) + np.eye(p + 1)
    powers = [np.eye(p + 1)]
    for j in range(1, p + 1):
        powers.append(powers[-1] @ N / j)
    return np.stack(powers)


class _Matern(Kernel):
    """Matérn kernel with :math:`\\nu = p + 1/2` (``p`` set by the subclass)."""

    hyperparameter_names = ("variance", "lengthscale")
    p: int = 0

    def __init__(self, lengthscale=1.0, *, variance=1.0):
        self._set_hyperparameters(variance=variance, lengthscale=lengthscale)

    @property
    def state_dim(self) -> int:
        return self.p + 1

    @property
    def rate(self):
        """:math:`\\lambda = \\sqrt{2 \\nu} / \\ell`."""
        return math.sqrt(2 * self.p + 1) / self.lengthscale

    def sde(self) -> SDE:
        P_hat, intensity = _unit_stationary_cov(self.p)
        dtype = jnp.result_type(self.lengthscale, self.variance, 1.0)
        n = self.state_dim
        L = np.zeros((n, 1))
        L[-1, 0] = 1.0
        H = np.zeros(n)
        H[0] = 1.0
        return SDE(
            feedback=self.rate * jnp.asarray(_companion(self.p), dtype),
            noise_effect=jnp.asarray(L, dtype),
            spectral_density=jnp.reshape(intensity * self.rate * self.variance, (1, 1)).astype(dtype),
            measurement=jnp.asarray(H, dtype),
            stationary_cov=self.variance * jnp.asarray(P_hat, dtype),
        )

    def stationary_transition_matrix(self, dt):
        x = self.rate * dt
        powers = jnp.asarray(_nilpotent_powers(self.p), jnp.result_type(x, 1.0))
        # Powers by products, not x ** j: the gradient of a float power is NaN at x = 0 (dt = 0
        # between repeated time stamps).
        coefficients = [jnp.ones_like(x)]
        for _ in range(self.p):
            coefficients.append(coefficients[-1] * x)
        # a sum of scaled constant matrices (elementwise; a tensordot would be a dot_general,
        # slow under vmap on a GPU, see Kernel.transition)
        return jnp.exp(-x) * sum(c * power for c, power in zip(coefficients, powers))

    def evaluate(self, t1, t2):
        u = self.rate * jnp.abs(t1 - t2)
        p = self.p
        polynomial = sum(
            math.factorial(p) / math.factorial(2 * p) * math.factorial(p + i)
            / (math.factorial(i) * math.factorial(p - i)) * (2 * u) ** (p - i)
            for i in range(p + 1)
        )
        return self.variance * jnp.exp(-u) * polynomial


@register_kernel
class Matern12(_Matern):
    """Matérn-1/2 (exponential, Ornstein-Uhlenbeck) kernel, state dimension 1:
    :math:`k(\\tau) = \\sigma^2 e^{-|\\tau| / \\ell}`.

    Parameters
    ----------
    lengthscale : float
        :math:`\\ell > 0`, in the units of the time stamps.
    variance : float
        :math:`\\sigma^2 > 0`, keyword only.
    """

    p = 0


@register_kernel
class Matern32(_Matern):
    """Matérn-3/2 kernel, state dimension 2:
    :math:`k(\\tau) = \\sigma^2 (1 + \\sqrt3 |\\tau| / \\ell) e^{-\\sqrt 3 |\\tau| / \\ell}`.

    Parameters
    ----------
    lengthscale : float
        :math:`\\ell > 0`.
    variance : float
        :math:`\\sigma^2 > 0`, keyword only.
    """

    p = 1


@register_kernel
class Matern52(_Matern):
    """Matérn-5/2 kernel, state dimension 3:
    :math:`k(\\tau) = \\sigma^2 (1 + \\sqrt5 r + 5 r^2 / 3) e^{-\\sqrt 5 r}`, :math:`r = |\\tau| / \\ell`.

    Parameters
    ----------
    lengthscale : float
        :math:`\\ell > 0`.
    variance : float
        :math:`\\sigma^2 > 0`, keyword only.
    """

    p = 2


@register_kernel
class Matern72(_Matern):
    """Matérn-7/2 kernel, state dimension 4:
    :math:`k(\\tau) = \\sigma^2 (1 + \\sqrt7 r + 14 r^2 / 5 + 7 \\sqrt 7 r^3 / 15) e^{-\\sqrt 7 r}`,
    :math:`r = |\\tau| / \\ell`.

    Parameters
    ----------
    lengthscale : float
        :math:`\\ell > 0`.
    variance : float
        :math:`\\sigma^2 > 0`, keyword only.
    """

    p = 3
