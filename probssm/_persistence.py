"""Saving and loading estimators as arrays and JSON, without pickle.

A fitted estimator is a folder: ``estimator.json`` (format version, class path,
hyper-parameters, fitted scalars, the time index, column names) and ``arrays.npz`` (fitted
arrays and the data). Hyper-parameters that are code (a nonlinear model's functions, named in
the estimator's ``_code_params``) are not stored: :func:`load` takes them again as keywords.
The execution settings (``get_config()``) are stored too, except a Dask ``client`` (a live
connection: a loaded estimator has ``client=None``). Hyper-parameters that are arrays, tuples, probssm objects (structural
components) or ``numpy.random.Generator`` are tagged so they come back as they were; only probssm
classes are ever instantiated. A panel fit writes one sub-folder ``series_<i>`` per series.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np

from . import _data

__all__ = ["FORMAT_VERSION", "save", "load", "encode", "decode"]

FORMAT_VERSION = 1
"""Version of the folder layout; :func:`load` refuses others."""


def save(est, path) -> Path:
    """Write the fitted forecaster ``est`` to the folder ``path`` (see
    :meth:`probssm.base.BaseForecaster.save`); returns the folder's path."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    doc = {
        "format": FORMAT_VERSION,
        "class": f"{type(est).__module__}.{type(est).__qualname__}",
        "params": _to_json(_stored_params(est)),
        "config": _to_json(_stored_config(est)),
    }
    if getattr(est, "_panel", None) is not None:
        ids = list(est.estimators_)
        for i, series_est in enumerate(est.estimators_.values()):
            save(series_est, path / f"series_{i}")
        doc["panel"] = {"ids": _encode(ids), "name": est._panel.name,
                        "failures": _encode(list(getattr(est, "failures_", {}).items()))}
        (path / "estimator.json").write_text(json.dumps(doc, indent=2))
        return path
    meta, arrays = est._fitted_state()
    arrays = dict(arrays, y_values=est._y.values)
    if est._X is not None:
        arrays["X_values"] = est._X
    doc.update({
        "fitted": meta,
        "y": {
            "index": _data.index_to_json(est._y.index),
            "columns": est._y.columns,
            "is_series": est._y.is_series,
        },
        "exog_columns": est._exog_columns,
    })
    (path / "estimator.json").write_text(json.dumps(doc, indent=2))
    np.savez(path / "arrays.npz", **arrays)
    return path


def _stored_params(est) -> dict:
    """The hyper-parameters, with those that are code replaced by a marker naming their type."""
    params = est.get_params(deep=False)
    for name in getattr(est, "_code_params", ()):
        value = params[name]
        params[name] = _CodeMarker(f"{type(value).__module__}.{type(value).__qualname__}")
    return params


def _stored_config(est) -> dict:
    """The execution settings that can be stored: all but a Dask ``client``."""
    return {k: v for k, v in est.get_config().items() if k != "client"}


def _restore_config(est, stored: dict) -> None:
    """Set the stored execution settings the estimator's class still knows."""
    known = est._default_config()
    est.set_config(**{k: v for k, v in stored.items() if k in known})


class _CodeMarker(str):
    """A hyper-parameter that is code: saved as the name of its type only."""


def _to_json(params: dict) -> dict:
    return {k: _encode(v) for k, v in params.items()}


def _encode(v):
    """JSON form of a hyper-parameter: arrays, tuples, lists and probssm objects with
    ``get_params`` (structural components, say) are tagged so that :func:`_decode` rebuilds them."""
    from .base import BaseEstimator

    if isinstance(v, _CodeMarker):
        return {"__code__": str(v)}
    if isinstance(v, BaseEstimator):
        cls = type(v)
        if not cls.__module__.startswith("probssm."):
            raise TypeError(f"cannot save a hyper-parameter of type {cls.__qualname__}")
        return {"__object__": f"{cls.__module__}.{cls.__qualname__}", "params": _to_json(v.get_params(deep=False))}
    if hasattr(v, "to_config") and type(v).__module__.startswith("probssm."):
        cls = type(v)
        return {"__config__": f"{cls.__module__}.{cls.__qualname__}", "config": _encode(v.to_config())}
    if isinstance(v, np.random.Generator):  # its bit generator's state, restored exactly
        return {"__generator__": v.bit_generator.state}
    if isinstance(v, np.ndarray) or hasattr(v, "__array__") and not np.isscalar(v):
        return {"__array__": np.asarray(v).tolist()}
    if isinstance(v, tuple):
        return {"__tuple__": [_encode(x) for x in v]}
    if isinstance(v, list):
        return [_encode(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _encode(x) for k, x in v.items()}
    if isinstance(v, np.generic):
        return v.item()
    return v


def _from_json(params: dict) -> dict:
    return {k: _decode(v) for k, v in params.items()}


def _decode(v):
    if isinstance(v, dict) and "__array__" in v:
        return np.asarray(v["__array__"], dtype=float)
    if isinstance(v, dict) and "__generator__" in v:
        state = v["__generator__"]
        bit_generator = getattr(np.random, state["bit_generator"])()
        bit_generator.state = state
        return np.random.Generator(bit_generator)
    if isinstance(v, dict) and "__config__" in v:
        return _probssm_class(v["__config__"], object).from_config(_decode(v["config"]))
    if isinstance(v, dict) and "__tuple__" in v:
        return tuple(_decode(x) for x in v["__tuple__"])
    if isinstance(v, dict) and "__object__" in v:
        from .base import BaseEstimator

        return _probssm_class(v["__object__"], BaseEstimator)(**_from_json(v["params"]))
    if isinstance(v, list):
        return [_decode(x) for x in v]
    if isinstance(v, dict):
        return {k: _decode(x) for k, x in v.items()}
    return v


def _probssm_class(path: str, base: type) -> type:
    """The class named ``path``, only if it is a probssm subclass of ``base``."""
    module_name, _, class_name = path.rpartition(".")
    if not module_name.startswith("probssm."):
        raise ValueError(f"refusing to load non-probssm class {path!r}")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ValueError(f"{path!r} is not a probssm {base.__name__}")
    return cls


def load(path, **code):
    """Load an estimator written by :meth:`~probssm.base.BaseForecaster.save` (also
    ``probssm.load``); only probssm classes are instantiated. Raises ``ValueError`` for another
    format version or a class outside probssm.

    ``code``: the hyper-parameters that are code and so were not saved, e.g. the model
    specification of a nonlinear filter, ``probssm.load(path, model=spec)``; the error names
    the ones missing."""
    from .base import BaseForecaster

    path = Path(path)
    doc = json.loads((path / "estimator.json").read_text())
    if doc.get("format") != FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported format version {doc.get('format')!r}")
    try:
        cls = _probssm_class(doc["class"], BaseForecaster)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    params = _from_json(doc["params"])
    needed = {k: v["__code__"] for k, v in doc["params"].items() if isinstance(v, dict) and "__code__" in v}
    missing = sorted(set(needed) - set(code))
    if missing:
        raise ValueError(f"{path}: {cls.__name__} was saved without its {', '.join(missing)} (code, "
                         f"of type {', '.join(needed[k] for k in missing)}); pass "
                         f"{', '.join(f'{k}=...' for k in missing)} to load")
    unknown = sorted(set(code) - set(needed))
    if unknown:
        raise ValueError(f"{path}: unexpected keywords {unknown}; this file needs {sorted(needed) or 'none'}")
    params.update(code)
    est = cls(**params)
    _restore_config(est, _from_json(doc.get("config", {})))
    if "panel" in doc:
        ids = _decode(doc["panel"]["ids"])
        est._restore_panel({sid: load(path / f"series_{i}", **code) for i, sid in enumerate(ids)}, doc["panel"]["name"])
        est.failures_ = {sid: msg for sid, msg in _decode(doc["panel"].get("failures", []))}
        return est
    with np.load(path / "arrays.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    est._panel = None
    est._y = _data.SeriesData(
        arrays.pop("y_values"),
        _data.index_from_json(doc["y"]["index"]),
        doc["y"]["columns"],
        doc["y"]["is_series"],
    )
    est._X = arrays.pop("X_values", None)
    est._exog_columns = doc.get("exog_columns")
    est._restore_fitted_state(doc["fitted"], arrays)
    est._restore_cutoff()
    est.is_fitted_ = True
    return est


encode = _encode
"""The JSON form of a hyper-parameter or fitted object (for estimators' ``_fitted_state``)."""
decode = _decode
"""Inverse of :data:`encode`."""
