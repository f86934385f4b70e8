"""Linearisation rules: a conditional distribution, seen through a Gaussian, as an affine one.

Given :math:`x \\sim N(\\mu, P)`, :math:`P = U U^T`, and a conditional distribution with mean
:math:`g(x)` and covariance :math:`\\Sigma(x)`, a rule returns :math:`(A, b, \\Omega)` such that

.. math::

    z \\mid x \\approx N(A x + b,\\; \\Omega).

* **extended** (first-order Taylor at the mean): :math:`A = \\partial g(\\mu)` by
  ``jax.jacfwd``, :math:`b = g(\\mu) - A\\mu`, :math:`\\Omega = \\Sigma(\\mu)`.
* **sigma points** (statistical linear regression): with unit points :math:`\\xi_i`,
  :math:`\\chi_i = \\mu + U \\xi_i` and weights :math:`w^m_i, w^c_i`,

  .. math::

      \\bar z = \\textstyle\\sum_i w^m_i g(\\chi_i), \\quad
      A = \\big[\\textstyle\\sum_i w^c_i (g(\\chi_i) - \\bar z) \\xi_i^T\\big] U^{-1}, \\quad
      b = \\bar z - A \\mu, \\\\
      \\Omega = \\textstyle\\sum_i w^c_i (g(\\chi_i) - \\bar z)(g(\\chi_i) - \\bar z)^T
          - A P A^T + \\sum_i w^m_i \\Sigma(\\chi_i),

  so that :math:`A P A^T + \\Omega` and :math:`P A^T` are the rule's estimates of the covariance
  of :math:`z` and of the cross-covariance: a Kalman step on :math:`(A, b, \\Omega)` is the
  sigma-point filter's step. ``Unscented`` (scaled points, Wan & van der Merwe 2000),
  ``Cubature`` (spherical-radial, Arasaratnam & Haykin 2009) and ``GaussHermite`` (tensor
  product of order ``p``) differ in the points and weights only.

For additive noise (:attr:`probssm.ssm.StateSpaceModel.additive`) :math:`\\Sigma` does not depend on
:math:`x` and is added as it is. For other emissions (Poisson counts, ...) :math:`\\Sigma(x)` is
the conditional variance: the sigma-point rules then carry out posterior linearisation
(García-Fernández et al. 2017), the extended rule uses the variance at the mean.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from ..kalman._linalg import chol_psd, solve_lower_transposed, symmetrize

__all__ = ["RULES", "Cubature", "Extended", "GaussHermite", "Unscented", "linearise", "resolve_rule"]


@dataclass(frozen=True)
class Extended:
    """First-order Taylor linearisation at the mean (the extended Kalman filter)."""

    name = "extended"


@dataclass(frozen=True)
class SigmaPointRule:
    """A rule given by unit sigma points :math:`\\xi_i` ``(N, n)`` and weights."""

    def unit_points(self, n: int):
        """``(xi (N, n), wm (N,), wc (N,))`` as NumPy float64 arrays."""
        raise NotImplementedError


@dataclass(frozen=True)
class Unscented(SigmaPointRule):
    """Scaled unscented transform: :math:`2n + 1` points :math:`0, \\pm\\sqrt{n + \\lambda}\\,e_i`,
    :math:`\\lambda = \\alpha^2 (n + \\kappa) - n`; weights :math:`w^m_0 = \\lambda/(n+\\lambda)`,
    :math:`w^c_0 = w^m_0 + 1 - \\alpha^2 + \\beta`, :math:`w_i = 1/(2(n+\\lambda))`.

    The defaults (:math:`\\alpha = 1, \\beta = 0, \\kappa = 0`) give positive weights (the
    cubature points plus a zero-weight centre); small :math:`\\alpha` makes the centre weight
    large and negative, which costs precision.
    """

    alpha: float = 1.0
    beta: float = 0.0
    kappa: float = 0.0
    name = "unscented"

    def __post_init__(self):
        if not self.alpha > 0:
            raise ValueError(f"alpha must be positive, got {self.alpha}")

    def unit_points(self, n):
        lam = self.alpha ** 2 * (n + self.kappa) - n
        if not n + lam > 0:
            raise ValueError(f"unscented transform needs n + lambda > 0, got {n + lam} "
                             f"(alpha={self.alpha}, kappa={self.kappa}, n={n})")
        scale = math.sqrt(n + lam)
        xi = np.concatenate([np.zeros((1, n)), scale * np.eye(n), -scale * np.eye(n)])
        wm = np.full(2 * n + 1, 0.5 / (n + lam))
        wm[0] = lam / (n + lam)
        wc = wm.copy()
        wc[0] += 1.0 - self.alpha ** 2 + self.beta
        return xi, wm, wc


@dataclass(frozen=True)
class Cubature(SigmaPointRule):
    """Third-degree spherical-radial cubature: :math:`2n` points :math:`\\pm\\sqrt n\\,e_i`,
    equal weights :math:`1/(2n)`."""

    name = "cubature"

    def unit_points(self, n):
        xi = math.sqrt(n) * np.concatenate([np.eye(n), -np.eye(n)])
        w = np.full(2 * n, 0.5 / n)
        return xi, w, w


@dataclass(frozen=True)
class GaussHermite(SigmaPointRule):
    """Tensor-product Gauss-Hermite rule of order ``p`` per dimension (:math:`p^n` points), exact
    for polynomials of degree :math:`2p - 1` in each coordinate."""

    order: int = 3
    name = "gauss_hermite"

    def __post_init__(self):
        if int(self.order) != self.order or self.order < 1:
            raise ValueError(f"order must be a positive integer, got {self.order}")

    def unit_points(self, n):
        nodes, weights = np.polynomial.hermite_e.hermegauss(int(self.order))
        weights = weights / weights.sum()
        xi = np.array(list(itertools.product(nodes, repeat=n)))
        w = np.prod(np.array(list(itertools.product(weights, repeat=n))), axis=1)
        return xi, w, w


RULES = {"extended": Extended, "unscented": Unscented, "cubature": Cubature,
         "gauss_hermite": GaussHermite}
"""Rule names (the ``rule=`` strings) and their classes."""


def resolve_rule(rule):
    """A rule instance from a name in :data:`RULES` or an instance."""
    if isinstance(rule, (Extended, SigmaPointRule)):
        return rule
    if isinstance(rule, str) and rule in RULES:
        return RULES[rule]()
    raise ValueError(f"rule must be one of {sorted(RULES)} or a rule instance "
                     f"(e.g. Unscented(alpha=0.5)), got {rule!r}")


def _factor_inverse_solve(chol, rhs):
    """``rhs @ U^{-1}`` for lower-triangular ``U`` whose zero pivots (directions without
    spread) are replaced by one: there the sigma points do not move, ``rhs`` is zero, and so is
    the result."""
    diag = jnp.diagonal(chol)
    tiny = jnp.finfo(chol.dtype).tiny ** 0.5
    safe = chol + jnp.diag(jnp.where(jnp.abs(diag) > tiny, 0.0, 1.0))
    return solve_lower_transposed(safe, rhs.T).T


def _is_psd(cov):
    """Whether a conditional covariance ``(d, d)`` that a model returned is positive
    semi-definite (up to the round-off that :func:`~probssm.kalman._linalg.chol_psd` absorbs)."""
    return jnp.all(jnp.isfinite(chol_psd(cov)))


def linearise(rule, moments: Callable, mean, chol, additive: bool):
    """:math:`(A, b, \\Omega)` of ``moments`` (``x -> (g(x), Sigma(x))``) under
    :math:`N(\\mu, U U^T)`; see the module docstring.

    Parameters
    ----------
    rule : Extended or SigmaPointRule
    moments : callable
        ``x (n,) -> (mean (d,), cov (d, d))``.
    mean : ``(n,)``
    chol : ``(n, n)``
    additive : bool
        ``Sigma`` does not depend on ``x`` (evaluated once, at the mean).

    Returns
    -------
    A ``(d, n)``, b ``(d,)``, Omega ``(d, d)``, and whether every evaluation of ``g`` (and
    ``Sigma``) was finite (and, unless ``additive``, each ``Sigma`` positive semi-definite).
    """
    def g(x):
        return moments(x)[0]

    if isinstance(rule, Extended):
        value, cov = moments(mean)
        A = jax.jacfwd(g)(mean)
        finite = jnp.all(jnp.isfinite(value)) & jnp.all(jnp.isfinite(A)) & jnp.all(jnp.isfinite(cov))
        if not additive:
            finite &= _is_psd(cov)
        return A, value - A @ mean, cov, finite
    xi_np, wm_np, wc_np = rule.unit_points(mean.shape[0])
    xi, wm, wc = (jnp.asarray(a, mean.dtype) for a in (xi_np, wm_np, wc_np))
    points = mean + xi @ chol.T
    if additive:
        values = jax.vmap(g)(points)
        cov = moments(mean)[1]
        expected_cov = cov
    else:
        values, covs = jax.vmap(moments)(points)
        expected_cov = jnp.einsum("i,ijk->jk", wm, covs)
        psd = jnp.all(jax.vmap(_is_psd)(covs))
    # Deviations from a reference point's value first: where the points do not move (a
    # direction without spread, or none at all) they are exactly zero, so is the regression's
    # cross-covariance, and its slope stays zero instead of rounding error (weights summing to
    # one only up to rounding) divided by a vanishing pivot of U.
    shifted = values - values[0]
    z_shift = wm @ shifted
    z_mean = values[0] + z_shift
    dev = shifted - z_shift
    A = _factor_inverse_solve(chol, (wc[:, None] * dev).T @ xi)
    spread = (wc[:, None] * dev).T @ dev
    AU = A @ chol
    omega = symmetrize(spread - AU @ AU.T + expected_cov)
    finite = jnp.all(jnp.isfinite(values)) & jnp.all(jnp.isfinite(expected_cov))
    if not additive:
        finite &= psd
    return A, z_mean - A @ mean, omega, finite
