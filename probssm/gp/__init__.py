"""Gaussian-process state-space models: kernels as SDEs, exact O(T) inference through
:mod:`probssm.kalman`.

Kernels (:mod:`probssm.gp.kernels`) know their linear SDE; :func:`state_space_model` turns a
kernel observed at sorted times into a :class:`probssm.kalman.LGSSM`, and the functional core
(:func:`log_marginal_likelihood`, :func:`posterior`, :func:`sample_posterior`) runs one
:mod:`probssm.kalman` pass per call.
"""

from .inference import Posterior, log_marginal_likelihood, posterior, sample_posterior
from .kernels import *  # noqa: F403
from .kernels import __all__ as _kernel_names
from .model import state_space_model

__all__ = [
    *_kernel_names,
    "state_space_model", "log_marginal_likelihood", "posterior", "sample_posterior", "Posterior",
]
