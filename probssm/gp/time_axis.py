"""From pandas labels to the real time stamps a GP kernel reads, and back.

Three kinds of time axis:

- ``"steps"``: a regular index that forecasts can continue (RangeIndex, evenly spaced integers,
  a PeriodIndex without gaps, a DatetimeIndex with a frequency). Time is counted in steps of
  the index from its first label (``0, 1, 2, ...``), so a kernel's lengthscale and period are
  in steps: ``QuasiPeriodic(12.0)`` on monthly data is a yearly cycle. Missing values are NaN
  rows; the forecast horizon ``fh`` works as for every probssm forecaster.
- ``"days"``: a DatetimeIndex without a frequency (irregular sampling). Time is in days since
  the first label; new times are given as labels (a DatetimeIndex).
- ``"values"``: time stamps given as numbers (``fit(t, y)``, or a float index). Time is the
  number itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import _data

__all__ = ["TimeAxis"]

_DAY = pd.Timedelta(days=1)


@dataclass(frozen=True)
class TimeAxis:
    """How labels map to times for one fitted GP. ``index`` holds the training labels."""

    kind: str
    index: pd.Index

    @classmethod
    def from_index(cls, index: pd.Index) -> "TimeAxis":
        """The axis of a time-indexed ``y``: ``"steps"`` when the index can be continued,
        ``"days"`` for an irregular DatetimeIndex, ``"values"`` for other numeric labels."""
        try:
            regular = _data.check_time_index(index)
        except ValueError:
            if isinstance(index, pd.DatetimeIndex):
                return cls("days", index)
            if pd.api.types.is_numeric_dtype(index.dtype) and not pd.api.types.is_bool_dtype(index.dtype):
                return cls("values", index)
            raise
        return cls("steps", regular)

    @classmethod
    def from_times(cls, t: np.ndarray) -> "TimeAxis":
        return cls("values", pd.Index(np.asarray(t, dtype=np.float64), name="t"))

    def times(self) -> np.ndarray:
        """The training time stamps ``(T,)``."""
        if self.kind == "steps":
            return np.arange(len(self.index), dtype=np.float64)
        return self.label_times(self.index)

    def label_times(self, labels: pd.Index) -> np.ndarray:
        """Time stamps of arbitrary labels of this axis' kind."""
        if self.kind == "days":
            if not isinstance(labels, pd.DatetimeIndex):
                raise TypeError(f"this GP was fitted on dates: pass new times as a DatetimeIndex, got "
                                f"{type(labels).__name__}")
            return np.asarray((labels - self.index[0]) / _DAY, dtype=np.float64)
        if self.kind == "values":
            return np.asarray(labels, dtype=np.float64)
        return np.asarray(_data.forecast_steps(labels, self.index), dtype=np.float64) + len(self.index) - 1

    def horizon(self, fh) -> tuple[np.ndarray, pd.Index]:
        """Times and labels of a forecasting horizon ``fh``: an int ``h`` for steps ``1..h`` or a
        list of steps after the last training label, or an index of labels (on a regular axis,
        training labels too, e.g. the dates of missing values)."""
        if self.kind == "steps":
            if isinstance(fh, pd.Index):
                return self._positions(fh), fh
            steps = _data.forecast_steps(fh, self.index)
            return np.asarray(steps, dtype=np.float64) + len(self.index) - 1, _data.future_index(self.index, steps)
        if isinstance(fh, pd.Index):
            return self.label_times(fh), fh
        raise ValueError(
            f"this GP's time stamps are irregular ({self.kind}); a horizon of steps is not defined: "
            "pass the new time stamps (an array, or a DatetimeIndex for dates)")

    def _positions(self, labels: pd.Index) -> np.ndarray:
        """Step times of labels on a regular axis: a training label's position, or ``T - 1 +
        step`` for a future one (labels between the grid's points raise)."""
        position = self.index.get_indexer(labels).astype(np.float64)
        future = position < 0
        if future.any():
            position[future] = self.label_times(labels[future])
        return position

    def to_json(self) -> dict:
        return {"kind": self.kind, "index": _data.index_to_json(self.index)}

    @classmethod
    def from_json(cls, spec: dict) -> "TimeAxis":
        return cls(spec["kind"], _data.index_from_json(spec["index"]))
