"""Running panel fits beyond one process.

An estimator that fits panels (``LocalLevel``, ``UnobservedComponents``, ``SARIMAX``,
``KalmanFilter``, ``AutoSARIMAX``, ``AutoUC``) chooses where its panel work runs through
``set_config`` (execution settings: they never change the fitted numbers):

``backend``
    ``"local"`` (default): in this process, one batched compiled program over all series.
    ``"dask"``: series split into chunks, each chunk the same batched program on a
    ``dask.distributed`` worker (:mod:`probssm.distributed.dask`).
``client``
    With ``backend="dask"``: a ``distributed.Client`` to submit to, or ``None`` for a local
    cluster started on first use and shared by every later Dask operation of the process
    (:func:`probssm.distributed.dask.get_client`).
``chunk_size``
    With ``backend="dask"``: series per chunk, or ``None`` for about two chunks per worker
    (:func:`probssm.distributed.dask.chunk_rows`).

This module holds only what needs no Dask (the names of the settings and their check); Dask is
imported when a Dask operation runs, so ``import probssm`` works without it.
"""

from __future__ import annotations

import numbers

__all__ = ["BACKENDS", "BACKEND_CONFIG", "check_backend_config", "uses_dask"]

BACKENDS = ("local", "dask")
"""The values of the ``backend`` setting."""

BACKEND_CONFIG = {"backend": "local", "client": None, "chunk_size": None}
"""The execution settings of estimators that fit panels, with their defaults."""


def check_backend_config(config: dict) -> None:
    """Raise ``ValueError`` for a ``backend`` other than ``"local"`` or ``"dask"``, a
    ``chunk_size`` that is not a positive integer or ``None``, or a ``client`` that is neither
    ``None`` nor a Dask client (an object with ``submit`` and ``gather``). ``config``: the
    settings being set (keys absent from it are not checked)."""
    if "backend" in config and config["backend"] not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {config['backend']!r}")
    size = config.get("chunk_size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1):
        raise ValueError(f"chunk_size must be a positive integer or None, got {size!r}")
    client = config.get("client")
    if client is not None and not (callable(getattr(client, "submit", None))
                                   and callable(getattr(client, "gather", None))):
        raise ValueError(f"client must be a distributed.Client or None, got {type(client).__name__}")


def uses_dask(config: dict) -> bool:
    """Whether the execution settings ``config`` (an estimator's ``get_config()``) send panel
    work to Dask."""
    return config.get("backend", "local") == "dask"
