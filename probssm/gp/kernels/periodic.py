"""The periodic (exp-sine-squared) kernel as a sum of undamped oscillators, and the
quasi-periodic kernel, periodic times Matérn.

With :math:`x = \\ell^{-2}` and :math:`\\theta = \\omega_0 \\tau`, :math:`\\omega_0 = 2\\pi / p`,
:math:`2 \\sin^2(\\theta / 2) = 1 - \\cos\\theta` and the generating function of the modified
Bessel functions give (Solin & Särkkä 2014)

.. math::

    k(\\tau) = \\sigma^2 e^{-2 \\sin^2(\\pi \\tau / p) / \\ell^2}
    = \\sigma^2 e^{-x} e^{x \\cos\\theta}
    = \\sigma^2 \\sum_{j=0}^{\\infty} q_j^2 \\cos(j \\theta), \\qquad
    q_0^2 = e^{-x} I_0(x), \\quad q_j^2 = 2 e^{-x} I_j(x).

Every :math:`q_j^2 > 0` and :math:`\\sum_j q_j^2 = 1`, so keeping :math:`j \\le J` errs by
:math:`\\sum_{j > J} q_j^2 \\cos(j\\theta)`, largest at :math:`\\tau = 0`:
:math:`\\sup_\\tau |k_J - k| / \\sigma^2 = 1 - \\sum_{j \\le J} q_j^2`.
"""

from __future__ import annotations

import functools
import itertools
import math
import numbers

import jax
import jax.numpy as jnp
import numpy as np
from scipy import special

from .base import SDE, Kernel, Product, _is_concrete, register_kernel
from .cosine import generator, rotation
from .matern import Matern12, Matern32, Matern52, Matern72

__all__ = ["Periodic", "QuasiPeriodic"]

#: Smallest supported lengthscale: :math:`x = \\ell^{-2} \\le 100`. Smaller lengthscales need
#: many harmonics (:math:`J \\approx 3.5 \\sqrt{2x}` for tolerance 1e-6: 49 at the edge,
#: state dimension 99).
MIN_LENGTHSCALE = 0.1
# Terms of the power series of I_j: 90 reach 1e-15 at x = 100; 128 keep that down to
# lengthscale 0.08 (x = 150), for traced lengthscales a fit moves below the edge.
_SERIES_TERMS = 128
# Harmonics summed for a truncation error: 200 past the order (2 ive(200, 100) < 1e-80).
_TAIL_HARMONICS = 200
#: Smallest supported tolerance: the state-space covariance itself rounds at about 1e-14.
MIN_TOLERANCE = 1e-12


@functools.cache
def _series_constants(order: int) -> tuple[np.ndarray, np.ndarray]:
    """Exponents :math:`2m + j` and :math:`\\log(m! \\, (m + j)!)`, ``(terms, order + 1)``."""
    m = np.arange(_SERIES_TERMS)[:, None]
    j = np.arange(order + 1)[None, :]
    return (2 * m + j).astype(float), special.gammaln(m + 1) + special.gammaln(m + j + 1)


def harmonic_weights(lengthscale, order: int):
    """:math:`(q_0^2, \\dots, q_J^2)`, ``(order + 1,)``, differentiable in ``lengthscale``.

    :math:`e^{-x} I_j(x) = \\sum_m \\exp\\big((2m + j) \\log(x/2) - \\log(m! (m+j)!) -
    x\\big)`, summed in log space (``logsumexp``; every term is positive, so nothing cancels)
    with a fixed number of terms, accurate to 1e-14 for :math:`\\ell \\ge 0.1`.
    """
    exponents, log_factorials = _series_constants(order)
    dtype = jnp.result_type(lengthscale, 1.0)
    # log(x / 2) from log(lengthscale): finite for every positive lengthscale, also where x
    # itself underflows.
    log_half_x = -2.0 * jnp.log(lengthscale) - math.log(2.0)
    log_terms = (jnp.asarray(exponents, dtype) * log_half_x - jnp.asarray(log_factorials, dtype)
                 - 1.0 / lengthscale**2)
    scaled_bessel = jnp.exp(jax.nn.logsumexp(log_terms, axis=0))
    return scaled_bessel * jnp.asarray([1.0] + [2.0] * order, dtype)


def truncation_error(lengthscale: float, order: int) -> float:
    """:math:`1 - \\sum_{j \\le J} q_j^2`, summed from the tail (no cancellation)."""
    x = 1.0 / float(lengthscale) ** 2
    tail = 2.0 * special.ive(np.arange(order + 1, order + 1 + _TAIL_HARMONICS), x)
    return float(np.sum(tail[::-1]))


def _order_for(lengthscale: float, tolerance: float) -> int:
    # Ends: at the supported edges (lengthscale 0.1, tolerance 1e-12) J = 73.
    return next(J for J in itertools.count() if truncation_error(lengthscale, J) <= tolerance)


def _oscillators(first, blocks):
    """:math:`B_0 \\oplus B_1 \\oplus \\dots \\oplus B_J` from ``first`` ``(1, 1)`` and
    ``blocks`` ``(J, 2, 2)``: ``(2J + 1, 2J + 1)``, built without a Python loop over the
    harmonics (one operation whatever :math:`J`)."""
    J = blocks.shape[0]
    diagonal = jnp.einsum("jk,jab->jakb", jnp.eye(J, dtype=blocks.dtype), blocks).reshape(2 * J, 2 * J)
    return jax.scipy.linalg.block_diag(first, diagonal)


@register_kernel
class Periodic(Kernel):
    """Periodic kernel :math:`k(\\tau) = \\sigma^2 \\exp(-2 \\sin^2(\\pi \\tau / p) / \\ell^2)`
    (scikit-learn's ``ExpSineSquared``) through its first :math:`J + 1` harmonics (module
    docstring), state dimension :math:`2J + 1`.

    Harmonic 0 is a constant, harmonic :math:`j \\ge 1` an undamped oscillator of frequency
    :math:`j \\omega_0`; no driving noise, so

    .. math::

        F = 0 \\oplus \\omega_0 S \\oplus \\dots \\oplus J \\omega_0 S, \\quad
        P_\\infty = \\sigma^2 (q_0^2 \\oplus q_1^2 I_2 \\oplus \\dots \\oplus q_J^2 I_2), \\quad
        H = (1, 1, 0, \\dots, 1, 0),

    with :math:`S = \\begin{pmatrix} 0 & -1 \\\\ 1 & 0 \\end{pmatrix}`;
    :math:`A(\\Delta) = 1 \\oplus R(\\omega_0 \\Delta) \\oplus \\dots \\oplus R(J \\omega_0
    \\Delta)` with the rotations :math:`R(\\theta) = e^{\\theta S}` (exact) and :math:`Q = 0`;
    ``noise_effect`` and ``spectral_density`` are zero ``(n, 1)`` and ``(1, 1)``.

    **Accuracy.** :math:`\\sup_\\tau |k_J(\\tau) - k(\\tau)| / \\sigma^2 = 1 - \\sum_{j \\le J}
    q_j^2` (:attr:`truncation_error`), which depends on :math:`\\ell` alone. ``order=None``
    picks the smallest :math:`J` meeting ``tolerance`` at the lengthscale given here: e.g. for
    1e-6, :math:`J` = 2 (:math:`\\ell` = 10), 7 (1), 17 (0.3), 49 (0.1). The order stays fixed
    afterwards, so the bound holds while a fit keeps the lengthscale at or above its initial
    value and loosens below it. Supported: :math:`\\ell \\ge 0.1` and tolerance in
    :math:`[10^{-12}, 1)`; the Bessel weights are computed to 1e-14 there, by a power series of
    a fixed number of terms that is differentiable in :math:`\\ell`.

    Parameters
    ----------
    period : float
        :math:`p > 0`, in the units of the time stamps.
    lengthscale : float
        :math:`\\ell \\ge 0.1`, relative to the period (dimensionless), keyword only.
    variance : float
        :math:`\\sigma^2 > 0`, keyword only.
    order : int, optional
        :math:`J \\ge 0`, the highest harmonic; by default the smallest meeting ``tolerance``.
    tolerance : float
        Bound on the relative sup-norm covariance error when ``order`` is not given.
    """

    hyperparameter_names = ("variance", "period", "lengthscale")
    static_names = ("order", "tolerance")

    def __init__(self, period=1.0, *, lengthscale=1.0, variance=1.0, order=None, tolerance=1e-6):
        self._set_hyperparameters(variance=variance, period=period, lengthscale=lengthscale)
        if _is_concrete(lengthscale) and float(lengthscale) < MIN_LENGTHSCALE:
            raise ValueError(f"Periodic: lengthscale={float(lengthscale):g} is below the supported "
                             f"{MIN_LENGTHSCALE} (the number of harmonics grows like 1/lengthscale)")
        if not isinstance(tolerance, numbers.Real) or not MIN_TOLERANCE <= tolerance < 1:
            raise ValueError(f"Periodic: tolerance must be in [{MIN_TOLERANCE:g}, 1), got {tolerance!r}")
        if order is None:
            order = _order_for(float(lengthscale), float(tolerance))
        elif isinstance(order, bool) or not isinstance(order, numbers.Integral) or order < 0:
            raise ValueError(f"Periodic: order must be a non-negative integer, got {order!r}")
        object.__setattr__(self, "order", int(order))
        object.__setattr__(self, "tolerance", float(tolerance))

    @property
    def state_dim(self) -> int:
        return 2 * self.order + 1

    @property
    def truncation_error(self) -> float:
        """:math:`\\sup_\\tau |k_J(\\tau) - k(\\tau)| / \\sigma^2` at this order and the
        (concrete) lengthscale."""
        return truncation_error(self.lengthscale, self.order)

    def _static_repr(self) -> list[str]:
        return [f"order={self.order}"]

    def _frequencies(self, dtype):
        """:math:`(\\omega_0, 2\\omega_0, \\dots, J\\omega_0)`, ``(J,)``."""
        return 2 * math.pi / self.period * jnp.arange(1, self.order + 1, dtype=dtype)

    def _dtype(self, *extra):
        return jnp.result_type(self.variance, self.period, self.lengthscale, *extra, 1.0)

    def sde(self) -> SDE:
        dtype = self._dtype()
        n = self.state_dim
        generators = self._frequencies(dtype)[:, None, None] * generator(1.0, dtype)
        feedback = _oscillators(jnp.zeros((1, 1), dtype), generators)
        return SDE(feedback, jnp.zeros((n, 1), dtype), jnp.zeros((1, 1), dtype),
                   self.measurement(), self.marginal_cov(None))

    def measurement(self):
        H = np.zeros(self.state_dim)
        H[::2] = 1.0
        return jnp.asarray(H, self._dtype())

    def marginal_cov(self, t):
        weights = harmonic_weights(self.lengthscale, self.order)
        return self.variance * jnp.diag(jnp.concatenate([weights[:1], jnp.repeat(weights[1:], 2)]))

    def stationary_transition_matrix(self, dt):
        dtype = self._dtype(dt)
        return _oscillators(jnp.ones((1, 1), dtype), rotation(self._frequencies(dtype) * dt))

    def transition(self, t, dt):
        A = self.stationary_transition_matrix(dt)
        return A, jnp.zeros_like(A)

    def evaluate(self, t1, t2):
        s = jnp.sin(math.pi * (t1 - t2) / self.period) / self.lengthscale
        return self.variance * jnp.exp(-2.0 * s * s)


_MATERNS = {cls.__name__: cls for cls in (Matern12, Matern32, Matern52, Matern72)}


def _matern_name(matern) -> str:
    """The Matérn's class name (static settings stay JSON-ready) from a class, name or smoothness."""
    if isinstance(matern, numbers.Real) and not isinstance(matern, bool):
        matern = {0.5: "Matern12", 1.5: "Matern32", 2.5: "Matern52", 3.5: "Matern72"}.get(float(matern), matern)
    if isinstance(matern, type) and _MATERNS.get(matern.__name__) is matern:
        return matern.__name__
    if isinstance(matern, str) and matern in _MATERNS:
        return matern
    raise ValueError(f"QuasiPeriodic: matern must be one of Matern12, Matern32, Matern52, Matern72 "
                     f"(class or name) or a smoothness in (0.5, 1.5, 2.5, 3.5), got {matern!r}")


def _rebuild(cls, **attributes):
    """An instance from (possibly traced) values, without ``__init__``'s checks."""
    kernel = object.__new__(cls)
    for name, value in attributes.items():
        object.__setattr__(kernel, name, value)
    return kernel


@register_kernel
class QuasiPeriodic(Kernel):
    """Quasi-periodic kernel: a periodic pattern whose shape drifts over time,

    .. math::

        k(\\tau) = \\sigma^2 \\exp\\big(-2 \\sin^2(\\pi \\tau / p) / \\ell^2\\big) \\,
        k_\\nu(\\tau; \\ell_d),

    with :math:`k_\\nu` the unit-variance Matérn kernel of lengthscale :math:`\\ell_d` (the
    decay). It is the :class:`~probssm.gp.kernels.base.Product` of :class:`Periodic` and the
    Matérn (:attr:`product`): state dimension :math:`(2J + 1)(p_\\nu + 1)`, exact closed-form
    transition (rotations times the Matérn's), the periodic factor's accuracy statement
    unchanged (the Matérn factor is at most 1).

    Parameters
    ----------
    period : float
        :math:`p > 0`.
    lengthscale : float
        :math:`\\ell \\ge 0.1`, the periodic factor's, keyword only.
    variance : float
        :math:`\\sigma^2 > 0`, keyword only.
    decay : float, optional
        :math:`\\ell_d > 0`, how long the pattern keeps its shape, in the units of the time
        stamps; default ten periods.
    matern : Matern12, Matern32, Matern52 or Matern72 (class or name), or its smoothness
        0.5, 1.5, 2.5, 3.5
        The decay's Matérn kernel (default ``Matern32``); stored as the class name.
    order, tolerance
        As for :class:`Periodic`.
    """

    hyperparameter_names = ("variance", "period", "lengthscale", "decay")
    static_names = ("matern", "order", "tolerance")

    def __init__(self, period=1.0, *, lengthscale=1.0, variance=1.0, decay=None, matern=Matern32,
                 order=None, tolerance=1e-6):
        matern = _matern_name(matern)
        decay = 10 * period if decay is None else decay
        self._set_hyperparameters(variance=variance, period=period, lengthscale=lengthscale, decay=decay)
        # The periodic factor checks the lengthscale's range and chooses the order.
        periodic = Periodic(period, lengthscale=lengthscale, variance=variance, order=order,
                            tolerance=tolerance)
        object.__setattr__(self, "matern", matern)
        object.__setattr__(self, "order", periodic.order)
        object.__setattr__(self, "tolerance", periodic.tolerance)

    @property
    def product(self) -> Product:
        """``Periodic(...) * Matern(decay, variance=1)``, the kernel this one delegates to."""
        periodic = _rebuild(Periodic, variance=self.variance, period=self.period,
                            lengthscale=self.lengthscale, order=self.order, tolerance=self.tolerance)
        return Product(periodic, _rebuild(_MATERNS[self.matern], variance=1.0, lengthscale=self.decay))

    @property
    def truncation_error(self) -> float:
        """The periodic factor's :attr:`Periodic.truncation_error`."""
        return truncation_error(self.lengthscale, self.order)

    def _static_repr(self) -> list[str]:
        return [f"matern={self.matern}", f"order={self.order}"]

    @property
    def state_dim(self) -> int:
        return self.product.state_dim

    def sde(self) -> SDE:
        return self.product.sde()

    def measurement(self):
        return self.product.measurement()

    def marginal_cov(self, t):
        return self.product.marginal_cov(t)

    def transition(self, t, dt):
        return self.product.transition(t, dt)

    def evaluate(self, t1, t2):
        return self.product.evaluate(t1, t2)
