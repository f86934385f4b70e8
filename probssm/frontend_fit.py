"""Fitting one probssm estimator to every series of a long frame, and reading its forecasts in
statsforecast's column layout.

:func:`fit_series` fits a clone of the estimator per series. Estimators of univariate families
whose panel fit is one compiled program (the linear-Gaussian family: ``LocalLevel``,
``UnobservedComponents``, ``SARIMAX``; see :meth:`probssm.base.BaseForecaster.fit`) fit the
series of equal time span together as a ``(unique_id, ds)`` panel; the others, and any
estimator given exogenous columns, fit series by series. A panel puts its series on the union
of their time labels, so only series with the same first and last ``ds`` share one: a series
that ends earlier must forecast from its own end.
"""

from __future__ import annotations

import copy
import sys
import warnings

import numpy as np
import pandas as pd

from .frontend_data import ID_COL, TIME_COL, LongData

__all__ = ["named_models", "clone", "fit_series", "forecast_columns", "interval_names"]


def named_models(models) -> list[tuple[str, object]]:
    """``[(alias, estimator), ...]`` from a list of estimators (alias: the class name), of
    ``(alias, estimator)`` pairs, or a dict ``alias -> estimator``. Raises ``TypeError`` for
    an entry that is not a forecaster and ``ValueError`` for an empty list or repeated aliases."""
    items = list(models.items()) if isinstance(models, dict) else list(models) \
        if isinstance(models, (list, tuple)) else None
    if items is None:
        raise TypeError(f"models must be a list of estimators, of (alias, estimator) pairs, or a "
                        f"dict alias -> estimator; got {type(models).__name__}")
    if not items:
        raise ValueError("models is empty; give at least one estimator")
    named = []
    for i, item in enumerate(items):
        alias, model = item if isinstance(item, tuple) and len(item) == 2 else (None, item)
        for method in ("fit", "predict", "predict_interval", "get_params"):
            if not callable(getattr(model, method, None)):
                raise TypeError(f"models[{i}] ({type(model).__name__}) is not a probssm estimator: "
                                f"it has no {method}()")
        if _is_global(model):
            raise TypeError(f"models[{i}] ({type(model).__name__}) is a global model of a whole panel; "
                            "fit it on the long frame directly: model.fit(df)")
        if alias is not None and not isinstance(alias, str):
            raise TypeError(f"models[{i}]: the alias must be a string, got {alias!r}")
        named.append((alias or type(model).__name__, model))
    aliases = [a for a, _ in named]
    repeated = sorted({a for a in aliases if aliases.count(a) > 1})
    if repeated:
        raise ValueError(f"model names must be unique, {repeated} repeat; name the models with "
                         "(alias, estimator) pairs, e.g. [('LL', LocalLevel()), ('AR1', SARIMAX())]")
    return named


def _is_global(model) -> bool:
    """Whether ``model`` is one of probssm's deep forecasters, which learn one network from all
    series (checked without importing PyTorch: such a model exists only once its module is
    loaded)."""
    deep = sys.modules.get("probssm.deep.forecasting")
    return deep is not None and isinstance(model, deep.DeepForecaster)


def clone(estimator, config: dict | None = None):
    """An unfitted copy with the same hyper-parameters (``sklearn.base.clone``'s rule: nested
    estimators cloned, other values deep-copied), so fits never share state with the template,
    and the same execution settings (``set_config``; shared, not copied: a Dask client stays
    one). ``config``: settings that replace the estimator's, those of them the copy knows."""
    params = {
        k: clone(v) if hasattr(v, "get_params") and not isinstance(v, type) else copy.deepcopy(v)
        for k, v in estimator.get_params(deep=False).items()
    }
    new = type(estimator)(**params)
    settings = dict(estimator.__dict__.get("_config", {}))
    if config and callable(getattr(new, "_default_config", None)):
        settings.update({k: v for k, v in config.items() if k in new._default_config()})
    if settings:
        new.set_config(**settings)
    return new


def _uses_exog(estimator, data: LongData) -> bool:
    return bool(data.exog_columns) and getattr(estimator, "_accepts_exog", False)


def _fits_as_panel(estimator, data: LongData) -> bool:
    """Whether the estimator's family fits many series at once and accepts these settings."""
    if not getattr(estimator, "_univariate", False) or _uses_exog(estimator, data):
        return False
    try:
        clone(estimator)._check_panel_fit()
    except ValueError:  # settings a panel fit refuses: the series are fitted one by one
        return False
    return True


def fit_series(estimator, data: LongData, alias: str, config: dict | None = None) -> dict:
    """A fitted clone of ``estimator`` per series: ``unique_id -> estimator``, fitted on
    ``data.y[uid]`` (and ``data.X[uid]`` for estimators that take regressors). A ``ValueError``
    of a fit names the model and the series. ``config``: execution settings for the panel
    fits' clones (see :func:`clone`), e.g. a Dask backend (:mod:`probssm.distributed`); a
    series a Dask panel fit fails on raises here too, naming the model and the series."""
    if _fits_as_panel(estimator, data):
        return _fit_panels(estimator, data, alias, config)
    fitted = {}
    for uid in data.ids:
        X = data.X[uid] if _uses_exog(estimator, data) else None
        try:
            fitted[uid] = clone(estimator).fit(data.y[uid]) if X is None \
                else clone(estimator).fit(data.y[uid], X=X)
        except ValueError as err:
            raise ValueError(f"model {alias!r}, series {uid!r}: {err}") from err
    return fitted


def _fit_panels(estimator, data: LongData, alias: str, config: dict | None = None) -> dict:
    """One panel fit per group of series with the same first and last ``ds``."""
    groups: dict = {}
    for uid in data.ids:
        index = data.y[uid].index
        groups.setdefault((index[0], index[-1]), []).append(uid)
    fitted = {}
    for uids in groups.values():
        panel = pd.concat({uid: data.y[uid] for uid in uids}, names=[ID_COL, TIME_COL])
        try:
            with warnings.catch_warnings():  # failures raise below, naming the series
                warnings.simplefilter("ignore", RuntimeWarning)
                est = clone(estimator, config).fit(panel)
        except ValueError as err:
            raise ValueError(f"model {alias!r}: {err}") from err
        failures = getattr(est, "failures_", {})
        if failures:
            sid, message = next(iter(failures.items()))
            raise ValueError(f"model {alias!r}, series {sid!r}: {message}"
                             + (f" ({len(failures) - 1} more series failed)" if len(failures) > 1 else ""))
        fitted.update(est.estimators_)
    return {uid: fitted[uid] for uid in data.ids}


def interval_names(alias: str, levels: list) -> list[str]:
    """statsforecast's interval columns of one model: ``alias-lo-<level>`` from the highest
    level down, then ``alias-hi-<level>`` from the lowest up (``levels`` sorted increasingly)."""
    return [f"{alias}-lo-{lv}" for lv in reversed(levels)] + [f"{alias}-hi-{lv}" for lv in levels]


def forecast_columns(estimator, alias: str, h: int, levels: list, X=None) -> dict:
    """The forecast of a fitted single-series estimator for steps ``1..h`` as statsforecast's
    columns: ``alias`` (the predictive mean) and, per level :math:`\\ell` (percent), the
    central interval's bounds ``alias-lo-ℓ`` / ``alias-hi-ℓ`` (quantiles
    :math:`0.5 \\mp \\ell/200`). Each value is an array ``(h,)``."""
    columns = {alias: np.asarray(estimator.predict(h, X=X), dtype=np.float64).reshape(-1)}
    if levels:
        coverages = [float(lv) / 100 for lv in levels]
        bands = estimator.predict_interval(h, X=X, coverage=coverages)
        variable = bands.columns[0][0]
        for lv, c in zip(levels, coverages):
            columns[f"{alias}-lo-{lv}"] = bands[(variable, c, "lower")].to_numpy(dtype=np.float64)
            columns[f"{alias}-hi-{lv}"] = bands[(variable, c, "upper")].to_numpy(dtype=np.float64)
    return {name: columns[name] for name in [alias, *interval_names(alias, levels)]}
