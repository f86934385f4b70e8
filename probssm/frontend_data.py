"""Long-format frames (``unique_id`` / ``ds`` / ``y`` plus exogenous columns) as per-series data.

:func:`read_long` checks a statsforecast-style long frame once and splits it into one series per
``unique_id``, each on a time index that probssm's estimators can continue (see
:mod:`probssm._time_index`); :class:`LongData` holds the result and cuts training windows out
of it. The caller's frame is never modified.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import _data

__all__ = ["LongData", "read_long", "check_levels"]

# statsforecast's column names
ID_COL, TIME_COL, TARGET_COL = "unique_id", "ds", "y"


@dataclass(frozen=True)
class LongData:
    """The series of a long frame, one entry per ``unique_id``.

    Attributes
    ----------
    ids : pandas.Index, length ``B``
        The series identifiers, sorted (the order of every output), with the frame's dtype.
    y : dict
        ``unique_id -> Series`` of length ``T_i``: the target on the series' own time index
        (a ``DatetimeIndex`` with a frequency, a ``PeriodIndex`` or an evenly spaced integer
        index), named ``"y"``; NaN marks a missing value.
    X : dict
        ``unique_id -> DataFrame`` ``(T_i, k)`` of the exogenous columns on the same index
        (empty dict when the frame has none).
    exog_columns : list of str
        The exogenous columns: every column but ``unique_id``, ``ds`` and ``y``.
    """

    ids: pd.Index
    y: dict
    X: dict
    exog_columns: list

    def lengths(self) -> np.ndarray:
        """Number of time steps ``T_i`` of every series, ``(B,)``."""
        return np.array([len(self.y[uid]) for uid in self.ids])

    def window(self, stops: dict, starts: dict | None = None) -> LongData:
        """The rows ``starts[uid]:stops[uid]`` (positions) of every series (from the first row
        where ``starts`` is None)."""
        starts = starts or {}
        cut = {uid: slice(starts.get(uid, 0), stops[uid]) for uid in self.ids}
        return LongData(self.ids, {uid: self.y[uid].iloc[cut[uid]] for uid in self.ids},
                        {uid: x.iloc[cut[uid]] for uid, x in self.X.items()}, self.exog_columns)


def read_long(df, freq=None, *, name: str = "df", target: bool = True) -> LongData:
    """Check a long frame and split it by ``unique_id``.

    ``df`` needs the columns ``unique_id``, ``ds`` and (with ``target``) ``y``; every other
    column is an exogenous regressor. ``ds`` holds dates (``datetime64``), periods or integers;
    within a series its values must be unique and, sorted, lie on a regular grid of step
    ``freq`` (a pandas offset alias or ``DateOffset`` for dates, an int for integers; ``None``:
    a PeriodIndex's own period, the step inferred from each series otherwise). Missing values of
    ``y`` are NaN rows, not absent rows.

    Raises ``TypeError`` for a ``df`` that is not a DataFrame or holds non-numeric values, and
    ``ValueError`` naming the problem for missing columns, an empty frame, a duplicated
    ``(unique_id, ds)`` pair, infinite values, and gaps or an irregular grid in ``ds``.
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame in long format (unique_id, ds, y), "
                        f"got {type(df).__name__}")
    required = [ID_COL, TIME_COL] + ([TARGET_COL] if target else [])
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(f"{name} is missing the column(s) {missing}; a long frame has columns "
                         f"{required} (got {list(df.columns)})")
    if len(df) == 0:
        raise ValueError(f"{name} has no rows")
    exog_columns = [str(c) for c in df.columns if c not in (ID_COL, TIME_COL, TARGET_COL)]
    value_columns = ([TARGET_COL] if target else []) + exog_columns
    for col in value_columns:
        dtype = df[col].dtype
        if not (pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)):
            raise TypeError(f"{name}: column {col!r} has non-numeric dtype {dtype}")
    keys = df[[ID_COL, TIME_COL]]
    duplicated = keys.duplicated()
    if duplicated.any():
        pair = tuple(keys[duplicated].iloc[0])
        raise ValueError(f"{name} has the (unique_id, ds) pair {pair!r} more than once")
    if target:
        values = df[TARGET_COL].to_numpy(dtype=np.float64, na_value=np.nan)
        if np.isinf(values).any():
            row = int(np.flatnonzero(np.isinf(values))[0])
            raise ValueError(f"{name}: y is infinite for unique_id {df[ID_COL].iloc[row]!r} at ds "
                             f"{df[TIME_COL].iloc[row]!r}; use NaN for missing values")
    columns = [str(c) for c in df.columns]
    frame = df.set_axis(columns, axis=1)
    ys, Xs, ids = {}, {}, []
    for uid, rows in frame.groupby(ID_COL, sort=True, observed=True):
        rows = rows.sort_values(TIME_COL)
        index = _series_index(rows[TIME_COL], freq, uid, name)
        ids.append(uid)
        if target:
            ys[uid] = pd.Series(rows[TARGET_COL].to_numpy(dtype=np.float64, na_value=np.nan),
                                index=index, name=TARGET_COL)
        if exog_columns:
            Xs[uid] = pd.DataFrame(rows[exog_columns].to_numpy(dtype=np.float64, na_value=np.nan),
                                   index=index, columns=exog_columns)
    return LongData(pd.Index(ids, dtype=df[ID_COL].dtype), ys, Xs, exog_columns)


def _series_index(ds: pd.Series, freq, uid, name: str) -> pd.Index:
    """One series' ``ds`` values (sorted, unique) as a time index forecasts can continue."""
    where = f"{name}: series {uid!r}"
    if pd.api.types.is_datetime64_any_dtype(ds.dtype):
        index = pd.DatetimeIndex(ds, name=TIME_COL)
        if freq is None:
            return _data.check_time_index(index, where)
        offset = pd.tseries.frequencies.to_offset(freq)
        grid = pd.date_range(index[0], periods=len(index), freq=offset, unit=index.unit)
        _check_grid(index, grid, where, freq)
        return pd.DatetimeIndex(index, freq=offset)
    if isinstance(ds.dtype, pd.PeriodDtype):
        return _data.check_time_index(pd.PeriodIndex(ds, name=TIME_COL), where)
    if pd.api.types.is_integer_dtype(ds.dtype) and not pd.api.types.is_bool_dtype(ds.dtype):
        labels = ds.to_numpy(dtype=np.int64)
        if freq is None:
            step = _data.index_step(pd.Index(labels), where)
        elif isinstance(freq, (int, np.integer)) and not isinstance(freq, bool) and freq > 0:
            step = int(freq)
        else:
            raise ValueError(f"freq must be a positive int for integer ds, got {freq!r}")
        grid = pd.RangeIndex(labels[0], labels[0] + step * len(labels), step, name=TIME_COL)
        _check_grid(pd.Index(labels), grid, where, step)
        return grid
    raise TypeError(
        f"{name}: ds has dtype {ds.dtype}; it must hold dates (convert strings with "
        "pd.to_datetime), periods or integers"
    )


def _check_grid(index: pd.Index, grid: pd.Index, where: str, freq) -> None:
    """Raise unless the sorted labels ``index`` are exactly the regular ``grid``."""
    off = np.flatnonzero(np.asarray(index) != np.asarray(grid))
    if off.size:
        i = int(off[0])
        raise ValueError(
            f"{where}: ds is not a regular grid of step {freq!r}: expected {grid[i]!r} after "
            f"{index[i - 1]!r}, got {index[i]!r}; add the missing rows with y = NaN (probssm "
            "treats NaN as missing), e.g. with utilsforecast.preprocessing.fill_gaps"
        )


def check_levels(level) -> list:
    """Interval levels in percent, each in (0, 100), sorted increasingly and unique (as given:
    ``80`` stays an int so that columns read ``Model-lo-80``, as statsforecast names them);
    ``None`` gives ``[]``."""
    if level is None:
        return []
    levels = list(np.atleast_1d(level).tolist()) if not isinstance(level, (list, tuple)) else list(level)
    for lv in levels:
        if isinstance(lv, bool) or not isinstance(lv, (int, float, np.integer, np.floating)) \
                or not 0 < float(lv) < 100:
            raise ValueError(f"level must hold numbers between 0 and 100 (percent), got {lv!r}")
    if len(set(map(float, levels))) != len(levels):
        raise ValueError(f"level has duplicated values: {levels}")
    return sorted(levels, key=float)
