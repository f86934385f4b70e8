"""Thin bridges from probssm's estimators to other libraries' interfaces.

- :mod:`probssm.adapters.sktime`: :class:`~probssm.adapters.sktime.ProbssmForecaster`, any
  probssm estimator as an sktime forecaster (needs ``sktime``).

Importing this package imports none of those libraries; each bridge imports its own.
"""

__all__ = ["sktime"]
