"""The one path for input checks and pandas <-> array conversion.

Estimators call :func:`as_series_data` on every ``y`` they receive and :func:`forecast_steps` /
:func:`future_index` on every forecast horizon; nothing else in the package inspects user data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "SeriesData", "as_series_data", "as_exog", "PanelData", "is_panel", "as_panel_data", "forecast_steps", "future_index", "check_continuation",
    "check_coverage", "check_alpha", "index_to_json", "index_from_json", "random_generator",
]


@dataclass(frozen=True)
class SeriesData:
    """Validated observations.

    Attributes
    ----------
    values : ndarray, shape ``(T, m)``, float64
        A private copy of the data; NaN marks missing entries.
    index : pandas.Index, length ``T``
        The time index (sorted, unique).
    columns : list of str, length ``m``
        Variable names.
    is_series : bool
        Whether the input was one-dimensional (a Series or 1-D array).
    """

    values: np.ndarray
    index: pd.Index
    columns: list
    is_series: bool

    @property
    def num_timesteps(self) -> int:
        return self.values.shape[0]

    def append(self, other: "SeriesData") -> "SeriesData":
        return SeriesData(
            np.concatenate([self.values, other.values]),
            self.index.append(other.index),
            self.columns,
            self.is_series,
        )


def as_series_data(y, *, name: str = "y", columns=None, min_observed: int = 1) -> SeriesData:
    """Validate ``y`` and return a :class:`SeriesData` holding a float64 copy.

    Accepts a ``pd.Series`` (one variable), a ``pd.DataFrame`` (columns are variables), or an array
    of shape ``(T,)`` or ``(T, m)``. Raises ``TypeError`` for non-numeric data and ``ValueError``
    for infinite values (naming their position), an empty or all-missing series, fewer than
    ``min_observed`` observed time steps, an unsorted or duplicated time index, or (when
    ``columns`` is given) variables that differ from the expected ones.
    """
    if isinstance(y, pd.Series):
        frame, is_series = y.to_frame(name=y.name if y.name is not None else name), True
    elif isinstance(y, pd.DataFrame):
        frame, is_series = y, False
    elif isinstance(y, (np.ndarray, list, tuple)) or np.isscalar(y) or hasattr(y, "__array__"):
        arr = np.asarray(y)
        if arr.ndim == 1:
            frame, is_series = pd.DataFrame({name: arr}), True
        elif arr.ndim == 2:
            cols = [f"{name}{j}" for j in range(arr.shape[1])] if arr.shape[1] > 1 else [name]
            frame, is_series = pd.DataFrame(arr, columns=cols), False
        else:
            raise ValueError(f"{name}: expected a 1-D or 2-D array (T,) or (T, m), got shape {arr.shape}")
    else:
        raise TypeError(
            f"{name}: expected a pandas Series/DataFrame or a NumPy array, got {type(y).__name__}"
        )
    if isinstance(frame.index, pd.MultiIndex):
        raise ValueError(
            f"{name}: panel input (rows indexed by (series_id, time)) is not supported by this "
            "estimator; fit one series at a time"
        )
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {frame.shape})")
    for col in frame.columns:
        dtype = frame[col].dtype
        if not (pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)):
            raise TypeError(f"{name}: column {col!r} has non-numeric dtype {dtype}")
    values = frame.to_numpy(dtype=np.float64, copy=True)
    bad = np.isinf(values)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ValueError(
            f"{name} contains an infinite value at position {i} (index {frame.index[i]!r}, "
            f"column {frame.columns[j]!r}); use NaN for missing values"
        )
    observed_rows = int(np.sum(~np.all(np.isnan(values), axis=1)))
    if observed_rows == 0:
        raise ValueError(f"{name} has no observed values (all entries are NaN)")
    if observed_rows < min_observed:
        raise ValueError(
            f"{name} has {observed_rows} observed time steps; at least {min_observed} are needed"
        )
    index = frame.index
    if index.has_duplicates:
        dup = index[index.duplicated()][0]
        raise ValueError(f"{name}: the time index has duplicated label {dup!r}")
    if not index.is_monotonic_increasing:
        pos = int(np.argmax(np.diff(np.arange(len(index))[np.argsort(index, kind="stable")]) < 0))
        raise ValueError(
            f"{name}: the time index is not sorted increasingly (first out of order near label "
            f"{index[pos]!r}); sort it with .sort_index()"
        )
    cols = [str(c) for c in frame.columns]
    if columns is not None and is_series and len(columns) == 1:
        cols = list(columns)  # one unnamed-or-renamed variable: it is the fitted one
    if columns is not None and list(columns) != cols:
        raise ValueError(f"{name}: expected variables {list(columns)}, got {cols}")
    return SeriesData(values, index, cols, is_series)


def as_exog(X, index: pd.Index, *, columns=None, name: str = "X") -> tuple[np.ndarray, list]:
    """Validate exogenous regressors for the time steps ``index`` and return ``(values, columns)``.

    ``values`` is a float64 copy of shape ``(len(index), k)``. ``X`` may be a ``pd.DataFrame`` or
    ``pd.Series`` whose index contains every label of ``index`` (rows are selected by label, so a
    frame covering a longer period works), or an array ``(T,)``/``(T, k)`` with at least
    ``len(index)`` rows (the first ones are used). With ``columns`` given (the ones seen in
    ``fit``), a frame must hold those columns (selected by name) and an array exactly that many.
    Raises ``TypeError`` for non-numeric data and ``ValueError`` for NaN or infinite values
    (naming the row and column), missing rows or columns, and wrong shapes.
    """
    n = len(index)
    if isinstance(X, pd.Series):
        X = X.to_frame(name=X.name if X.name is not None else "x0")
    if isinstance(X, pd.DataFrame):
        cols = [str(c) for c in X.columns]
        frame = X.set_axis(cols, axis=1)
        if columns is not None:
            missing = [c for c in columns if c not in cols]
            if missing:
                raise ValueError(f"{name}: exogenous columns {missing} seen in fit are missing (got {cols})")
            frame, cols = frame[list(columns)], list(columns)
        if isinstance(frame.index, pd.RangeIndex) and not frame.index.isin(index).any():
            # A default 0..k-1 index that shares no label with the needed times carries no
            # time information: its rows are taken in order.
            frame = frame.iloc[:n].set_axis(index[:min(n, len(frame))], axis=0)
        absent = index[~index.isin(frame.index)]
        if len(absent):
            raise ValueError(
                f"{name} has no row for time {absent[0]!r} ({len(absent)} of the {n} needed labels "
                f"are missing; {name}'s index runs from {frame.index[0]!r} to {frame.index[-1]!r})"
            )
        if frame.index.has_duplicates:
            raise ValueError(f"{name}: the index has duplicated label {frame.index[frame.index.duplicated()][0]!r}")
        for col in frame.columns:
            dtype = frame[col].dtype
            if not (pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)):
                raise TypeError(f"{name}: column {col!r} has non-numeric dtype {dtype}")
        values = frame.loc[index].to_numpy(dtype=np.float64, copy=True)
    elif isinstance(X, (np.ndarray, list, tuple)) or hasattr(X, "__array__"):
        arr = np.asarray(X)
        if not (np.issubdtype(arr.dtype, np.number) and not np.issubdtype(arr.dtype, np.bool_)):
            raise TypeError(f"{name}: expected numeric values, got dtype {arr.dtype}")
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2:
            raise ValueError(f"{name}: expected shape (T, k), got {arr.shape}")
        if arr.shape[0] < n:
            raise ValueError(f"{name}: expected at least {n} rows (one per time step), got {arr.shape[0]}")
        if columns is not None and arr.shape[1] != len(columns):
            raise ValueError(
                f"{name}: expected {len(columns)} exogenous columns {list(columns)}, got {arr.shape[1]}"
            )
        cols = list(columns) if columns is not None else [f"x{j + 1}" for j in range(arr.shape[1])]
        values = np.array(arr[:n], dtype=np.float64)
    else:
        raise TypeError(f"{name}: expected a pandas DataFrame/Series or a NumPy array, got {type(X).__name__}")
    bad = ~np.isfinite(values)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ValueError(
            f"{name} has a missing or infinite value at time {index[i]!r} (row {i}), column "
            f"{cols[j]!r}; exogenous regressors must be observed at every time step"
        )
    if values.shape[1] == 0:
        raise ValueError(f"{name} has no columns")
    return values, cols


@dataclass(frozen=True)
class PanelData:
    """Many univariate series on one time grid.

    Attributes
    ----------
    values : ndarray, shape ``(B, T)``, float64
        One row per series, aligned on the union of their time labels; NaN where a series has no
        value (missing or outside its span).
    ids : list, length ``B``
        Series identifiers (column names, or the first level of a ``(series_id, time)`` index,
        or ``unique_id``).
    index : pandas.Index, length ``T``
        The common, sorted time index.
    name : str
        The value column's name.
    """

    values: np.ndarray
    ids: list
    index: pd.Index
    name: str

    def series_data(self, i: int, min_observed: int = 1) -> SeriesData:
        """Series ``i`` on the common index as :class:`SeriesData` (one variable named
        ``name``): a float64 copy of ``values[i]`` of shape ``(T, 1)``. The panel was validated
        as a whole; this checks only that the series has ``min_observed`` observed steps."""
        values = self.values[i][:, None].copy()
        observed = int(np.sum(~np.isnan(values)))
        if observed < min_observed:
            raise ValueError(
                f"{self.name}: series {self.ids[i]!r} has {observed} observed time steps; at least "
                f"{min_observed} are needed"
            )
        return SeriesData(values, self.index, [self.name], True)


def is_panel(y, univariate: bool) -> bool:
    """Whether ``y`` holds many series: rows indexed by ``(series_id, time)``, a long frame with
    ``unique_id``, ``ds`` and ``y`` columns, or (for univariate models) a DataFrame of several
    columns."""
    if isinstance(y, pd.DataFrame):
        if isinstance(y.index, pd.MultiIndex):
            return True
        if {"unique_id", "ds", "y"} <= set(map(str, y.columns)):
            return True
        return univariate and y.shape[1] > 1
    return isinstance(y, pd.Series) and isinstance(y.index, pd.MultiIndex)


def as_panel_data(y, *, name: str = "y") -> PanelData:
    """Validate a panel (see :func:`is_panel`) and align its series on one time grid.

    Raises ``ValueError`` for a MultiIndex that is not two levels, several value columns in a
    ``(series_id, time)`` frame, duplicated ``(series_id, time)`` pairs, infinite values or a
    series without observations (naming it), and ``TypeError`` for non-numeric values.
    """
    if isinstance(y, pd.DataFrame) and not isinstance(y.index, pd.MultiIndex) \
            and {"unique_id", "ds", "y"} <= set(map(str, y.columns)):
        y = y.set_index(["unique_id", "ds"])["y"]
    if isinstance(y, pd.DataFrame) and isinstance(y.index, pd.MultiIndex):
        if y.shape[1] != 1:
            raise ValueError(
                f"{name}: a (series_id, time) panel needs one value column, got {list(y.columns)}"
            )
        y = y.iloc[:, 0]
    if isinstance(y, pd.Series):
        if y.index.nlevels != 2:
            raise ValueError(f"{name}: a panel index needs two levels (series_id, time), got {y.index.nlevels}")
        if y.index.has_duplicates:
            dup = y.index[y.index.duplicated()][0]
            raise ValueError(f"{name}: the panel has the (series_id, time) pair {dup!r} twice")
        value_name = str(y.name) if y.name is not None else name
        wide = y.unstack(level=0)
    else:
        wide, value_name = y, name
    for col in wide.columns:
        dtype = wide[col].dtype
        if not (pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)):
            raise TypeError(f"{name}: series {col!r} has non-numeric dtype {dtype}")
    wide = wide.sort_index()
    if wide.index.has_duplicates:
        dup = wide.index[wide.index.duplicated()][0]
        raise ValueError(f"{name}: the time index has duplicated label {dup!r}")
    values = wide.to_numpy(dtype=np.float64, copy=True).T
    if np.isinf(values).any():
        i, t = np.argwhere(np.isinf(values))[0]
        raise ValueError(f"{name}: series {wide.columns[i]!r} has an infinite value at {wide.index[t]!r}")
    empty = np.all(np.isnan(values), axis=1)
    if empty.any():
        raise ValueError(f"{name}: series {wide.columns[int(np.argmax(empty))]!r} has no observed values")
    return PanelData(values, list(wide.columns), wide.index, value_name)


def _step_of(index: pd.Index):
    """The index's step (freq for dates/periods, spacing for integers)."""
    if isinstance(index, pd.PeriodIndex):
        return index.freq
    if isinstance(index, pd.DatetimeIndex):
        freq = index.freq or (pd.infer_freq(index) if len(index) >= 3 else None)
        if freq is None:
            raise ValueError(
                "cannot continue a DatetimeIndex without a frequency: give the training data a "
                "regular index before fit (e.g. y = y.asfreq('D'), NaN filling the gaps)"
            )
        return pd.tseries.frequencies.to_offset(freq)
    if isinstance(index, pd.RangeIndex):
        return index.step
    if pd.api.types.is_integer_dtype(index.dtype):
        steps = np.unique(np.diff(index.to_numpy()))
        if len(index) == 1:
            return 1
        if len(steps) == 1:
            return int(steps[0])
        raise ValueError("cannot continue an unevenly spaced integer index")
    raise ValueError(
        f"cannot continue a time index of type {type(index).__name__}; use a DatetimeIndex with a "
        "frequency, a PeriodIndex or an integer index"
    )


def future_index(index: pd.Index, steps) -> pd.Index:
    """Labels of ``steps`` (positive ints) after the last label of ``index``, named like it.

    DatetimeIndex keeps its frequency, PeriodIndex its period, RangeIndex and evenly spaced
    integer indices their step.
    """
    return _future_labels(index, steps).rename(index.name)


def _future_labels(index: pd.Index, steps) -> pd.Index:
    steps = np.asarray(steps, dtype=int)
    step = _step_of(index)
    last = index[-1]
    if isinstance(index, pd.PeriodIndex):
        return pd.PeriodIndex([last + int(k) for k in steps], freq=index.freq)
    if isinstance(index, pd.DatetimeIndex):
        labels = pd.DatetimeIndex([last + int(k) * step for k in steps], tz=index.tz)
        if len(steps) > 1 and np.all(np.diff(steps) == 1):
            labels.freq = step
        return labels
    if isinstance(index, pd.RangeIndex) and len(steps) and np.all(np.diff(steps) == 1):
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
    step = _step_of(index)
    last = index[-1]
    if isinstance(index, pd.PeriodIndex):
        return np.array([(pd.Period(l, freq=index.freq) - last).n for l in labels])
    if isinstance(index, pd.DatetimeIndex):
        out = []
        for label in labels:
            rng = pd.date_range(last, pd.Timestamp(label), freq=step)
            if len(rng) == 0 or rng[-1] != pd.Timestamp(label):
                raise ValueError(f"fh label {label!r} is not on the training index's grid ({step.freqstr})")
            out.append(len(rng) - 1)
        return np.array(out)
    diff = (labels.to_numpy() - last)
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


def check_coverage(coverage) -> list[float]:
    """Coverage levels in (0, 1) as a list."""
    cov = [float(c) for c in np.atleast_1d(coverage)]
    for c in cov:
        if not 0.0 < c < 1.0:
            raise ValueError(f"coverage must be in (0, 1), got {c}")
    return cov


def check_alpha(alpha) -> list[float]:
    """Quantile levels in (0, 1) as a list."""
    alphas = [float(a) for a in np.atleast_1d(alpha)]
    for a in alphas:
        if not 0.0 < a < 1.0:
            raise ValueError(f"alpha (quantile levels) must be in (0, 1), got {a}")
    return alphas


def random_generator(random_state) -> np.random.Generator:
    """``None``, an int seed or a ``np.random.Generator`` -> a Generator."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    if random_state is None or isinstance(random_state, (int, np.integer)):
        return np.random.default_rng(random_state)
    raise TypeError(f"random_state must be None, an int or a numpy Generator, got {type(random_state).__name__}")


def index_to_json(index: pd.Index) -> dict:
    """A JSON-serialisable description of a time index (for ``save``)."""
    return {"name": index.name, **_index_values_to_json(index)}


def _index_values_to_json(index: pd.Index) -> dict:
    if isinstance(index, pd.RangeIndex):
        return {"kind": "range", "start": index.start, "stop": index.stop, "step": index.step}
    if isinstance(index, pd.PeriodIndex):
        return {"kind": "period", "values": index.astype(str).tolist(), "freq": index.freqstr}
    if isinstance(index, pd.DatetimeIndex):
        return {
            "kind": "datetime", "values": index.asi8.tolist(),
            "freq": index.freqstr if index.freq is not None else None,
            "tz": str(index.tz) if index.tz is not None else None,
        }
    return {"kind": "values", "values": json.loads(pd.Series(index).to_json(orient="values"))}


def index_from_json(spec: dict) -> pd.Index:
    """Inverse of :func:`index_to_json`."""
    return _index_values_from_json(spec).rename(spec.get("name"))


def _index_values_from_json(spec: dict) -> pd.Index:
    kind = spec["kind"]
    if kind == "range":
        return pd.RangeIndex(spec["start"], spec["stop"], spec["step"])
    if kind == "period":
        return pd.PeriodIndex(spec["values"], freq=spec["freq"])
    if kind == "datetime":
        idx = pd.DatetimeIndex(np.asarray(spec["values"], dtype="datetime64[ns]"))
        if spec["tz"]:
            idx = idx.tz_localize("UTC").tz_convert(spec["tz"])
        if spec["freq"]:
            idx.freq = spec["freq"]
        return idx
    return pd.Index(spec["values"])
