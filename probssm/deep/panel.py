"""Panels in and out of the deep forecasters: every layout :mod:`probssm._data` accepts, read as
one ``(series, time)`` array, and forecasts written back in the layout they came in.

Layouts (``Panel.layout``):

- ``"series"``: one ``pd.Series`` (or a 1-D array): one series;
- ``"wide"``: a DataFrame (or 2-D array ``(T, B)``) whose columns are the series;
- ``"stacked"``: a Series or one-column DataFrame indexed by ``(series_id, time)``;
- ``"long"``: a DataFrame with ``unique_id``, ``ds`` and ``y`` columns.

NaN marks a missing value; a series that starts later than others is NaN before its start.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import _data

__all__ = [
    "Panel",
    "read_continuation",
    "read_exog",
    "read_panel",
    "write_point",
    "write_samples",
    "write_table",
]

LAYOUTS = ("series", "wide", "stacked", "long")


@dataclass(frozen=True)
class Panel:
    """Validated panel data.

    Attributes
    ----------
    values : ndarray ``(B, T)``, float64
        A private copy, one row per series, NaN where missing.
    ids : list, length ``B``
        Series identifiers.
    index : pandas.Index, length ``T``
        The common time index (one forecasts can continue).
    name : str
        The value column's name.
    layout : str
        One of ``"series"``, ``"wide"``, ``"stacked"``, ``"long"``.
    """

    values: np.ndarray
    ids: list
    index: pd.Index
    name: str
    layout: str


def read_panel(y, name: str = "y") -> Panel:
    """``y`` in any accepted layout as a :class:`Panel` (errors from :mod:`probssm._data`:
    ``TypeError`` for non-numeric data, ``ValueError`` for shapes, infinite values, an index
    forecasts cannot continue, a series without observations)."""
    if isinstance(y, np.ndarray) and y.ndim not in (1, 2):
        raise ValueError(f"{name}: expected a 1-D array (T,) or a 2-D array (T, B) of B series, "
                         f"got shape {y.shape}")
    if _data.is_panel(y, univariate=True):
        if isinstance(y, pd.DataFrame) and not isinstance(y.index, pd.MultiIndex):
            layout = "long" if {"unique_id", "ds", "y"} <= set(map(str, y.columns)) else "wide"
        else:
            layout = "stacked"
        panel = _data.as_panel_data(y, name=name)
        return Panel(panel.values, list(panel.ids), panel.index, panel.name, layout)
    if isinstance(y, np.ndarray) and y.ndim == 2:
        frame = pd.DataFrame(y, columns=list(range(y.shape[1])))
        panel = _data.as_panel_data(frame, name=name) if y.shape[1] > 1 else None
        if panel is not None:
            return Panel(panel.values, list(panel.ids), panel.index, panel.name, "wide")
    data = _data.as_series_data(y, name=name)
    if data.values.shape[1] != 1:
        raise ValueError(f"{name}: expected one series, got {data.values.shape[1]} columns")
    layout = "series" if data.is_series else "wide"
    return Panel(data.values.T.copy(), list(data.columns), data.index, data.columns[0], layout)


def read_continuation(y, fitted: Panel, index: pd.Index, name: str) -> np.ndarray:
    """New observations ``(B, n)`` of the fitted series that follow ``index`` (``update``,
    ``score``): the same series (by id), labels continuing ``index`` step by step."""
    if _data.is_panel(y, univariate=True) or isinstance(y, np.ndarray) and y.ndim == 2 and y.shape[1] > 1:
        wide = isinstance(y, pd.DataFrame) and not isinstance(y.index, pd.MultiIndex) \
            and not {"unique_id", "ds", "y"} <= set(map(str, y.columns))
        if isinstance(y, np.ndarray) or wide:
            frame = pd.DataFrame(y) if isinstance(y, np.ndarray) else y
            values, labels = _wide_values(frame, name), frame.index
            ids = list(frame.columns)
        else:
            stacked = _stacked(y)
            ids = list(dict.fromkeys(stacked.index.get_level_values(0)))
            wide_frame = stacked.unstack(level=0).sort_index()
            values, labels = _wide_values(wide_frame[ids], name), wide_frame.index
        order = _match_ids(ids, fitted.ids, name)
        values = values[order]
    else:
        data = _data.as_series_data(y, name=name, min_observed=0, time_index=False)
        if len(fitted.ids) != 1:
            raise ValueError(f"{name}: the model was fitted on {len(fitted.ids)} series; pass new "
                             f"values for all of them in the layout of fit")
        values, labels = data.values.T.copy(), data.index
    _data.check_continuation(index, labels, name=name)
    if np.isinf(values).any():
        b, t = np.argwhere(np.isinf(values))[0]
        raise ValueError(f"{name}: series {fitted.ids[b]!r} has an infinite value at {labels[t]!r}")
    return values


def _stacked(y) -> pd.Series:
    if isinstance(y, pd.DataFrame) and not isinstance(y.index, pd.MultiIndex):
        return y.set_index(["unique_id", "ds"])["y"]
    if isinstance(y, pd.DataFrame):
        if y.shape[1] != 1:
            raise ValueError(f"a (series_id, time) panel needs one value column, got {list(y.columns)}")
        return y.iloc[:, 0]
    return y


def _wide_values(frame: pd.DataFrame, name: str) -> np.ndarray:
    for col in frame.columns:
        dtype = frame[col].dtype
        if not (pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)):
            raise TypeError(f"{name}: series {col!r} has non-numeric dtype {dtype}")
    return frame.to_numpy(dtype=np.float64, copy=True).T


def _match_ids(got: list, fitted: list, name: str) -> list:
    missing = [i for i in fitted if i not in got]
    extra = [i for i in got if i not in fitted]
    if missing or extra:
        raise ValueError(f"{name}: expected the fitted series {fitted[:5]}{'...' if len(fitted) > 5 else ''}; "
                         f"missing {missing[:5]}, unknown {extra[:5]}")
    return [got.index(i) for i in fitted]


def read_exog(X, index: pd.Index, ids: list, columns, name: str = "X"):
    """Exogenous regressors for the time steps ``index`` as ``(B, len(index), k)`` and their
    column names: shared by all series (a frame indexed by time or an array ``(T, k)``, aligned
    by :func:`probssm._data.as_exog`) or per series (a frame indexed by ``(series_id, time)``)."""
    if isinstance(X, pd.DataFrame) and isinstance(X.index, pd.MultiIndex):
        if X.index.nlevels != 2:
            raise ValueError(f"{name}: a per-series regressor frame needs a (series_id, time) index, "
                             f"got {X.index.nlevels} levels")
        known = set(X.index.get_level_values(0))
        parts = []
        for sid in ids:
            if sid not in known:
                raise ValueError(f"{name}: no regressors for series {sid!r}")
            values, columns = _data.as_exog(X.xs(sid, level=0), index, columns=columns, name=f"{name}[{sid!r}]")
            parts.append(values)
        return np.stack(parts), columns
    values, columns = _data.as_exog(X, index, columns=columns, name=name)
    return np.broadcast_to(values, (len(ids),) + values.shape).copy(), columns


def write_point(panel: Panel, values: np.ndarray, index: pd.Index):
    """Point forecasts ``(B, h)`` on the future ``index`` in the layout of ``panel``: a Series for
    ``"series"``, a DataFrame with one column per series for ``"wide"``, a Series indexed by
    ``(series_id, time)`` for ``"stacked"``, a ``unique_id``/``ds``/``y`` frame for ``"long"``."""
    if panel.layout == "series":
        return pd.Series(values[0], index=index, name=panel.name)
    if panel.layout == "wide":
        return pd.DataFrame(values.T, index=index, columns=pd.Index(panel.ids))
    stacked = pd.Series(values.reshape(-1), index=_stacked_index(panel.ids, index), name=panel.name)
    if panel.layout == "stacked":
        return stacked
    return pd.DataFrame({"unique_id": np.repeat(np.asarray(panel.ids, dtype=object), len(index)),
                         "ds": np.tile(index.to_numpy(), len(panel.ids)), panel.name: values.reshape(-1)})


def _stacked_index(ids, index) -> pd.MultiIndex:
    return pd.MultiIndex.from_arrays(
        [np.repeat(np.asarray(ids, dtype=object), len(index)), np.tile(index, len(ids))],
        names=["series_id", index.name or "time"])


def write_table(panel: Panel, columns: dict, index: pd.Index) -> pd.DataFrame:
    """A table of forecasts: ``columns`` maps a column key (a tuple without the variable, e.g.
    ``(0.9, "lower")``) to values ``(B, h)``. One series: rows by time, columns
    ``(name, *key)``; a wide panel: columns ``(series, *key)``; a stacked or long panel: rows
    ``(series_id, time)``, columns ``(name, *key)``."""
    if panel.layout == "series":
        return pd.DataFrame({(panel.name, *k): v[0] for k, v in columns.items()}, index=index)
    if panel.layout == "wide":
        return pd.DataFrame({(sid, *k): v[b] for b, sid in enumerate(panel.ids) for k, v in columns.items()},
                            index=index)
    return pd.DataFrame({(panel.name, *k): v.reshape(-1) for k, v in columns.items()},
                        index=_stacked_index(panel.ids, index))


def write_samples(panel: Panel, draws: np.ndarray, index: pd.Index) -> pd.DataFrame:
    """Sample paths ``(n, B, h)``: for one series or a wide panel rows ``(sample, time)`` and a
    column per series; for stacked and long panels rows ``(series_id, sample, time)`` and one
    column."""
    n, B, h = draws.shape
    if panel.layout in ("series", "wide"):
        rows = pd.MultiIndex.from_product([range(n), index], names=["sample", index.name or "time"])
        cols = [panel.name] if panel.layout == "series" else pd.Index(panel.ids)
        return pd.DataFrame(draws.transpose(0, 2, 1).reshape(n * h, B), index=rows, columns=cols)
    rows = pd.MultiIndex.from_product([panel.ids, range(n), index],
                                      names=["series_id", "sample", index.name or "time"])
    return pd.DataFrame({panel.name: draws.transpose(1, 0, 2).reshape(-1)}, index=rows)
