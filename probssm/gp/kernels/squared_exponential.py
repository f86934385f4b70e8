"""The squared-exponential (RBF) kernel through a rational approximation of its spectral density.

.. math::

    k(\\tau) = \\sigma^2 e^{-\\tau^2 / (2 \\ell^2)}, \\qquad
    S(\\omega) = \\sigma^2 \\sqrt{2\\pi} \\, \\ell \\, e^{-\\ell^2 \\omega^2 / 2}.

:math:`S` is not rational, so no finite SDE has this covariance. Hartikainen & Särkkä (2010)
truncate the Taylor series of its reciprocal,

.. math::

    S_N(\\omega) \\propto \\Big[ \\sum_{n=0}^{N} \\frac{(\\ell^2 \\omega^2 / 2)^n}{n!} \\Big]^{-1}
    = \\frac{1}{|q(i \\ell \\omega)|^2},

where :math:`q` is the stable spectral factor: the denominator is :math:`e_N(-u^2/2)` in
:math:`u = \\ell s` with :math:`e_N` the truncated exponential series, whose roots :math:`x_i`
give the left-half-plane roots :math:`u_i = -\\sqrt{-2 x_i}` of :math:`q`. They depend on
:math:`N` only and are computed once per order; the roots for lengthscale :math:`\\ell` are
:math:`u_i / \\ell`. :math:`f` then solves :math:`q(\\ell \\, \\mathrm d/\\mathrm dt) f = w`,
an SDE of order :math:`N`.
"""

from __future__ import annotations

import functools
import math
import numbers

import jax
import jax.numpy as jnp
import numpy as np
from scipy import linalg

from .base import SDE, Kernel, register_kernel

__all__ = ["SquaredExponential"]

#: Largest supported order. The Lyapunov solve for :math:`\\hat P` keeps a residual below
#: 1e-10 up to here, and the error halves with every order (1.45e-7 at N = 20).
MAX_ORDER = 20

# The sup-norm error is found on this grid of tau / lengthscale. The largest error sits near
# tau = 0.6..0.95 lengthscales; past 12 lengthscales both covariances are below 1e-15.
_GRID_STEP = 0.002
_GRID_END = 12.0


@functools.cache
def _unit_model(order: int) -> tuple[np.ndarray, np.ndarray, float]:
    """:math:`(\\hat F, \\hat P, c)` of the order-``order`` approximation at unit lengthscale:
    :math:`\\hat F \\hat P + \\hat P \\hat F^T + c \\, e_{N-1} e_{N-1}^T = 0`, unit diagonal
    :math:`\\hat P`."""
    N = order
    # Roots of e_N(x) = sum_n x^n / n!, then of q (left half plane) in u = lengthscale * s.
    x = np.roots([1.0 / math.factorial(n) for n in range(N, -1, -1)]).astype(complex)
    u = -np.sqrt(-2.0 * x)
    # Divide the roots by their geometric mean rho before forming the companion matrix: its
    # coefficients are then binomial-sized (up to 5e4 at N = 20) instead of growing like
    # N^(N/2), which kept the Lyapunov solve accurate to 1e-10 up to N = 20 (1e-5 without).
    rho = float(np.exp(np.mean(np.log(np.abs(u)))))
    coefficients = np.real(np.poly(u / rho))
    C = np.diag(np.ones(N - 1), 1)
    C[-1, :] = -coefficients[::-1][:N]
    C *= rho  # companion of q in the state z_j = (d/du)^j f, u = t / lengthscale
    noise = np.zeros((N, N))
    noise[-1, -1] = 1.0
    P = linalg.solve_continuous_lyapunov(C, -noise)
    P = 0.5 * (P + P.T)
    # Rescale each coordinate to unit stationary variance: the variances of the derivatives
    # span 1 .. 1e-7 at N = 20, and equal scales keep F, P and Q of order one.
    d = 1.0 / np.sqrt(np.diag(P))
    F_hat = d[:, None] * C / d[None, :]
    P_hat = d[:, None] * P * d[None, :]
    np.fill_diagonal(P_hat, 1.0)
    return F_hat, P_hat, float(d[-1] ** 2)


@functools.cache
def approximation_error(order: int) -> float:
    """:math:`\\max_\\tau |k_N(\\tau) - k(\\tau)| / \\sigma^2` of the order-``order``
    approximation: independent of :math:`\\ell` and :math:`\\sigma^2`, found on a grid of
    step :math:`0.002 \\ell` over :math:`[0, 12 \\ell]`."""
    F_hat, P_hat, _ = _unit_model(order)
    # k_N(s) = e_0^T e^{F s} P e_0 through the eigendecomposition of F: a few LAPACK calls for
    # the whole grid (a matrix-exponential march took thousands of small BLAS calls, slow on
    # a busy machine). Its eigenvectors are ill-conditioned (1e11 at N = 20), which costs
    # 1e-13 in k_N: the error agrees with the march to 6e-7 of itself at N = 20.
    eigenvalues, vectors = np.linalg.eig(F_hat)
    weights = vectors[0, :] * np.linalg.solve(vectors, P_hat[:, 0])
    s = np.arange(0.0, _GRID_END, _GRID_STEP)
    k_N = np.real(np.exp(np.outer(s, eigenvalues)) @ weights)
    return float(np.max(np.abs(k_N - np.exp(-0.5 * s**2))))


def order_for(tolerance: float) -> int:
    """The smallest order whose :func:`approximation_error` is at most ``tolerance``."""
    for order in range(1, MAX_ORDER + 1):
        if approximation_error(order) <= tolerance:
            return order
    raise ValueError(
        f"SquaredExponential: tolerance={tolerance:g} asks for more than the largest supported "
        f"order {MAX_ORDER} achieves ({approximation_error(MAX_ORDER):.3g}); use tolerance >= "
        f"{approximation_error(MAX_ORDER):.3g}")


@register_kernel
class SquaredExponential(Kernel):
    """Squared-exponential kernel :math:`k(\\tau) = \\sigma^2 e^{-\\tau^2 / (2\\ell^2)}`
    (scikit-learn's ``RBF``), approximated by an SDE of order :math:`N` (state dimension
    :math:`N`; see the module docstring).

    The state holds :math:`f` and its derivatives scaled to unit stationary variance,
    :math:`z_j \\propto \\ell^j f^{(j)}`, with :math:`z_0 = f`. Then

    .. math::

        F = \\hat F / \\ell, \\quad L = e_{N-1}, \\quad Q_c = c_N \\sigma^2 / \\ell, \\quad
        H = e_0^T, \\quad P_\\infty = \\sigma^2 \\hat P,

    with constants :math:`\\hat F` (similar to the companion matrix of :math:`q`),
    :math:`\\hat P` (unit diagonal) and :math:`c_N`, so :math:`k_N(0) = \\sigma^2` exactly.
    :math:`A(\\Delta) = e^{F \\Delta}` (``jax.scipy.linalg.expm``) and :math:`Q = P_\\infty -
    A P_\\infty A^T`.

    **Accuracy.** :math:`\\max_\\tau |k_N(\\tau) - k(\\tau)| / \\sigma^2` depends on :math:`N`
    only (:func:`approximation_error`); it roughly halves with each order: 4.1e-1 (N = 1),
    2.2e-2 (4), 9.1e-4 (8), 9.7e-5 (11), 5.3e-6 (15), 6.1e-7 (18), 1.45e-7 (N = 20, the
    largest supported). So any ``tolerance`` in :math:`[1.45 \\cdot 10^{-7}, \\infty)` is
    achievable, for every lengthscale; smaller tolerances raise ``ValueError``.

    Parameters
    ----------
    lengthscale : float
        :math:`\\ell > 0`, in the units of the time stamps.
    variance : float
        :math:`\\sigma^2 > 0`, keyword only.
    order : int, optional
        :math:`N` in ``1..20``; by default the smallest order meeting ``tolerance``.
    tolerance : float
        Bound on the relative sup-norm covariance error when ``order`` is not given
        (default 1e-3, order 8).
    """

    hyperparameter_names = ("variance", "lengthscale")
    static_names = ("order", "tolerance")

    def __init__(self, lengthscale=1.0, *, variance=1.0, order=None, tolerance=1e-3):
        self._set_hyperparameters(variance=variance, lengthscale=lengthscale)
        if not isinstance(tolerance, numbers.Real) or not (math.isfinite(tolerance) and tolerance > 0):
            raise ValueError(f"SquaredExponential: tolerance must be a positive number, got {tolerance!r}")
        if order is None:
            order = order_for(float(tolerance))
        elif isinstance(order, bool) or not isinstance(order, numbers.Integral) or not 1 <= order <= MAX_ORDER:
            raise ValueError(f"SquaredExponential: order must be an integer in 1..{MAX_ORDER}, got {order!r}")
        object.__setattr__(self, "order", int(order))
        object.__setattr__(self, "tolerance", float(tolerance))

    @property
    def state_dim(self) -> int:
        return self.order

    @property
    def approximation_error(self) -> float:
        """:math:`\\max_\\tau |k_N(\\tau) - k(\\tau)| / \\sigma^2` at this order."""
        return approximation_error(self.order)

    def _static_repr(self) -> list[str]:
        return [f"order={self.order}"]

    def sde(self) -> SDE:
        F_hat, P_hat, intensity = _unit_model(self.order)
        dtype = jnp.result_type(self.lengthscale, self.variance, 1.0)
        n = self.order
        L = np.zeros((n, 1))
        L[-1, 0] = 1.0
        H = np.zeros(n)
        H[0] = 1.0
        return SDE(
            feedback=jnp.asarray(F_hat, dtype) / self.lengthscale,
            noise_effect=jnp.asarray(L, dtype),
            spectral_density=jnp.reshape(intensity * self.variance / self.lengthscale, (1, 1)).astype(dtype),
            measurement=jnp.asarray(H, dtype),
            stationary_cov=self.variance * jnp.asarray(P_hat, dtype),
        )

    def stationary_transition_matrix(self, dt):
        F_hat = jnp.asarray(_unit_model(self.order)[0], jnp.result_type(dt, self.lengthscale, 1.0))
        return jax.scipy.linalg.expm(F_hat * (dt / self.lengthscale))

    def evaluate(self, t1, t2):
        r = (t1 - t2) / self.lengthscale
        return self.variance * jnp.exp(-0.5 * r * r)
