"""Time indices: which ones forecasts can continue, their continuation, and their JSON form.

A *time index* is one whose labels a forecast can extend step by step:

* a ``RangeIndex`` or an evenly spaced integer index (the step is the spacing);
* a ``PeriodIndex`` without gaps (the step is one period);
* a ``DatetimeIndex`` with a frequency, or a regular one whose frequency ``pd.infer_freq`` finds
  (at least three labels); the inferred frequency is set on a new index, the caller's is untouched.

Everything else (a DatetimeIndex with gaps, string, float or unevenly spaced integer labels) is
rejected by :func:`check_time_index` with a ``ValueError`` that says how to regularise the data.
:mod:`probssm._data` re-exports the public functions; estimators reach them through it.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

__all__ = [
    "check_time_index", "index_step", "future_index", "forecast_steps", "check_continuation",
    "index_to_json", "index_from_json",
]


# --------------------------------------------------------------------------- #
# Which indices can be continued
# --------------------------------------------------------------------------- #
def check_time_index(index: pd.Index, name: str = "y") -> pd.Index:
    """Return ``index`` if forecasts can continue it, with an inferred frequency set on a copy
    of a regular ``DatetimeIndex`` that has none; raise ``ValueError`` (what is wrong and how to
    fix it) otherwise. ``index`` is sorted and unique (checked before)."""
    if isinstance(index, pd.DatetimeIndex) and index.freq is None:
        return pd.DatetimeIndex(index, freq=_datetime_step(index, name))
    if isinstance(index, pd.PeriodIndex):
        _check_periods_without_gaps(index, name)
    index_step(index, name)
    return index


def index_step(index: pd.Index, name: str = "y"):
    """The step between consecutive labels: a ``DateOffset`` for dates and periods, an int for
    integer labels. Raises ``ValueError`` for an index forecasts cannot continue."""
    if isinstance(index, pd.PeriodIndex):
        return index.freq
    if isinstance(index, pd.DatetimeIndex):
        return index.freq if index.freq is not None else _datetime_step(index, name)
    if isinstance(index, pd.RangeIndex):
        return index.step
    if pd.api.types.is_integer_dtype(index.dtype):
        return _integer_step(index, name)
    hint = (
        "convert date strings with y.index = pd.to_datetime(y.index) and give them a frequency"
        if pd.api.types.is_object_dtype(index.dtype) or pd.api.types.is_string_dtype(index.dtype)
        else "use a DatetimeIndex with a frequency, a PeriodIndex or an integer index"
    )
    raise ValueError(
        f"{name}: cannot continue a time index of type {type(index).__name__} with dtype "
        f"{index.dtype}; {hint} (or fit an array, which is indexed 0..T-1)"
    )


def _datetime_step(index: pd.DatetimeIndex, name: str) -> pd.DateOffset:
    freq = pd.infer_freq(index) if len(index) >= 3 else None
    if freq is None:
        why = "fewer than 3 labels" if len(index) < 3 else "irregular spacing (gaps)"
        raise ValueError(
            f"{name}: cannot continue a DatetimeIndex without a frequency ({why}, so none can be "
            f"inferred; labels {index[0]} .. {index[-1]}): give the data a regular index before "
            "fit, e.g. y = y.asfreq('D') (NaN fills the gaps and is treated as missing)"
        )
    return pd.tseries.frequencies.to_offset(freq)


def _integer_step(index: pd.Index, name: str) -> int:
    if len(index) == 1:
        return 1
    steps = np.unique(np.diff(index.to_numpy()))
    if len(steps) == 1:
        return int(steps[0])
    raise ValueError(
        f"{name}: cannot continue an unevenly spaced integer index (steps {steps[:5].tolist()} "
        f"between labels); reindex to a regular grid, e.g. "
        f"y = y.reindex(range({index[0]}, {index[-1] + 1}, {int(steps.min())})) "
        "(NaN fills the gaps and is treated as missing)"
    )


def _check_periods_without_gaps(index: pd.PeriodIndex, name: str) -> None:
    ordinals = index.asi8
    gaps = np.flatnonzero(np.diff(ordinals) != index.freq.n)
    if gaps.size:
        raise ValueError(
            f"{name}: the PeriodIndex has gaps (first after {index[gaps[0]]}); fill them before "
            "fit, e.g. y = y.reindex(pd.period_range(y.index[0], y.index[-1], "
            f"freq={index.freqstr!r})) (NaN is treated as missing)"
        )


# --------------------------------------------------------------------------- #
# Continuation
# --------------------------------------------------------------------------- #
def future_index(index: pd.Index, steps) -> pd.Index:
    """Labels of ``steps`` (positive ints) after the last label of ``index``, named like it.

    DatetimeIndex keeps its frequency, unit and time zone, PeriodIndex its period, RangeIndex and
    evenly spaced integer indices their step.
    """
    return _future_labels(index, steps).rename(index.name)


def _future_labels(index: pd.Index, steps) -> pd.Index:
    steps = np.asarray(steps, dtype=int)
    step = index_step(index)
    last = index[-1]
    consecutive = len(steps) > 1 and bool(np.all(np.diff(steps) == 1))
    if isinstance(index, pd.PeriodIndex):
        return pd.PeriodIndex([last + int(k) for k in steps], freq=index.freq)
    if isinstance(index, pd.DatetimeIndex):
        # A list of Timestamps becomes nanoseconds: keep the training index's unit.
        labels = pd.DatetimeIndex([last + int(k) * step for k in steps], tz=index.tz).as_unit(index.unit)
        return pd.DatetimeIndex(labels, freq=step) if consecutive else labels
    if isinstance(index, pd.RangeIndex) and len(steps) and (consecutive or len(steps) == 1):
        return pd.RangeIndex(last + step * int(steps[0]), last + step * (int(steps[-1]) + 1), step)
    return pd.Index(last + step * steps)


def forecast_steps(fh, index: pd.Index) -> np.ndarray:
    """Turn a forecast horizon into sorted positive step numbers (1 = first step past the data).

    ``fh`` is an int ``h`` (steps ``1..h``), a list/array of positive ints (steps), or a pandas
    Index of future labels of the same kind as ``index`` (labels, also for integer indices).
    """
    if isinstance(fh, (bool, np.bool_)):
        raise TypeError(f"fh must be an int, a list of steps or an index, got {fh!r}")
    if isinstance(fh, (int, np.integer)):
        if fh < 1:
            raise ValueError(f"fh must be a positive integer, got {fh}")
        return np.arange(1, int(fh) + 1)
    if isinstance(fh, pd.Index):  # an index holds future labels, whatever its dtype
        steps = _steps_from_labels(fh, index)
    else:
        arr = np.asarray(fh)
        if arr.ndim != 1 or arr.size == 0 or not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"fh must be an int, a non-empty list of ints or an index, got {fh!r}")
        steps = arr.astype(int)
    if np.any(steps < 1):
        raise ValueError(f"forecast steps must be >= 1 (after the training data), got {steps.tolist()}")
    if len(np.unique(steps)) != len(steps):
        raise ValueError(f"forecast steps are duplicated: {steps.tolist()}")
    return np.sort(steps)


def _steps_from_labels(labels: pd.Index, index: pd.Index) -> np.ndarray:
    step = index_step(index)
    last = index[-1]
    if isinstance(index, pd.PeriodIndex):
        return np.array([(pd.Period(label, freq=index.freq) - last).n for label in labels])
    if isinstance(index, pd.DatetimeIndex):
        out = []
        for label in labels:
            rng = pd.date_range(last, pd.Timestamp(label), freq=step)
            if len(rng) == 0 or rng[-1] != pd.Timestamp(label):
                raise ValueError(f"fh label {label!r} is not on the training index's grid ({step.freqstr})")
            out.append(len(rng) - 1)
        return np.array(out)
    diff = labels.to_numpy() - last
    if np.any(diff % step):
        raise ValueError(f"fh labels {labels.tolist()} are not on the training index's grid (step {step})")
    return (diff // step).astype(int)


def check_continuation(index: pd.Index, new_index: pd.Index, name: str = "y_new") -> None:
    """Raise unless ``new_index`` starts right after ``index`` and continues its grid."""
    expected = future_index(index, np.arange(1, len(new_index) + 1))
    if len(expected) != len(new_index) or not np.all(np.asarray(expected) == np.asarray(new_index)):
        raise ValueError(
            f"{name} must continue the training data: expected index starting at {expected[0]!r}, "
            f"got {new_index[0]!r}"
        )


# --------------------------------------------------------------------------- #
# JSON form (for save / load)
# --------------------------------------------------------------------------- #
def index_to_json(index: pd.Index) -> dict:
    """A JSON-serialisable description of a time index (for ``save``) that
    :func:`index_from_json` turns back into an equal index: same kind, dtype (datetime unit and
    time zone included), frequency and name."""
    return {"name": index.name, **_index_values_to_json(index)}


def _index_values_to_json(index: pd.Index) -> dict:
    if isinstance(index, pd.RangeIndex):
        return {"kind": "range", "start": index.start, "stop": index.stop, "step": index.step}
    if isinstance(index, pd.PeriodIndex):
        # Ordinals are exact for every frequency; the strings are for people reading the file.
        return {"kind": "period", "ordinals": index.asi8.tolist(), "freq": index.freqstr,
                "values": index.astype(str).tolist()}
    if isinstance(index, pd.DatetimeIndex):
        # asi8 counts in the index's own unit (s, ms, us or ns), since the epoch in UTC.
        return {
            "kind": "datetime", "unit": index.unit, "values": index.asi8.tolist(),
            "freq": index.freqstr if index.freq is not None else None,
            "tz": str(index.tz) if index.tz is not None else None,
        }
    if pd.api.types.is_numeric_dtype(index.dtype) and not pd.api.types.is_bool_dtype(index.dtype):
        # Python floats print exactly in JSON (pandas' to_json keeps 10 significant digits).
        return {"kind": "values", "dtype": str(index.dtype), "values": index.tolist()}
    return {"kind": "values", "dtype": str(index.dtype),
            "values": json.loads(pd.Series(index).to_json(orient="values"))}


def index_from_json(spec: dict) -> pd.Index:
    """Inverse of :func:`index_to_json`."""
    return _index_values_from_json(spec).rename(spec.get("name"))


def _index_values_from_json(spec: dict) -> pd.Index:
    kind = spec["kind"]
    if kind == "range":
        return pd.RangeIndex(spec["start"], spec["stop"], spec["step"])
    if kind == "period":
        if "ordinals" not in spec:  # written before ordinals were stored
            return pd.PeriodIndex(spec["values"], freq=spec["freq"])
        ordinals = np.asarray(spec["ordinals"], dtype=np.int64)
        return pd.PeriodIndex(pd.arrays.PeriodArray(ordinals, dtype=pd.PeriodDtype(spec["freq"])))
    if kind == "datetime":
        return _datetime_index_from_json(spec)
    dtype = spec.get("dtype")
    return pd.Index(spec["values"], dtype=dtype) if dtype else pd.Index(spec["values"])


def _datetime_index_from_json(spec: dict) -> pd.DatetimeIndex:
    unit = spec.get("unit", "ns")  # files written before the unit was stored hold nanoseconds
    stamps = np.asarray(spec["values"], dtype=np.int64).view(f"datetime64[{unit}]")
    index = pd.DatetimeIndex(stamps)
    if spec["tz"]:
        index = index.tz_localize("UTC").tz_convert(spec["tz"])
    if spec["freq"]:
        index = pd.DatetimeIndex(index, freq=spec["freq"])
    return index
