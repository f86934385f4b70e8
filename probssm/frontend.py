"""``Forecaster``: probssm estimators on statsforecast-style long frames.

A long frame has one row per series and time: ``unique_id`` (the series), ``ds`` (dates,
periods or integers), ``y`` (the target, NaN where missing) and any further numeric columns as
exogenous regressors. :class:`Forecaster` fits every model to every series and returns
forecasts and cross-validation tables with statsforecast's columns, so utilsforecast's
evaluation (``utilsforecast.evaluation.evaluate``) reads them unchanged.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import _data, distributed
from ._progress import progress
from .base import BaseEstimator, NotFittedError
from .frontend_data import ID_COL, TARGET_COL, TIME_COL, LongData, check_levels, read_long
from .frontend_fit import fit_series, forecast_columns, named_models

__all__ = ["Forecaster"]


class Forecaster(BaseEstimator):
    """Fit probssm estimators to many series of a long frame; forecast and cross-validate them
    with statsforecast's names and layouts.

    Each model is cloned and fitted to each series on its own: series may differ in length
    and start. Estimators of the linear-Gaussian univariate families (``LocalLevel``,
    ``UnobservedComponents``, ``SARIMAX``) fit the series that share a time span in one
    batched, compiled program (their panel fit); other estimators, and estimators given
    exogenous columns, fit series by series.

    Parameters
    ----------
    models : list
        probssm estimator instances (never fitted themselves: clones are), ``(alias,
        estimator)`` pairs, or a dict ``alias -> estimator``. A model's columns are named by
        its alias, by default its class name (``"LocalLevel"``); aliases must be unique.
    freq : str, DateOffset, int or None
        The step of ``ds``: a pandas offset alias (``"MS"``, ``"D"``, ...) for dates, an int for
        integer ``ds``. ``None`` takes a PeriodIndex's period or infers the step of each series
        (at least three dates). Every series must lie on this regular grid; a missing value is
        a row with ``y`` NaN.
    verbose : bool, default False
        A progress bar over the windows of :meth:`cross_validation` (on a terminal).

    Execution settings (``set_config``, see :mod:`probssm.distributed`): with
    ``set_config(backend="dask", client=..., chunk_size=...)`` the panel fits of
    :meth:`fit` and of every window of :meth:`cross_validation` run on Dask, for every model
    that fits panels (the models' own settings are used otherwise, so one model can be set to
    Dask on its own). A series whose fit fails raises ``ValueError`` naming the model and the
    series, as in process.

    Attributes
    ----------
    estimators_ : dict
        ``alias -> {unique_id: fitted estimator}``.
    uids_ : pandas.Index
        The series identifiers, sorted: the order of every output.
    last_dates_ : pandas.Series
        The last ``ds`` of every series, indexed by ``unique_id``.

    Notes
    -----
    Output layouts are statsforecast's (2.x): ``unique_id`` is a column and rows are numbered
    from 0; rows are sorted by ``unique_id`` and ``ds`` (in :meth:`cross_validation` by
    ``unique_id``, ``cutoff``, ``ds``); each model contributes the column ``<alias>`` (the
    predictive mean) and, for each level :math:`\\ell` of ``level`` (percent),
    ``<alias>-lo-ℓ`` and ``<alias>-hi-ℓ``, the bounds of the central :math:`\\ell` % prediction
    interval (lower bounds from the highest level down, then upper bounds from the lowest up).
    Exogenous columns go to the models that take regressors; the others ignore them.

    Examples
    --------
    >>> from probssm.datasets import load_us_employment
    >>> from probssm.structural import LocalLevel, SARIMAX
    >>> df = load_us_employment(long=True)
    >>> fc = Forecaster([LocalLevel(), ("AR1", SARIMAX((1, 1, 0)))])
    >>> fc.fit(df).predict(12, level=[80, 95])  # doctest: +SKIP
    """

    _config_defaults = {**BaseEstimator._config_defaults, **distributed.BACKEND_CONFIG}  # noqa: RUF012

    def __init__(self, models, freq=None, verbose=False):
        self.models = models
        self.freq = freq
        self.verbose = verbose

    def _check_config(self, config: dict) -> None:
        distributed.check_backend_config(config)

    def _model_config(self) -> dict | None:
        """The backend settings the models' panel fits take: the Forecaster's with
        ``backend="dask"``, else none (each model keeps its own)."""
        config = self.get_config()
        if not distributed.uses_dask(config):
            return None
        return {k: config[k] for k in distributed.BACKEND_CONFIG}

    # -- fitting and forecasting -------------------------------------------------------------
    def fit(self, df) -> Forecaster:
        """Fit every model to every series of the long frame ``df`` (columns ``unique_id``,
        ``ds``, ``y`` and exogenous columns). Returns ``self``."""
        named = named_models(self.models)
        data = read_long(df, self.freq)
        config = self._model_config()
        self.estimators_ = {alias: fit_series(model, data, alias, config) for alias, model in named}
        self.uids_ = data.ids
        self.last_dates_ = pd.Series([data.y[uid].index[-1] for uid in data.ids], index=data.ids,
                                     name=TIME_COL)
        self._data = data
        self._aliases = [alias for alias, _ in named]
        return self

    def predict(self, h: int, level=None, X_df=None) -> pd.DataFrame:
        """Forecasts for the ``h`` steps after each series' last ``ds``.

        ``level``: interval levels in percent (e.g. ``[80, 95]``), or None for point forecasts.
        ``X_df``: the exogenous columns for those steps (``unique_id``, ``ds`` and the columns
        seen in :meth:`fit`, ``h`` rows per series), required when the models were fitted with
        regressors. Returns a DataFrame ``(B h, 2 + models × (1 + 2 len(level)))``: columns
        ``unique_id``, ``ds``, then each model's (see the class notes).
        """
        if not hasattr(self, "estimators_"):
            raise NotFittedError("this Forecaster is not fitted yet; call fit(df) before predict")
        h = _data.check_int(h, "h", 1)
        levels = check_levels(level)
        future_X = self._future_exog(X_df, h)
        parts = []
        for uid in self.uids_:
            ds = _data.future_index(self._data.y[uid].index, np.arange(1, h + 1))
            columns = {ID_COL: pd.Index([uid] * h, dtype=self.uids_.dtype), TIME_COL: ds}
            for alias in self._aliases:
                est = self.estimators_[alias][uid]
                X = future_X.get(uid) if getattr(est, "_accepts_exog", False) else None
                columns.update(forecast_columns(est, alias, h, levels, X))
            parts.append(pd.DataFrame(columns))
        return self._tidy(parts, [ID_COL, TIME_COL])

    def forecast(self, df, h: int, level=None, X_df=None) -> pd.DataFrame:
        """:meth:`fit` on ``df``, then :meth:`predict` ``h`` steps (statsforecast's
        ``forecast``, with the frame first)."""
        if isinstance(df, (int, np.integer)) and isinstance(h, pd.DataFrame):
            raise TypeError("forecast takes the frame first: forecast(df, h, level=...)")
        return self.fit(df).predict(h, level=level, X_df=X_df)

    # -- cross-validation ----------------------------------------------------------------------
    def cross_validation(self, df, h: int, n_windows: int = 1, step_size: int = 1, level=None,
                         refit=True, input_size=None) -> pd.DataFrame:
        """Forecasts from ``n_windows`` cutoffs per series, each scored against the ``h`` values
        that follow it (statsforecast's ``cross_validation``).

        With ``test_size = h + step_size (n_windows - 1)``, window :math:`i = 0, \\dots,
        n_windows - 1` of a series of :math:`T` rows trains on its first
        :math:`T - \\text{test\\_size} + i \\cdot \\text{step\\_size}` rows (the last
        ``input_size`` of them when given, a sliding window) and forecasts the next ``h``;
        ``cutoff`` is the last training ``ds``. Cutoffs count rows of each series from its own
        end, as in statsforecast, so series of different lengths have their own cutoffs.

        ``refit``: ``True`` fits every window afresh; ``False`` fits the first window only and
        later windows :meth:`~probssm.base.BaseForecaster.update` the fitted models with the
        rows between cutoffs (parameters kept, states filtered on); an int ``k`` refits every
        ``k``-th window and updates in between. ``input_size`` needs ``refit=True`` (an update
        keeps every row it has seen).

        Returns a DataFrame with columns ``unique_id``, ``ds``, ``cutoff``, ``y``, then each
        model's; ``B × n_windows × h`` rows sorted by ``unique_id``, ``cutoff``, ``ds``.
        Exogenous columns of ``df`` serve as regressors for training and forecast rows alike.
        """
        named = named_models(self.models)
        h = _data.check_int(h, "h", 1)
        n_windows = _data.check_int(n_windows, "n_windows", 1)
        step_size = _data.check_int(step_size, "step_size", 1)
        levels = check_levels(level)
        every = _refit_interval(refit)
        if input_size is not None:
            input_size = _data.check_int(input_size, "input_size", 1)
            if every != 1:
                raise ValueError("input_size (sliding windows) needs refit=True: an update keeps "
                                 "every row it has seen")
        data = read_long(df, self.freq)
        test_size = h + step_size * (n_windows - 1)
        lengths = pd.Series(data.lengths(), index=data.ids)
        short = lengths[lengths <= test_size]
        if len(short):
            raise ValueError(
                f"series {short.index.tolist()[:5]} have {short.tolist()[:5]} rows, too few for "
                f"h={h}, n_windows={n_windows}, step_size={step_size}: each series needs more "
                f"than h + step_size * (n_windows - 1) = {test_size} rows"
            )
        config = self._model_config()
        fitted, previous, parts = {}, {}, []
        windows = progress(range(n_windows), show=self.verbose, desc="cross-validation", unit="window")
        for i in windows:
            stops = {uid: int(lengths[uid]) - test_size + i * step_size for uid in data.ids}
            if i == 0 or (every and i % every == 0):
                starts = None if input_size is None else \
                    {uid: max(0, stop - input_size) for uid, stop in stops.items()}
                train = data.window(stops, starts)
                fitted = {alias: fit_series(model, train, alias, config) for alias, model in named}
            else:
                _update(fitted, data, previous, stops)
            previous = stops
            parts += [_window_rows(fitted, data, uid, stops[uid], h, levels) for uid in data.ids]
        return self._tidy(parts, [ID_COL, "cutoff", TIME_COL])

    # -- helpers ---------------------------------------------------------------------------------
    def _future_exog(self, X_df, h: int) -> dict:
        """``unique_id -> DataFrame`` of the regressors for the forecast steps (empty without)."""
        needed = self._data.exog_columns and any(
            getattr(est, "_accepts_exog", False)
            for per_series in self.estimators_.values() for est in per_series.values())
        if not needed:
            if X_df is not None:
                raise ValueError("X_df was given but no model was fitted with exogenous columns")
            return {}
        if X_df is None:
            raise ValueError(f"X_df is required: the models were fitted with exogenous columns "
                             f"{self._data.exog_columns}; pass them for the {h} steps after each series")
        future = read_long(X_df, self.freq, name="X_df", target=False)
        absent = [c for c in self._data.exog_columns if c not in future.exog_columns]
        if absent:
            raise ValueError(f"X_df is missing the exogenous column(s) {absent} seen in fit")
        lacking = [uid for uid in self.uids_ if uid not in future.X]
        if lacking:
            raise ValueError(f"X_df has no rows for series {lacking[:5]}")
        return {uid: future.X[uid][self._data.exog_columns] for uid in self.uids_}

    @staticmethod
    def _tidy(parts: list, order: list) -> pd.DataFrame:
        out = pd.concat(parts, ignore_index=True)
        return out.sort_values(order, kind="stable", ignore_index=True)


def _refit_interval(refit) -> int:
    """statsforecast's ``refit``: True -> 1 (every window), False -> 0 (first window only),
    an int k >= 1 -> k."""
    if isinstance(refit, (bool, np.bool_)):
        return int(bool(refit))
    if isinstance(refit, (int, np.integer)) and refit >= 1:
        return int(refit)
    raise ValueError(f"refit must be True, False or a positive int, got {refit!r}")


def _update(fitted: dict, data: LongData, previous: dict, stops: dict) -> None:
    """Absorb each series' rows ``previous[uid]:stops[uid]`` into its fitted models."""
    for per_series in fitted.values():
        for uid, est in per_series.items():
            new = data.y[uid].iloc[previous[uid]:stops[uid]]
            if getattr(est, "_accepts_exog", False) and uid in data.X:
                est.update(new, X_new=data.X[uid].iloc[previous[uid]:stops[uid]])
            else:
                est.update(new)


def _window_rows(fitted: dict, data: LongData, uid, stop: int, h: int, levels: list) -> pd.DataFrame:
    """One series' rows of one window: ``unique_id``, ``ds``, ``cutoff``, ``y`` and the models'
    forecasts of the ``h`` rows after position ``stop``."""
    y = data.y[uid]
    test = y.iloc[stop:stop + h]
    columns = {ID_COL: pd.Index([uid] * h, dtype=data.ids.dtype), TIME_COL: test.index,
               "cutoff": y.index[[stop - 1] * h], TARGET_COL: test.to_numpy()}
    for alias, per_series in fitted.items():
        est = per_series[uid]
        takes_X = getattr(est, "_accepts_exog", False) and uid in data.X
        X = data.X[uid].iloc[stop:stop + h] if takes_X else None
        columns.update(forecast_columns(est, alias, h, levels, X))
    return pd.DataFrame(columns)
