"""Panel fits on a Dask cluster (``estimator.set_config(backend="dask")``).

:func:`fit_panel` splits a panel's series into chunks of equal size (:func:`chunk_rows`) and
submits one task per chunk to a ``dask.distributed`` client (:func:`get_client`). The task
carries an unfitted copy of the estimator (its class and hyper-parameters, pickled) and the
chunk's rows of the panel (``(chunk_size, T)`` float64 values, their ids and the common time
index); on the worker it runs the family's panel fit (``_fit_panel``), the same batched
compiled program an in-process panel fit runs, on the chunk. What comes back is one fitted
single-series estimator per series (parameters, filtered state, the series' data), carried
back by Dask's own serialisation as each chunk completes, then put in the input's order.
Series are independent, so each series' fit equals the one an in-process fit of the whole
panel gives (chunks of at least two series: see :func:`chunk_rows`).

**Failures.** A chunk whose batched fit raises is fitted again on the worker series by
series, so that the series at fault are known; their errors come back by series id and every
other series keeps its fit. A worker that dies during a task (killed, out of memory) has its
tasks rescheduled on the other workers by Dask's scheduler, up to Dask's
``distributed.scheduler.allowed-failures`` times per task.

Dask is imported when a function here runs, not when the module is imported; without it they
raise ``ImportError`` naming ``pip install "probssm[dask]"``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading

import numpy as np

from .._data import PanelData

__all__ = [
    "chunk_rows",
    "close_default_client",
    "fit_panel",
    "get_client",
    "map_ordered",
    "take_series",
]

_INSTALL = 'the Dask backend needs dask.distributed: pip install "probssm[dask]"'

_default = None  # the shared LocalCluster client, started on first use
_lock = threading.Lock()


def _distributed():
    try:
        import distributed
    except ImportError as err:
        raise ImportError(_INSTALL) from err
    return distributed


def get_client(client=None):
    """The Dask client that Dask operations submit to.

    ``client``: a ``distributed.Client``, returned as it is; or ``None``: the current default
    client of the process (the last ``distributed.Client`` created, as for ``dask.compute``)
    if there is one, else a client of a ``distributed.LocalCluster`` started on first use with
    one single-threaded worker process per usable CPU core and shared by every later call.

    The shared cluster stays up until :func:`close_default_client` or the end of the process:
    starting one takes seconds, and its workers keep the programs they have compiled, so a
    second fit of the same model (the next window of a backtest, say) compiles nothing.
    """
    if client is not None:
        return client
    distributed = _distributed()
    try:
        return distributed.default_client()
    except ValueError:  # no client in this process
        pass
    global _default
    with _lock:
        if _default is None or _default.status in ("closing", "closed"):
            cluster = distributed.LocalCluster(n_workers=_cores(), threads_per_worker=1,
                                               processes=True, dashboard_address=None)
            _default = distributed.Client(cluster, set_as_default=False)
            atexit.register(close_default_client)
    return _default


def close_default_client() -> None:
    """Close the shared ``LocalCluster`` that :func:`get_client` started (nothing if none
    runs); the next Dask operation without a client starts a new one."""
    global _default
    with _lock:
        client, _default = _default, None
    if client is not None:
        cluster = client.cluster
        client.close()
        if cluster is not None:
            cluster.close()


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _worker_slots(client) -> int:
    """Tasks the cluster runs at once: the sum of its workers' threads (at least 1)."""
    return max(1, sum(client.nthreads().values()))


def chunk_rows(n_series: int, n_workers: int, chunk_size: int | None = None) -> list[np.ndarray]:
    """Row indices of the chunks a panel of ``n_series`` series is split into.

    ``chunk_size``: series per chunk; ``None`` for about two chunks per worker
    (:math:`\\lceil n_\\text{series} / (2\\, n_\\text{workers}) \\rceil`), so that the work
    balances over the workers and a lost worker's tasks are a small share. The series are
    then spread over :math:`\\lceil n_\\text{series} / \\text{chunk\\_size} \\rceil` chunks of
    consecutive rows whose sizes differ by at most one, and the shorter chunks repeat their
    last row once: every chunk has the same size, so a worker compiles the batched program
    once (the repeated series' second fit is dropped). A chunk holds at least two rows (a
    single series is repeated): XLA compiles a batch of one without its batch axis, and the
    different rounding of that program can move the optimiser's end point along a flat
    likelihood by more than 1e-10, where batches of two or more agree with the in-process fit
    of the whole panel. Returns a list of int arrays, each of that size, covering
    ``0..n_series-1`` in order.
    """
    if n_series < 1:
        raise ValueError(f"a panel needs at least one series, got {n_series}")
    size = -(-n_series // (2 * max(1, int(n_workers)))) if chunk_size is None else int(chunk_size)
    n_chunks = -(-n_series // max(1, size))
    parts = np.array_split(np.arange(n_series), n_chunks)
    width = max(2, max(len(p) for p in parts))
    return [np.concatenate([p, np.repeat(p[-1:], width - len(p))]) for p in parts]


def take_series(panel: PanelData, rows) -> PanelData:
    """The series ``rows`` (int indices into ``panel.ids``) of ``panel`` as a panel on the same
    time index: values ``(len(rows), T)``, a copy."""
    rows = np.asarray(rows, dtype=np.int64)
    return PanelData(panel.values[rows].copy(), [panel.ids[i] for i in rows], panel.index, panel.name)


def _unfitted(estimator):
    """An unfitted copy of ``estimator`` with its hyper-parameters only (no execution
    settings: they hold the client, which does not travel)."""
    return type(estimator)(**estimator.get_params(deep=False))


def _fit_chunk(template, chunk: PanelData) -> tuple[dict, dict]:
    """On a worker: the family's batched panel fit of ``chunk``; if it raises, a fit per series (a batch
    of the series twice, see :func:`chunk_rows`). Returns ``(series_id -> fitted estimator,
    series_id -> "Error: message")``."""
    with contextlib.suppress(Exception):  # any failure: the series at fault are found below
        return _unfitted(template)._fit_panel(chunk), {}
    fitted, failures = {}, {}
    for i, sid in enumerate(chunk.ids):
        if sid in fitted or sid in failures:  # a repeated (padding) row
            continue
        try:
            fitted.update(_unfitted(template)._fit_panel(take_series(chunk, [i, i])))
        except Exception as err:  # noqa: BLE001 - reported by series id
            failures[sid] = f"{type(err).__name__}: {err}"
    return fitted, failures


def fit_panel(estimator, panel: PanelData, *, client=None, chunk_size: int | None = None):
    """Fit ``estimator``'s family to every series of ``panel`` on a Dask cluster.

    Parameters
    ----------
    estimator : probssm forecaster of a univariate family
        Only its class and hyper-parameters are used (it is not fitted or changed).
    panel : probssm._data.PanelData
        ``B`` series on one time index (values ``(B, T)``).
    client : distributed.Client or None
        Where the tasks go (see :func:`get_client`).
    chunk_size : int or None
        Series per task (see :func:`chunk_rows`).

    Returns
    -------
    fitted : dict
        ``series_id -> fitted single-series estimator`` for the series that fitted, in the
        order of ``panel.ids``.
    failures : dict
        ``series_id -> "ErrorType: message"`` for the series whose fit raised, in the same
        order (empty when all fitted).

    Raises
    ------
    ValueError
        When every series failed (the message lists the first errors).
    ImportError
        Without ``dask.distributed``.
    """
    dask_client = get_client(client)
    template = _unfitted(estimator)
    chunks = chunk_rows(len(panel.ids), _worker_slots(dask_client), chunk_size)
    futures = [dask_client.submit(_fit_chunk, template, take_series(panel, rows), pure=False)
               for rows in chunks]
    fitted, failures = {}, {}
    for _, result in _distributed().as_completed(futures, loop=dask_client.loop, with_results=True):
        part, errors = result
        fitted.update(part)
        failures.update(errors)
    fitted = {sid: fitted[sid] for sid in panel.ids if sid in fitted}
    failures = {sid: failures[sid] for sid in panel.ids if sid in failures}
    if not fitted:
        shown = "; ".join(f"series {sid!r}: {msg}" for sid, msg in list(failures.items())[:3])
        raise ValueError(f"every series of the panel failed to fit ({len(failures)}): {shown}")
    return fitted, failures


def map_ordered(fn, items, *, client=None) -> list:
    """``[fn(item) for item in items]`` with one Dask task per item, results in the order of
    ``items``. ``fn`` and the items are pickled (``cloudpickle``: closures and lambdas travel);
    an exception of a task is raised here. ``client``: see :func:`get_client`."""
    dask_client = get_client(client)
    return dask_client.gather([dask_client.submit(fn, item, pure=False) for item in items])
