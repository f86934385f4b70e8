"""Structural time-series models (unobserved components, SARIMAX) on the linear-Gaussian engine."""

from .components import (
    Autoregressive, Component, Cycle, Irregular, Level, LocalLinearTrend, Regression, Seasonal,
    SmoothTrend, TrigSeasonal,
)
from .auto import AutoSARIMAX, AutoUC
from .estimator import SARIMAX, LocalLevel, UnobservedComponents

__all__ = [
    "LocalLevel", "UnobservedComponents", "SARIMAX", "AutoSARIMAX", "AutoUC",
    "Component", "Level", "LocalLinearTrend", "SmoothTrend", "Seasonal", "TrigSeasonal",
    "Cycle", "Autoregressive", "Regression", "Irregular",
]
