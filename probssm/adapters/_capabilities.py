"""What a probssm estimator can do, read from the estimator itself.

Adapters declare these facts to the library they bridge to (sktime's tags, say): whether the
estimator takes exogenous regressors, how many variables it models, whether it fits panels of
many series, and whether its predictive distribution is Gaussian. Nothing here imports PyTorch:
a deep forecaster is recognised only when :mod:`probssm.deep` has been loaded, as it must have
been for such an estimator to exist.
"""

from __future__ import annotations

import sys

import numpy as np

from ..base import BaseForecaster
from ..gp.estimator import GaussianProcess
from ..gp.likelihoods import Gaussian
from ..kalman.estimator import KalmanFilter
from ..kalman.forecaster import LinearGaussianForecaster
from ..ssm import StateSpaceModel

__all__ = [
    "accepts_exog", "check_estimator", "fits_panels", "gaussian_predictive", "has_moments",
    "is_deep", "variables",
]

# The quantile hooks that compute Gaussian quantiles from the predictive moments (the linear-
# Gaussian one does so unless the fit kept posterior draws; see ``gaussian_predictive``).
_GAUSSIAN_QUANTILES = (BaseForecaster._predict_quantiles, LinearGaussianForecaster._predict_quantiles)
_METHODS = ("fit", "predict", "predict_interval", "predict_quantiles", "sample", "update", "get_params")


def check_estimator(estimator) -> None:
    """Raise ``TypeError`` unless ``estimator`` is a probssm estimator *instance* (a class, or
    an object without the forecasting methods, is named in the message)."""
    if isinstance(estimator, type):
        raise TypeError(f"estimator must be an estimator instance, got the class {estimator.__name__}; "
                        f"pass {estimator.__name__}(...)")
    missing = [name for name in _METHODS if not callable(getattr(estimator, name, None))]
    if not isinstance(estimator, BaseForecaster) or missing:
        raise TypeError(f"estimator must be a probssm estimator (LocalLevel, SARIMAX, ...), got "
                        f"{type(estimator).__name__}" + (f" (it lacks {missing})" if missing else ""))


def is_deep(estimator) -> bool:
    """Whether ``estimator`` is one of the PyTorch forecasters of :mod:`probssm.deep` (global
    models of a panel)."""
    module = sys.modules.get("probssm.deep.forecasting")
    return module is not None and isinstance(estimator, module.DeepForecaster)


def accepts_exog(estimator) -> bool:
    """Whether ``fit`` and the forecasts take exogenous regressors ``X``."""
    return bool(getattr(estimator, "_accepts_exog", False))


def fits_panels(estimator) -> bool:
    """Whether ``fit`` takes a panel (rows indexed by ``(series_id, time)``): the univariate
    models (one model per series), Gaussian processes and the deep (global) forecasters."""
    return bool(getattr(estimator, "_univariate", False)) or isinstance(estimator, GaussianProcess) \
        or is_deep(estimator)


def variables(estimator) -> str:
    """How many variables ``y`` may have: ``"univariate"`` (one), ``"multivariate"`` (the fixed
    ``m > 1`` of the estimator's model) or ``"both"``.

    Univariate models say so (``_univariate``); a :class:`~probssm.KalmanFilter` has the rows of
    its observation matrix, a nonlinear or particle filter the dimension of its model's
    emission; a Gaussian process models any number of outputs and a deep forecaster any number of
    series (the columns of a wide frame)."""
    if getattr(estimator, "_univariate", False):
        return "univariate"
    m = None
    if isinstance(estimator, KalmanFilter) and estimator.observation_matrix is not None:
        matrix = np.asarray(estimator.observation_matrix)
        m = 1 if matrix.ndim < 2 else matrix.shape[0]
    elif isinstance(getattr(estimator, "model", None), StateSpaceModel):
        m = estimator.model.observation_dim
    if m is None:
        return "both"
    return "univariate" if m == 1 else "multivariate"


def has_moments(estimator) -> bool:
    """Whether the estimator computes predictive means and variances (``predict_var``); the
    deep forecasters give quantiles and samples only."""
    return hasattr(estimator, "_forecast_moments") or type(estimator).predict_var is not BaseForecaster.predict_var


def gaussian_predictive(estimator) -> bool:
    """Whether the fitted estimator's marginal predictive distributions are the Gaussians of its
    predictive means and variances, so that they (and its quantiles) are exactly a normal
    distribution: true for the linear-Gaussian family, Gaussian processes with a Gaussian
    likelihood and the extended / unscented Kalman filters, each fitted by maximum likelihood.
    False for posterior mixtures (``method="nuts"``), non-Gaussian likelihoods, particle filters
    and the deep forecasters, whose predictive is represented by sample paths instead."""
    inner = estimator
    if getattr(estimator, "_panel", None) is not None:
        inner = next(iter(estimator.estimators_.values()))
    if getattr(inner, "_draws", None) is not None:
        return False
    if isinstance(inner, GaussianProcess):
        return isinstance(inner._likelihood, Gaussian)
    return has_moments(inner) and type(inner)._predict_quantiles in _GAUSSIAN_QUANTILES
