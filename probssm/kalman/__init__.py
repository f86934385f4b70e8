"""Linear-Gaussian state-space engine (JAX): the model container and its inference.

``filter``, ``smooth``, ``log_likelihood``, ``sample`` and ``forecast`` are pure functions on an
:class:`LGSSM` and arrays; they work under ``jit``, ``vmap`` and ``grad``. Every other family
(structural models, GP state-space models, iterated nonlinear smoothers) builds an ``LGSSM`` and
reuses these functions.
"""

from .inference import (
    METHODS,
    FilterResult,
    ForecastResult,
    GaussianState,
    SmoothResult,
    filter,
    forecast,
    log_likelihood,
    sample,
    smooth,
)
from .model import LGSSM, add_inputs, approximate_diffuse, diffuse_rank

__all__ = [
    "LGSSM", "approximate_diffuse", "diffuse_rank", "add_inputs",
    "METHODS", "GaussianState", "FilterResult", "SmoothResult", "ForecastResult",
    "filter", "smooth", "log_likelihood", "sample", "forecast",
]
