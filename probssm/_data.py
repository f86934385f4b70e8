"""The one path for input checks and pandas <-> array conversion.

Estimators call :func:`as_series_data` on every ``y`` they receive, :func:`as_exog` on every
``X``, and :func:`forecast_steps` / :func:`future_index` on every forecast horizon; metrics and
diagnostics read their arrays through :func:`as_float_array` and :func:`check_finite`. Nothing
else in the package inspects user data, so the same bad input raises the same error everywhere:
``TypeError`` for data of the wrong type (non-numeric values, an unsupported container),
``ValueError`` for wrong shapes or values, naming the argument, the position and expected vs got.

Training data must carry a time index that forecasts can continue (see
:mod:`probssm._time_index`): this is decided when the data arrives, not at the first forecast.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ._time_index import (
    check_continuation, check_time_index, forecast_steps, future_index, index_from_json,
    index_step, index_to_json,
)

__all__ = [
    "SeriesData", "as_series_data", "as_exog", "PanelData", "is_panel", "as_panel_data",
    "check_time_index", "index_step", "forecast_steps", "future_index", "check_continuation",
    "check_coverage", "check_alpha", "index_to_json", "index_from_json", "random_generator",
    "as_float_array", "check_finite", "check_int", "format_position",
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


def as_series_data(y, *, name: str = "y", columns=None, min_observed: int = 1,
                   time_index: bool = True) -> SeriesData:
    """Validate ``y`` and return a :class:`SeriesData` holding a float64 copy.

    Accepts a ``pd.Series`` (one variable), a ``pd.DataFrame`` (columns are variables), or an array
    of shape ``(T,)`` or ``(T, m)`` (indexed ``0..T-1``). Raises ``TypeError`` for non-numeric data
    and ``ValueError`` for infinite values (naming their position), an empty or all-missing series,
    fewer than ``min_observed`` observed time steps, an unsorted or duplicated time index, or (when
    ``columns`` is given) variables that differ from the expected ones.

    With ``time_index`` true the index must be one that forecasts can continue: a RangeIndex or
    evenly spaced integers, a PeriodIndex without gaps, or a DatetimeIndex with a frequency or a
    regular one whose frequency is inferred (and set on the returned index). A DatetimeIndex with
    gaps, string or float labels, or unevenly spaced integers raise ``ValueError`` saying how to
    regularise the data (e.g. ``y.asfreq("D")``), so that ``fit`` fails rather than a later
    ``predict``. Data that continues a fitted series (``update``, ``score``) passes
    ``time_index=False``: it is checked against the training index by
    :func:`check_continuation` instead.
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
    if time_index:
        index = check_time_index(index, name)
    cols = [str(c) for c in frame.columns]
    if columns is not None and is_series and len(columns) == 1:
        cols = list(columns)  # one unnamed-or-renamed variable: it is the fitted one
    if columns is not None and list(columns) != cols:
        raise ValueError(f"{name}: expected variables {list(columns)}, got {cols}")
    return SeriesData(values, index, cols, is_series)


def as_exog(X, index: pd.Index, *, columns=None, name: str = "X") -> tuple[np.ndarray, list]:
    """Validate exogenous regressors for the time steps ``index`` and return ``(values, columns)``.

    ``values`` is a float64 copy of shape ``(len(index), k)``, row ``t`` for label ``index[t]``.

    * A ``pd.DataFrame`` / ``pd.Series`` indexed by time is aligned **by label**: every label of
      ``index`` must be present (extra labels, a longer period say, are ignored).
    * An array ``(T,)`` / ``(T, k)``, or a pandas object with a ``RangeIndex`` that shares no
      label with ``index`` (a default index, which carries no time information), is taken **in
      order** and must have exactly ``T = len(index)`` rows: nothing is truncated silently.

    With ``columns`` given (the ones seen in ``fit``), a frame must hold those columns (selected
    by name) and an array exactly that many. Raises ``TypeError`` for non-numeric data and
    ``ValueError`` for missing labels, a wrong number of rows or columns (expected vs got), and
    NaN or infinite values (naming the row and column).
    """
    if isinstance(X, pd.Series):
        X = X.to_frame(name=X.name if X.name is not None else "x0")
    if isinstance(X, pd.DataFrame):
        frame = _exog_columns(X.set_axis([str(c) for c in X.columns], axis=1), columns, name)
        if isinstance(frame.index, pd.RangeIndex) and not frame.index.isin(index).any():
            _check_exog_rows(len(frame), index, name, "a DataFrame with a default RangeIndex")
            frame = frame.set_axis(index, axis=0)
        frame = _exog_rows_by_label(frame, index, name)
    elif isinstance(X, (np.ndarray, list, tuple)) or hasattr(X, "__array__"):
        frame = _exog_array_frame(X, index, columns, name)
    else:
        raise TypeError(f"{name}: expected a pandas DataFrame/Series or a NumPy array, got {type(X).__name__}")
    for col in frame.columns:
        if not _is_real_dtype(frame[col].dtype):
            raise TypeError(f"{name}: column {col!r} has non-numeric dtype {frame[col].dtype}")
    if frame.shape[1] == 0:
        raise ValueError(f"{name} has no columns")
    values = frame.to_numpy(dtype=np.float64, copy=True)
    cols = list(frame.columns)
    bad = ~np.isfinite(values)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ValueError(
            f"{name} has a missing or infinite value at time {index[i]!r} (row {i}), column "
            f"{cols[j]!r}; exogenous regressors must be observed at every time step"
        )
    return values, cols


def _is_real_dtype(dtype) -> bool:
    return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)


def _exog_columns(frame: pd.DataFrame, columns, name: str) -> pd.DataFrame:
    """The columns seen in ``fit``, selected by name (all columns when ``columns`` is None)."""
    if columns is None:
        return frame
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{name}: exogenous columns {missing} seen in fit are missing (got {list(frame.columns)})"
        )
    return frame[list(columns)]


def _exog_rows_by_label(frame: pd.DataFrame, index: pd.Index, name: str) -> pd.DataFrame:
    absent = index[~index.isin(frame.index)]
    if len(absent):
        raise ValueError(
            f"{name} has no row for time {absent[0]!r} ({len(absent)} of the {len(index)} needed "
            f"labels are missing; {name}'s index runs from {frame.index[0]!r} to "
            f"{frame.index[-1]!r}); rows are matched to the time index by label"
        )
    if frame.index.has_duplicates:
        raise ValueError(f"{name}: the index has duplicated label {frame.index[frame.index.duplicated()][0]!r}")
    return frame.loc[index]


def _exog_array_frame(X, index: pd.Index, columns, name: str) -> pd.DataFrame:
    arr = np.asarray(X)
    if not _is_real_dtype(arr.dtype):
        raise TypeError(f"{name}: expected numeric values, got dtype {arr.dtype}")
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected shape (T, k), got {arr.shape}")
    _check_exog_rows(arr.shape[0], index, name, "an array")
    if columns is not None and arr.shape[1] != len(columns):
        raise ValueError(
            f"{name}: expected {len(columns)} exogenous columns {list(columns)}, got {arr.shape[1]}"
        )
    cols = list(columns) if columns is not None else [f"x{j + 1}" for j in range(arr.shape[1])]
    return pd.DataFrame(arr, index=index, columns=cols)


def _check_exog_rows(got: int, index: pd.Index, name: str, what: str) -> None:
    """Rows taken in order must match the time steps one to one."""
    if got != len(index):
        raise ValueError(
            f"{name}: expected {len(index)} rows (one per time step, {index[0]!r} to "
            f"{index[-1]!r}), got {got}; {what} is matched to the time steps by position, so it "
            "needs exactly that many rows (or index it by time to select rows by label)"
        )


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
    index = check_time_index(wide.index, name)
    values = wide.to_numpy(dtype=np.float64, copy=True).T
    if np.isinf(values).any():
        i, t = np.argwhere(np.isinf(values))[0]
        raise ValueError(f"{name}: series {wide.columns[i]!r} has an infinite value at {wide.index[t]!r}")
    empty = np.all(np.isnan(values), axis=1)
    if empty.any():
        raise ValueError(f"{name}: series {wide.columns[int(np.argmax(empty))]!r} has no observed values")
    return PanelData(values, list(wide.columns), index, value_name)


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


# --------------------------------------------------------------------------- #
# Plain arrays (metrics, diagnostics)
# --------------------------------------------------------------------------- #
def as_float_array(x: Any, name: str) -> np.ndarray:
    """A fresh float64 copy of ``x``: a NumPy or JAX array, nested lists, a scalar, or a pandas
    Series/DataFrame (read **by position**: labels are dropped; missing values become NaN).

    Raises ``TypeError`` naming ``name`` when ``x`` does not hold numbers (strings, objects).
    """
    try:
        if isinstance(x, (pd.Series, pd.DataFrame)):
            return np.array(x.to_numpy(dtype=float, na_value=np.nan), dtype=np.float64, copy=True)
        return np.array(x, dtype=np.float64, copy=True)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} could not be converted to a float array: {exc}") from exc


def format_position(flat_index: int, shape: tuple[int, ...]) -> str:
    """The position of element ``flat_index`` (C order) of an array of ``shape``: ``"3"`` for 1-D,
    ``"(1, 2)"`` otherwise."""
    pos = tuple(int(i) for i in np.unravel_index(flat_index, shape))
    return str(pos[0]) if len(pos) == 1 else str(pos)


def check_finite(arr: np.ndarray, name: str, *, allow_nan: bool = False) -> None:
    """Raise ``ValueError`` naming ``name`` and the position of the first NaN (unless
    ``allow_nan``, where NaN marks a missing value) or infinite value of ``arr``."""
    bad = np.isinf(arr) if allow_nan else ~np.isfinite(arr)
    if not bad.any():
        return
    flat = int(np.flatnonzero(bad.ravel())[0])
    value = arr.ravel()[flat]
    kind = "NaN" if np.isnan(value) else ("inf" if value > 0 else "-inf")
    where = "" if arr.ndim == 0 else f" at position {format_position(flat, arr.shape)}"
    rule = "use NaN for missing values" if allow_nan else "all inputs must be finite"
    raise ValueError(f"{name} contains {kind}{where}; {rule}")


def check_int(value: Any, name: str, minimum: int) -> int:
    """``value`` as an int; ``TypeError`` unless it is an integer (bools are not), ``ValueError``
    when it is below ``minimum``."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {value!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value
