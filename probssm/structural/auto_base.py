"""What the automatic estimators share: the forecasting contract delegated to the selected model,
the table of candidates, saving and loading."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import _persistence
from ..base import BaseForecaster

__all__ = ["AutoForecaster"]


class AutoForecaster(BaseForecaster):
    """Base of :class:`~probssm.structural.AutoSARIMAX` and :class:`~probssm.structural.AutoUC`.

    A subclass's fit sets ``best_estimator_`` (a fitted structural estimator on the same data),
    ``candidates_`` (DataFrame, one row per fitted candidate with its information criterion) and
    ``criterion_`` (the selected model's criterion); forecasting, intervals, quantiles, sample
    paths, ``update``, ``filter``/``smooth``, ``score``, ``summary`` and saving go through the
    selected model. On a panel every series has its own selection (``estimators_``), and
    ``candidates_`` stacks their tables under a ``series_id`` level.
    """

    _univariate = True
    _panel_attributes = ("criterion_",)

    def _min_observed(self) -> int:
        return 4

    # -- the selected model does the work ---------------------------------------------------
    def _forecast_moments(self, steps, exog=None):
        return self.best_estimator_._forecast_moments(steps, exog)

    def _predict_quantiles(self, steps, alphas, exog=None):
        return self.best_estimator_._predict_quantiles(steps, alphas, exog)

    def _sample(self, steps, n_samples, rng, exog=None):
        return self.best_estimator_._sample(steps, n_samples, rng, exog)

    def _update(self, new, exog=None):
        y_new = pd.Series(new.values[:, 0], index=new.index, name=self._y.columns[0])
        self.best_estimator_.update(y_new)

    def _filter(self):
        return self.best_estimator_._filter()

    def _smooth(self):
        return self.best_estimator_._smooth()

    def _log_predictive(self, new, exog=None):
        return self.best_estimator_._log_predictive(new, exog)

    def summary(self) -> str:
        """The selection (model, criterion, number of candidates) above the selected model's
        ``summary()``; on a panel, those of every series one after the other."""
        self._check_is_fitted()
        if self._panel is not None:
            return "\n\n".join(f"series {sid!r}\n{est.summary()}" for sid, est in self.estimators_.items())
        head = (f"{type(self).__name__}: {self._describe_best()} selected by "
                f"{self.information_criterion.upper()} = {self.criterion_:.4f} among "
                f"{len(self.candidates_)} candidates\n\n")
        return head + self.best_estimator_.summary()

    def _describe_best(self) -> str:
        raise NotImplementedError

    # -- panels -------------------------------------------------------------------------------
    def _collect_panel_attributes(self) -> None:
        ids = pd.Index(list(self.estimators_), name="series_id")
        for attr in self._panel_attributes:
            values = [getattr(est, attr) for est in self.estimators_.values()]
            setattr(self, attr, pd.Series(values, index=ids, name=attr))
        self.candidates_ = pd.concat({sid: est.candidates_ for sid, est in self.estimators_.items()},
                                     names=["series_id", None])

    def _series_estimator(self, data):
        """An unfitted copy holding one series' data (for panel fits)."""
        est = type(self)(**self.get_params(deep=False))
        est._y, est._X, est._exog_columns, est._panel = data, None, None, None
        est.cutoff_, est.is_fitted_ = data.index[-1], True
        return est

    # -- saving -------------------------------------------------------------------------------
    def _fitted_state(self):
        best = self.best_estimator_
        best_meta, best_arrays = best._fitted_state()
        meta = {
            "best": _persistence.encode(best), "best_fitted": best_meta,
            "candidates": {c: [_plain(v) for v in self.candidates_[c]] for c in self.candidates_.columns},
            "selection": {k: _persistence.encode(getattr(self, k)) for k in self._selection_attributes},
        }
        return meta, {f"best.{k}": v for k, v in best_arrays.items()}

    def _restore_fitted_state(self, meta, arrays):
        best = _persistence.decode(meta["best"])
        best._panel, best._y, best._X, best._exog_columns = None, self._y, self._X, self._exog_columns
        best._restore_fitted_state(meta["best_fitted"], {k[5:]: v for k, v in arrays.items() if k.startswith("best.")})
        best._restore_cutoff()
        best.is_fitted_ = True
        self.best_estimator_ = best
        self.candidates_ = pd.DataFrame(meta["candidates"])
        for k, v in meta["selection"].items():
            setattr(self, k, _persistence.decode(v))


def _plain(value):
    """A table cell as a JSON value."""
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value) if np.isfinite(value) else None
    return value
