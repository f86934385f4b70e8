"""Structural (unobserved-components) time-series models on the linear-Gaussian engine."""

from .estimator import LocalLevel

__all__ = ["LocalLevel"]
