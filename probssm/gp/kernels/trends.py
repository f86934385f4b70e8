"""Non-stationary trend kernels: a random straight line, the Wiener process and its integrals
(the polynomial-trend and cubic-spline priors).

Their prior covariance :math:`P(t)` depends on time, so ``sde().stationary_cov`` is ``None`` and
each kernel gives :math:`P(t)` and :math:`Q(t, \\Delta)` in closed forms that never subtract
two large numbers (:math:`Q` is not computed as :math:`P(t + \\Delta) - A P(t) A^T`).
"""

from __future__ import annotations

import functools
import math
import numbers

import jax.numpy as jnp
import numpy as np

from .base import SDE, Kernel, _is_concrete, register_kernel

__all__ = ["IntegratedWiener", "Linear", "Wiener"]


def _check_real(kernel: str, name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{kernel}: {name} must be a finite real number, got {value!r}")
    return float(value)


def _powers(x, count: int) -> list:
    """:math:`[1, x, \\dots, x^{count - 1}]` by products: the gradient of a float power is NaN
    at :math:`x = 0` (a zero gap between repeated time stamps)."""
    out = [jnp.ones_like(x)]
    for _ in range(count - 1):
        out.append(out[-1] * x)
    return out


@register_kernel
class Linear(Kernel):
    """:math:`k(s, t) = \\sigma^2 (s - c)(t - c)`: :math:`f(t) = b \\, (t - c)` with a random
    slope :math:`b \\sim N(0, \\sigma^2)` through the offset :math:`c` (scikit-learn's
    ``DotProduct`` with ``sigma_0=0`` when :math:`c = 0`). Exact, state :math:`(f, f')`,
    dimension 2, no driving noise:

    .. math::

        F = \\begin{pmatrix} 0 & 1 \\\\ 0 & 0 \\end{pmatrix}, \\quad H = (1, 0), \\quad
        A(\\Delta) = \\begin{pmatrix} 1 & \\Delta \\\\ 0 & 1 \\end{pmatrix}, \\quad Q = 0,
        \\quad P(t) = \\sigma^2 \\begin{pmatrix} (t - c)^2 & t - c \\\\ t - c & 1 \\end{pmatrix}.

    Add a :class:`~probssm.gp.Constant` for a random intercept too.

    Parameters
    ----------
    variance : float
        :math:`\\sigma^2 > 0`, the slope's variance.
    offset : float
        :math:`c`, where the line is pinned to zero; keyword only, static.
    """

    hyperparameter_names = ("variance",)
    static_names = ("offset",)
    stationary = False

    def __init__(self, variance=1.0, *, offset=0.0):
        self._set_hyperparameters(variance=variance)
        object.__setattr__(self, "offset", _check_real("Linear", "offset", offset))

    @property
    def state_dim(self) -> int:
        return 2

    def _static_repr(self) -> list[str]:
        return [f"offset={self.offset:g}"]

    def sde(self) -> SDE:
        dtype = jnp.result_type(self.variance, 1.0)
        return SDE(jnp.asarray([[0.0, 1.0], [0.0, 0.0]], dtype), jnp.zeros((2, 1), dtype),
                   jnp.zeros((1, 1), dtype), jnp.asarray([1.0, 0.0], dtype), None)

    def marginal_cov(self, t):
        u = jnp.asarray(t, jnp.result_type(t, self.variance, 1.0)) - self.offset
        return self.variance * jnp.stack([jnp.stack([u * u, u]), jnp.stack([u, jnp.ones_like(u)])])

    def transition(self, t, dt):
        dt = jnp.asarray(dt, jnp.result_type(t, dt, self.variance, 1.0))
        A = jnp.stack([jnp.stack([jnp.ones_like(dt), dt]), jnp.stack([jnp.zeros_like(dt), jnp.ones_like(dt)])])
        return A, jnp.zeros_like(A)

    def evaluate(self, t1, t2):
        return self.variance * (t1 - self.offset) * (t2 - self.offset)


@functools.cache
def _constants(q: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For state dimension :math:`n = q + 1`: :math:`N^k / k!` (``(n, n, n)``, :math:`N` the
    shift), and the exponents :math:`e_{ij} = 2q + 1 - i - j` and coefficients
    :math:`1 / (e_{ij} (q - i)! (q - j)!)` of :math:`Q` (each ``(n, n)``)."""
    n = q + 1
    shift = np.diag(np.ones(q), 1)
    powers = [np.eye(n)]
    for k in range(1, n):
        powers.append(powers[-1] @ shift / k)
    i, j = np.indices((n, n))
    exponents = 2 * q + 1 - i - j
    factorials = np.vectorize(math.factorial)
    return np.stack(powers), exponents, 1.0 / (exponents * factorials(q - i) * factorials(q - j))


@register_kernel
class IntegratedWiener(Kernel):
    """The :math:`q`-times integrated Wiener process started at zero at the origin :math:`o`,
    :math:`f^{(q)} = \\sigma W`, :math:`f^{(j)}(o) = 0`; ``order=1`` is the cubic-smoothing-
    spline prior. For :math:`s, t \\ge o`, with :math:`m = \\min(s, t) - o` and
    :math:`d = |s - t|`,

    .. math::

        k(s, t) = \\sigma^2 \\int_0^m \\frac{(s - o - u)^q (t - o - u)^q}{(q!)^2} \\, \\mathrm d u
        = \\frac{\\sigma^2}{(q!)^2} \\sum_{k=0}^{q} \\binom{q}{k}
          \\frac{d^{\\,q - k} \\, m^{q + k + 1}}{q + k + 1}

    (:math:`q = 1`: :math:`\\sigma^2 (m^3/3 + d \\, m^2 / 2)`). Exact, state :math:`(f, f',
    \\dots, f^{(q)})`, dimension :math:`q + 1`: :math:`F` the shift (ones above the diagonal),
    :math:`L = e_q`, :math:`Q_c = \\sigma^2`, :math:`H = e_0`,

    .. math::

        A(\\Delta)_{ij} = \\frac{\\Delta^{j - i}}{(j - i)!} \\; (j \\ge i), \\qquad
        Q(\\Delta)_{ij} = \\sigma^2 \\frac{\\Delta^{2q + 1 - i - j}}{(2q + 1 - i - j)(q - i)! \\,
        (q - j)!}, \\qquad P(t) = Q(t - o).

    Times before the origin raise ``ValueError`` wherever they are concrete (``kernel(t)``,
    :meth:`marginal_cov`, :meth:`transition`). Traced times are not checked: there the process
    is taken as zero before the origin (:math:`m = \\max(\\min(s, t) - o, 0)`, and :math:`Q`
    covers only the part of a step after the origin), which is still a valid covariance.

    Parameters
    ----------
    variance : float
        :math:`\\sigma^2 > 0`, the diffusion of :math:`f^{(q)}`.
    order : int
        :math:`q \\ge 0` (default 1; 0 is :class:`Wiener`), keyword only, static.
    origin : float
        :math:`o`, keyword only, static.
    """

    hyperparameter_names = ("variance",)
    static_names = ("order", "origin")
    stationary = False

    def __init__(self, variance=1.0, *, order=1, origin=0.0):
        self._set_hyperparameters(variance=variance)
        if isinstance(order, bool) or not isinstance(order, numbers.Integral) or order < 0:
            raise ValueError(f"{type(self).__name__}: order must be a non-negative integer, got {order!r}")
        object.__setattr__(self, "order", int(order))
        object.__setattr__(self, "origin", _check_real(type(self).__name__, "origin", origin))

    @property
    def state_dim(self) -> int:
        return self.order + 1

    def _static_repr(self) -> list[str]:
        return [f"order={self.order}", f"origin={self.origin:g}"]

    def _check_times(self, **times):
        for name, t in times.items():
            if not _is_concrete(t):
                continue
            values = np.asarray(t).reshape(-1)
            before = np.flatnonzero(values < self.origin)
            if before.size:
                raise ValueError(
                    f"{type(self).__name__}: {name} has a time before the origin {self.origin:g} "
                    f"(position {int(before[0])}: {values[before[0]]:g}); the process starts there")

    def _dtype(self, *times):
        return jnp.result_type(*times, self.variance, 1.0)

    def sde(self) -> SDE:
        dtype = self._dtype()
        n, q = self.state_dim, self.order
        L = np.zeros((n, 1))
        L[q, 0] = 1.0
        return SDE(jnp.asarray(np.diag(np.ones(q), 1), dtype), jnp.asarray(L, dtype),
                   jnp.reshape(self.variance, (1, 1)).astype(dtype),
                   jnp.asarray(np.eye(n)[0], dtype), None)

    def _noise(self, length):
        """:math:`Q` over a stretch of ``length``: ``(n, n)``."""
        _, exponents, coefficients = _constants(self.order)
        powers = jnp.stack(_powers(length, 2 * self.order + 2))
        return self.variance * jnp.asarray(coefficients, length.dtype) * powers[exponents]

    def marginal_cov(self, t):
        self._check_times(t=t)
        t = jnp.asarray(t, self._dtype(t))
        return self._noise(jnp.maximum(t - self.origin, 0))

    def transition(self, t, dt):
        self._check_times(t=t)
        dtype = self._dtype(t, dt)
        t, dt = jnp.asarray(t, dtype), jnp.asarray(dt, dtype)
        shift_powers, _, _ = _constants(self.order)
        A = jnp.tensordot(jnp.stack(_powers(dt, self.order + 1)), jnp.asarray(shift_powers, dtype), axes=1)
        # The part of the step after the origin: all of dt for t >= origin (exactly, nothing
        # subtracted), less only when a traced t lies before it.
        after_origin = dt - jnp.clip(self.origin - t, 0, dt)
        Q = self._noise(after_origin)
        return A, Q

    def evaluate(self, t1, t2):
        self._check_times(t1=t1, t2=t2)
        q = self.order
        m = jnp.maximum(jnp.minimum(t1, t2) - self.origin, 0)
        d = jnp.abs(t1 - t2)
        # Python-int exponents (integer powers): finite gradients at m = 0 or d = 0.
        total = sum(math.comb(q, k) / (q + k + 1) * d ** (q - k) * m ** (q + k + 1) for k in range(q + 1))
        return self.variance / math.factorial(q) ** 2 * total


@register_kernel
class Wiener(IntegratedWiener):
    """The Wiener process (Brownian motion) started at zero at the origin :math:`o`:
    :math:`k(s, t) = \\sigma^2 \\min(s - o, t - o)` for :math:`s, t \\ge o`. Exact, state
    dimension 1: :math:`F = 0`, :math:`L = H = 1`, :math:`Q_c = \\sigma^2`,
    :math:`A = 1`, :math:`Q(\\Delta) = \\sigma^2 \\Delta`, :math:`P(t) = \\sigma^2 (t - o)`.
    ``IntegratedWiener(order=0)``; times before the origin as there (``ValueError`` where
    concrete, zero process where traced).

    Parameters
    ----------
    variance : float
        :math:`\\sigma^2 > 0`.
    origin : float
        :math:`o`, keyword only, static.
    """

    static_names = ("origin",)
    order = 0

    def __init__(self, variance=1.0, *, origin=0.0):
        super().__init__(variance, order=0, origin=origin)

    def _static_repr(self) -> list[str]:
        return [f"origin={self.origin:g}"]
