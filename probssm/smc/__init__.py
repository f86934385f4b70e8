"""Sequential Monte Carlo for :mod:`probssm.ssm` models (JAX).

* :func:`filter`: bootstrap, guided and auxiliary particle filters with multinomial, stratified,
  systematic or residual resampling behind an ESS threshold; the unbiased likelihood estimate,
  filtering means, covariances, quantiles and expectations of functions of the state; NaN
  observations; batches of independent filters; :math:`O(N)` memory per step;
* :func:`smooth`: genealogy tracing and forward-filtering backward-sampling (exact
  :math:`O(N^2)` and rejection-based);
* :func:`pmmh`: particle marginal Metropolis-Hastings with NumPyro priors, many chains at once;
* :func:`differentiable_log_likelihood`, :func:`gradient_ascent`: stop-gradient resampling for
  gradient-based fitting;
* :mod:`.resampling`: the resampling schemes and their offspring-count variances;
* :func:`stochastic_volatility`: the basic stochastic-volatility model.
"""

from . import resampling
from .differentiable import (
    GradientAscentResult,
    differentiable_log_likelihood,
    gradient_ascent,
)
from .filtering import (
    DegenerateWeightsError,
    ParticleFilterResult,
    ParticleHistory,
    filter,
)
from .models import stochastic_volatility
from .pmmh import PMMHResult, PriorSpace, pmmh
from .proposals import Auxiliary, Guided, predictive_mean_look_ahead
from .resampling import RESAMPLERS
from .smoothing import SMOOTHERS, ParticleSmootherResult, smooth

__all__ = [
    "RESAMPLERS",
    "SMOOTHERS",
    "Auxiliary",
    "DegenerateWeightsError",
    "GradientAscentResult",
    "Guided",
    "PMMHResult",
    "ParticleFilterResult",
    "ParticleHistory",
    "ParticleSmootherResult",
    "PriorSpace",
    "differentiable_log_likelihood",
    "filter",
    "gradient_ascent",
    "pmmh",
    "predictive_mean_look_ahead",
    "resampling",
    "smooth",
    "stochastic_volatility",
]
