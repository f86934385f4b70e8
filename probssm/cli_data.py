"""The command line's reading of the user's file: a CSV or Parquet table, wide (one column per
series) or long (an id column), becomes a wide frame on a regular time index.

Every problem with the file raises :class:`InputError`, whose message names the file, the
column and the rows or timestamps at fault; the command prints it and exits with code 2.
"""

from __future__ import annotations

import difflib
import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["InputError", "read_table", "series_frame", "check_lengths"]

# How many offending values or timestamps a message lists before it says "and N more".
_SHOWN = 5


class InputError(ValueError):
    """A problem with the user's file or arguments (the command exits with code 2)."""


def read_table(path) -> pd.DataFrame:
    """Read ``path``: Parquet for ``.parquet`` / ``.pq`` (needs pyarrow), CSV otherwise
    (compressed CSV such as ``.csv.gz`` included)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"cannot read {path}: no such file")
    if path.suffix.lower() in (".parquet", ".pq"):
        if importlib.util.find_spec("pyarrow") is None:
            raise InputError(f"cannot read {path}: reading Parquet needs pyarrow "
                             "(pip install pyarrow), or give the data as CSV")
        reader, kind = (lambda p: pd.read_parquet(p, engine="pyarrow")), "Parquet"
    else:
        reader, kind = pd.read_csv, "CSV"
    try:
        frame = reader(path)
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as err:
        # pandas' EmptyDataError and pyarrow's ArrowInvalid are ValueErrors.
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"cannot read {path} as {kind}: {reason}") from None
    if frame.empty:
        raise InputError(f"cannot read {path}: the table has no rows")
    return frame


def series_frame(frame: pd.DataFrame, time_column: str, *, id_column=None, value_columns=None,
                 freq=None, source="the file") -> pd.DataFrame:
    """The series of ``frame`` as a wide frame: one column per series, rows on a regular time
    index (sorted; integer labels stay integers, other labels are parsed as dates).

    Long format when ``id_column`` is given: ``value_columns`` then names at most one value
    column (default: the only column left besides time and id). Wide format otherwise:
    ``value_columns`` selects series columns (default: every column but the time column).
    ``freq`` (a pandas frequency alias) fixes the time grid; timestamps missing from it become
    missing values. Without it the frequency is inferred and must hold for every timestamp."""
    columns = [time_column] + ([id_column] if id_column is not None else []) + list(value_columns or [])
    for column in columns:
        _check_column(frame, column, source)
    if id_column is not None:
        wide = _long_to_wide(frame, time_column, id_column, value_columns, source)
    else:
        names = list(value_columns) if value_columns else [c for c in frame.columns if c != time_column]
        if not names:
            raise InputError(f"{source} has no column besides the time column {time_column!r}")
        if frame[time_column].duplicated().any():
            dup = frame[time_column][frame[time_column].duplicated()].iloc[0]
            raise InputError(f"column {time_column!r}: the timestamp {dup!r} appears twice; "
                             "a file with one row per series and timestamp needs --id-column")
        wide = frame.set_index(time_column)[names]
    for name in wide.columns:
        _check_numeric(wide[name], name, source)
    wide = wide.astype(np.float64)
    wide.index = _time_labels(wide.index, time_column)
    wide = wide.sort_index()
    return _on_regular_grid(wide, time_column, freq)


def check_lengths(wide: pd.DataFrame, minimum: int, why: str) -> None:
    """Raise unless every series has at least ``minimum`` observed values (``why`` says where
    the minimum comes from)."""
    observed = wide.notna().sum()
    short = observed[observed < minimum]
    if len(short):
        listed = ", ".join(f"{name!r} ({int(n)})" for name, n in short.iloc[:_SHOWN].items())
        more = f" and {len(short) - _SHOWN} more" if len(short) > _SHOWN else ""
        raise InputError(f"too short: series need at least {minimum} observed values ({why}); "
                         f"observed values of {listed}{more}")


# --------------------------------------------------------------------------- #
# Columns and values
# --------------------------------------------------------------------------- #
def _check_column(frame: pd.DataFrame, column, source: str) -> None:
    if column in frame.columns:
        return
    names = [str(c) for c in frame.columns]
    close = difflib.get_close_matches(str(column), names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise InputError(f"unknown column {column!r}: {source} has columns {names}{hint}")


def _long_to_wide(frame, time_column, id_column, value_columns, source) -> pd.DataFrame:
    if value_columns and len(value_columns) > 1:
        raise InputError(f"a long table has one value column, got --value-column {list(value_columns)}")
    if value_columns:
        value = value_columns[0]
    else:
        rest = [c for c in frame.columns if c not in (time_column, id_column)]
        if len(rest) != 1:
            raise InputError(f"{source} has columns {rest} besides time and id: "
                             "name the values with --value-column")
        value = rest[0]
    if frame[id_column].isna().any():
        row = int(np.flatnonzero(frame[id_column].isna().to_numpy())[0])
        raise InputError(f"column {id_column!r}: row {row + 1} has no series id")
    pairs = frame[[id_column, time_column]]
    if pairs.duplicated().any():
        sid, stamp = pairs[pairs.duplicated()].iloc[0]
        raise InputError(f"series {sid!r} has the timestamp {stamp!r} twice "
                         f"(columns {id_column!r}, {time_column!r})")
    _check_numeric(frame[value], value, source)
    # Ids keep the order of their first appearance in the file.
    order = pd.unique(frame[id_column])
    wide = frame.pivot(index=time_column, columns=id_column, values=value)
    return wide.reindex(columns=order).rename_axis(columns=None)


def _check_numeric(values: pd.Series, name, source: str) -> None:
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        return
    parsed = pd.to_numeric(values, errors="coerce")
    bad = parsed.isna() & values.notna()
    if not bad.any():
        return
    where = int(np.flatnonzero(bad.to_numpy())[0])
    at = (f"row {where + 1}" if isinstance(values.index, pd.RangeIndex)
          else f"{values.index.name} {values.index[where]!r}")
    raise InputError(f"column {name!r} in {source} is not numeric: {values.iloc[where]!r} at {at}")


# --------------------------------------------------------------------------- #
# Time
# --------------------------------------------------------------------------- #
def _time_labels(labels: pd.Index, column) -> pd.Index:
    """Integer labels as they are (a step count: years, periods); others parsed as dates."""
    if labels.isna().any():
        raise InputError(f"column {column!r}: {int(labels.isna().sum())} row(s) have no timestamp")
    if pd.api.types.is_integer_dtype(labels.dtype):
        return pd.Index(labels.to_numpy(), name=column)
    if pd.api.types.is_float_dtype(labels.dtype):
        # Whole numbers read as floats are step counts too; pandas would take them as nanoseconds.
        values = labels.to_numpy()
        if not np.all(values == np.round(values)):
            raise InputError(f"column {column!r}: numbers such as {values[values != np.round(values)][0]!r} "
                             "are not timestamps; give dates or whole step numbers")
        return pd.Index(values.astype(np.int64), name=column)
    if isinstance(labels, pd.DatetimeIndex):
        return labels.rename(column)
    parsed = pd.to_datetime(pd.Series(labels.to_numpy(dtype=object)), errors="coerce")
    bad = parsed.isna().to_numpy()
    if bad.any():
        shown = ", ".join(repr(v) for v in labels[bad][:_SHOWN])
        more = f" and {int(bad.sum()) - _SHOWN} more" if bad.sum() > _SHOWN else ""
        raise InputError(f"column {column!r}: cannot parse {shown}{more} as dates "
                         f"(the format is taken from the first value, {labels[0]!r})")
    return pd.DatetimeIndex(parsed, name=column)


def _on_regular_grid(wide: pd.DataFrame, column, freq) -> pd.DataFrame:
    index = wide.index
    if index.has_duplicates:
        raise InputError(f"column {column!r}: the timestamp {index[index.duplicated()][0]!r} appears twice")
    if freq is not None:
        grid = _grid(index, freq, column)
        _check_on_grid(index, grid, column, freq)
        return wide.reindex(grid)
    if len(index) < 3:
        return wide
    if isinstance(index, pd.DatetimeIndex):
        inferred = pd.infer_freq(index)
        if inferred is not None:
            return wide.set_axis(pd.DatetimeIndex(index, freq=inferred))
        _irregular(index, _common_datetime_step(index), column)
    steps = np.unique(np.diff(index.to_numpy()))
    if len(steps) > 1:
        _irregular(index, int(pd.Series(np.diff(index.to_numpy())).mode().iloc[0]), column)
    return wide


def _grid(index: pd.Index, freq, column) -> pd.Index:
    if not isinstance(index, pd.DatetimeIndex):
        step = int(freq) if str(freq).lstrip("-").isdigit() else None
        if step is None or step < 1:
            raise InputError(f"--freq {freq!r}: integer timestamps (column {column!r}) take a "
                             "positive integer step")
        return pd.Index(np.arange(index[0], index[-1] + 1, step), name=column)
    try:
        return pd.date_range(index[0], index[-1], freq=freq, name=column)
    except ValueError as err:
        raise InputError(f"--freq {freq!r} is not a pandas frequency: {err}") from None


def _check_on_grid(index: pd.Index, grid: pd.Index, column, freq) -> None:
    off = index.difference(grid)
    if len(off):
        raise InputError(f"column {column!r}: timestamps off the --freq {freq} grid from "
                         f"{index[0]}: {_listed(off)}")


def _common_datetime_step(index: pd.DatetimeIndex):
    """The frequency most windows of three consecutive timestamps show (None if none does)."""
    found = pd.Series([pd.infer_freq(index[i:i + 3]) for i in range(len(index) - 2)]).dropna()
    return found.mode().iloc[0] if len(found) else None


def _irregular(index: pd.Index, step, column) -> None:
    """Raise the error for timestamps no frequency fits, naming those that break the most
    common spacing."""
    if step is None:
        raise InputError(f"column {column!r}: the timestamps follow no frequency ({index[0]}, "
                         f"{index[1]}, {index[2]}, ...); give regular timestamps or --freq")
    if isinstance(index, pd.DatetimeIndex):
        grid = pd.date_range(index[0], index[-1], freq=step)
    else:
        grid = pd.Index(np.arange(index[0], index[-1] + 1, step))
    parts = []
    if len(index.difference(grid)):
        parts.append(f"off the grid: {_listed(index.difference(grid))}")
    if len(grid.difference(index)):
        parts.append(f"missing: {_listed(grid.difference(index))}")
    raise InputError(
        f"column {column!r}: irregular frequency; with the most common spacing ({step}) these "
        f"timestamps break it, {'; '.join(parts)}. Fix the file, or pass --freq {step} to read "
        "missing timestamps as missing values"
    )


def _listed(labels: pd.Index) -> str:
    text = ", ".join(str(v.date()) if isinstance(v, pd.Timestamp) and v == v.normalize() else str(v)
                     for v in labels[:_SHOWN])
    return text + (f" and {len(labels) - _SHOWN} more" if len(labels) > _SHOWN else "")
