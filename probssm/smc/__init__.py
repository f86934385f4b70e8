"""Sequential Monte Carlo for :mod:`probssm.ssm` models (JAX).

* :func:`filter`: bootstrap, guided and auxiliary particle filters with multinomial, stratified,
  systematic or residual resampling behind an ESS threshold; the unbiased likelihood estimate,
  filtering means, covariances, quantiles and expectations of functions of the state;
* :mod:`.resampling`: the resampling schemes and their offspring-count variances.
"""

from . import resampling
from .filtering import DegenerateWeightsError, ParticleFilterResult, ParticleHistory, filter
from .proposals import Auxiliary, Guided
from .resampling import RESAMPLERS

__all__ = [
    "filter", "ParticleFilterResult", "ParticleHistory", "DegenerateWeightsError",
    "Guided", "Auxiliary", "RESAMPLERS", "resampling",
]
