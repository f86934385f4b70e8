"""Parameter estimation: maximum likelihood by ``jax.grad`` + L-BFGS, parameter transforms
(covariances, stationary and invertible lag polynomials)."""

from .mle import MLEResult, maximize_likelihood, observed_information
from .transforms import (
    constrain_stationary,
    cov_from_unconstrained,
    cov_to_unconstrained,
    unconstrain_stationary,
)

__all__ = [
    "MLEResult",
    "constrain_stationary",
    "cov_from_unconstrained",
    "cov_to_unconstrained",
    "maximize_likelihood",
    "observed_information",
    "unconstrain_stationary",
]
