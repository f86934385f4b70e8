"""probssm: probabilistic state-space models behind one estimator interface.

Submodules: :mod:`probssm.kalman` (linear-Gaussian engine), :mod:`probssm.structural`, :mod:`probssm.gp`,
:mod:`probssm.ssm` (general model specifications), :mod:`probssm.nonlinear`, :mod:`probssm.smc`,
:mod:`probssm.fit`, :mod:`probssm.metrics`, :mod:`probssm.datasets`. Estimators are importable
from the top level; they load on first use so ``import probssm`` stays light.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "KalmanFilter": "probssm.kalman.estimator",
    "LocalLevel": "probssm.structural.estimator",
    "UnobservedComponents": "probssm.structural.estimator",
    "SARIMAX": "probssm.structural.estimator",
    "AutoSARIMAX": "probssm.structural.auto",
    "AutoUC": "probssm.structural.auto",
    "GaussianProcess": "probssm.gp.estimator",
    "ExtendedKalmanFilter": "probssm.nonlinear.estimator",
    "UnscentedKalmanFilter": "probssm.nonlinear.estimator",
    "ParticleFilter": "probssm.smc.estimator",
    "MambaForecaster": "probssm.deep",
    "DeepStateForecaster": "probssm.deep",
    "Forecaster": "probssm.frontend",
    "backtest": "probssm.backtesting",
    "load": "probssm.base",
    "NotFittedError": "probssm.base",
}
_SUBMODULES = ("kalman", "structural", "gp", "ssm", "nonlinear", "smc", "deep", "fit", "metrics", "datasets", "base", "plotting", "diagnostics", "frontend", "backtesting", "adapters")

__all__ = ["__version__", *_LAZY, *_SUBMODULES]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"probssm.{name}")
    raise AttributeError(f"module 'probssm' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
