"""Linear-Gaussian state-space engine (JAX): the model container and its inference.

``filter``, ``smooth``, ``log_likelihood``, ``sample`` and ``forecast`` are pure functions on an
:class:`LGSSM` and arrays; they work under ``jit``, ``vmap`` and ``grad``. Every other family
(structural models, GP state-space models, iterated nonlinear smoothers) builds an ``LGSSM`` and
reuses these functions.

Precision follows JAX's configuration: with JAX's x64 mode off (its default) these functions
compute in float32, even on float64 NumPy input. For float64 results, scope it to the calls
rather than flipping the global flag::

    import jax
    from probssm import kalman

    with jax.enable_x64(True):
        model = kalman.LGSSM(F, Q, H, R, m0, P0)   # build the model inside the scope too
        loglik = kalman.log_likelihood(model, y)     # float64

float32 is supported (in float32 the sequential filter updates in Joseph form and symmetrises
the covariances); the estimators (``LocalLevel``, ``SARIMAX``, ...) compute in float64, scoped the same way.
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
