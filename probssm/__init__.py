"""probssm: probabilistic state-space models behind one estimator interface."""

__version__ = "0.1.0"
