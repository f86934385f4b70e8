"""The deep family's estimators: :class:`MambaForecaster` (a global deep state-space network
with a likelihood or quantile head) and :class:`DeepStateForecaster` (a network that emits a
linear-Gaussian state-space model per series, with the exact Kalman likelihood)."""

from .deepstate import DeepStateForecaster
from .forecaster import MambaForecaster

__all__ = ["DeepStateForecaster", "MambaForecaster"]
