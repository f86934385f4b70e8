"""Gaussian-process state-space models: kernels as SDEs, exact O(T) inference through
:mod:`probssm.kalman`.

Kernels (:mod:`probssm.gp.kernels`) know their linear SDE; :func:`state_space_model` turns a
kernel observed at sorted times into a :class:`probssm.kalman.LGSSM`, and the functional core
(:func:`log_marginal_likelihood`, :func:`posterior`, :func:`sample_posterior`) runs one
:mod:`probssm.kalman` pass per call.
"""

from .estimator import GaussianProcess
from .inference import Posterior, log_marginal_likelihood, posterior, posterior_joint, sample_posterior
from .kernels import *  # noqa: F403
from .kernels import __all__ as _kernel_names
from .likelihoods import Bernoulli, Gaussian, Likelihood, Poisson, StudentT
from .model import state_space_model

__all__ = [
    "GaussianProcess", *_kernel_names,
    "Likelihood", "Gaussian", "Poisson", "Bernoulli", "StudentT",
    "state_space_model", "log_marginal_likelihood", "posterior", "posterior_joint", "sample_posterior",
    "Posterior",
]
