"""Deep selective state-space models in PyTorch (the ``deep`` extra: ``pip install probssm[deep]``).

Submodules, loaded on first access so that ``import probssm.deep`` does not import torch:

- :mod:`probssm.deep.ops`: the sequence operators (the selective scan, the chunked
  state-space-duality scan, the diagonal linear recurrence);
- :mod:`probssm.deep.layers`: the sequence layers built on them (``Mamba``, ``Mamba2``, ``S4D``,
  ``LRU``), each with a recurrent ``step`` equal to its full-sequence forward;
- :mod:`probssm.deep.heads`: likelihood heads (``pyro.distributions``) and the quantile head;
- :mod:`probssm.deep.training`: the training loop.

Imported by name: :mod:`probssm.deep.distributed` (data-parallel training over the processes
of a ``torchrun`` launch, ``set_config(strategy="ddp")``) and :mod:`probssm.deep.train` (the
command ``torchrun -m probssm.deep.train``, also ``python -m probssm.deep.train``).

The estimators :class:`~probssm.deep.MambaForecaster` and
:class:`~probssm.deep.DeepStateForecaster` load the same way, on first access.
"""

from __future__ import annotations

import importlib

_SUBMODULES = ("ops", "layers", "heads", "training")
_ESTIMATORS = ("MambaForecaster", "DeepStateForecaster")

__all__ = list(_SUBMODULES) + list(_ESTIMATORS)


def __getattr__(name):
    if name in _SUBMODULES or name in _ESTIMATORS:
        try:
            import torch  # noqa: F401
        except ImportError as exc:  # the extra is optional; say how to get it
            raise ImportError(
                f"probssm.deep.{name} needs PyTorch: install the deep extra "
                "(pip install 'probssm[deep]')"
            ) from exc
        if name in _ESTIMATORS:
            return getattr(importlib.import_module("probssm.deep.estimator"), name)
        return importlib.import_module(f"probssm.deep.{name}")
    raise AttributeError(f"module 'probssm.deep' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
