"""Parameter estimation: maximum likelihood by ``jax.grad`` + L-BFGS, parameter transforms."""

from .mle import MLEResult, maximize_likelihood, observed_information
from .transforms import cov_from_unconstrained, cov_to_unconstrained

__all__ = [
    "MLEResult", "maximize_likelihood", "observed_information",
    "cov_from_unconstrained", "cov_to_unconstrained",
]
