"""Gaussian filtering and smoothing for nonlinear state-space models (JAX).

Every approximation here is a linearisation (:mod:`.rules`: Jacobians or sigma points) followed
by a :mod:`probssm.kalman` step or pass; no Kalman update is written in this package.

* :func:`filter`: the extended, unscented, cubature or Gauss-Hermite filter, with an
  approximate log-likelihood that ``jax.grad`` differentiates;
* :func:`smooth`: their RTS smoothers, and the iterated extended (Gauss-Newton, the MAP path) and
  iterated posterior-linearisation smoothers, sequential or parallel-in-time;
* models: :class:`probssm.ssm.StateSpaceModel`, :class:`probssm.ssm.AdditiveGaussianSSM`.
"""

from .filtering import NonlinearFilterResult
from .inference import NonlinearSmoothResult, filter, smooth
from .rules import RULES, Cubature, Extended, GaussHermite, Unscented

__all__ = [
    "filter", "smooth", "NonlinearFilterResult", "NonlinearSmoothResult",
    "Extended", "Unscented", "Cubature", "GaussHermite", "RULES",
]
