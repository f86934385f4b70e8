"""The estimator contract shared by every probssm model.

Every estimator follows scikit-learn's rules (``__init__`` only stores hyper-parameters; fitted
attributes end in ``_``; ``fit`` returns ``self``) and sktime's forecasting names and return shapes:
``fit``, ``predict``, ``predict_interval``, ``predict_quantiles``, ``sample``, ``update``,
``filter``, ``smooth``, ``score``, ``plot``, ``save`` / :func:`probssm.load`.

A family implements a few hooks (``_fit``, ``_update``, ``_forecast_moments`` or
``_predict_quantiles``, ``_sample``, ``_filter``, ``_smooth``, ``_log_predictive``,
``_fitted_state`` / ``_restore_fitted_state``); this class does the data handling around them, all
of it through :mod:`probssm._data`.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from . import _data, _persistence, distributed
from ._persistence import load
from ._progress import stderr_is_terminal

__all__ = [
    "NotFittedError", "BaseEstimator", "BaseForecaster", "StateEstimates", "load", "per_series",
    "single_series",
]



class NotFittedError(ValueError, AttributeError):
    """Raised when a method that needs a fitted estimator is called before ``fit``."""


@functools.cache
def _init_param_names(cls) -> tuple[str, ...]:
    """The named parameters of ``cls.__init__``, once per class (``inspect.signature`` is slow
    for a call made this often: model-structure keys compare components by their
    hyper-parameters)."""
    sig = inspect.signature(cls.__init__)
    return tuple(
        p.name for p in sig.parameters.values()
        if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    )


class BaseEstimator:
    """Hyper-parameter handling compatible with ``sklearn.base.clone``."""

    @classmethod
    def _get_param_names(cls) -> list[str]:
        return list(_init_param_names(cls))

    def get_params(self, deep: bool = True) -> dict:
        """Hyper-parameters as a dict. With ``deep``, the hyper-parameters of nested
        estimators too, as ``<name>__<parameter>`` (scikit-learn's convention)."""
        params = {name: getattr(self, name) for name in self._get_param_names()}
        if deep:
            for name, value in list(params.items()):
                if hasattr(value, "get_params") and not isinstance(value, type):
                    params.update({f"{name}__{k}": v for k, v in value.get_params(deep=True).items()})
        return params

    def set_params(self, **params) -> "BaseEstimator":
        """Set hyper-parameters, nested ones as ``<name>__<parameter>``; unknown names raise
        ``ValueError``. Returns ``self``."""
        valid = self._get_param_names()
        nested: dict = {}
        for key, value in params.items():
            name, _, sub = key.partition("__")
            if name not in valid:
                raise ValueError(f"invalid parameter {name!r} for {type(self).__name__}; valid: {valid}")
            if sub:
                nested.setdefault(name, {})[sub] = value
            else:
                setattr(self, name, value)
        for name, sub_params in nested.items():
            inner = getattr(self, name)
            if not hasattr(inner, "set_params"):
                raise ValueError(f"{type(self).__name__}.{name} has no parameters to set {sorted(sub_params)} on")
            inner.set_params(**sub_params)
        return self

    # Execution settings that do not change results (sktime's ``set_config``), per class.
    # ``progress``: progress bars on long operations (NumPyro's NUTS, training), shown only
    # where standard error is a terminal.
    _config_defaults: dict = {"progress": True}  # noqa: RUF012

    @classmethod
    def _default_config(cls) -> dict:
        """The execution settings this class knows, with their defaults."""
        return dict(cls._config_defaults)

    def set_config(self, **config) -> "BaseEstimator":
        """Set execution settings. They never change results, so they are not hyper-parameters;
        ``sklearn.base.clone`` (and sktime's clone) keep them, and ``save`` stores them (all but
        a Dask ``client``). Unknown keys raise ``ValueError``, as do values a setting does not
        take. Returns ``self``."""
        defaults = self._default_config()
        unknown = sorted(set(config) - set(defaults))
        if unknown:
            raise ValueError(f"unknown configuration {unknown} for {type(self).__name__}; "
                             f"valid: {sorted(defaults)}")
        self._check_config(config)
        self._config = {**self.get_config(), **config}
        return self

    def get_config(self) -> dict:
        """The execution settings: the class defaults updated by :meth:`set_config`."""
        return {**self._default_config(), **getattr(self, "_config", {})}

    def _check_config(self, config: dict) -> None:
        """Raise ``ValueError`` for a value a setting of ``config`` does not take (a hook)."""

    def __sklearn_clone__(self):
        """``sklearn.base.clone``: an unfitted copy with the same hyper-parameters (cloned as
        scikit-learn does) and the same execution settings (as sktime's clone keeps them)."""
        from sklearn.base import _clone_parametrized

        new = _clone_parametrized(self)
        if "_config" in self.__dict__:
            new._config = dict(self._config)
        return new

    def _show_progress(self) -> bool:
        """Whether long operations show a progress bar: the ``progress`` setting, and standard
        error a terminal (never in logs, CI output or a notebook's captured stderr)."""
        return bool(self.get_config().get("progress", False)) and stderr_is_terminal()

    def __repr__(self) -> str:
        defaults = {
            p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()
        }
        shown = [
            f"{k}={v!r}" for k, v in self.get_params(deep=False).items()
            if not _same(v, defaults.get(k, inspect.Parameter.empty))
        ]
        return f"{type(self).__name__}({', '.join(shown)})"

    def __sklearn_tags__(self):  # pragma: no cover - only used when scikit-learn asks
        from sklearn.utils import Tags, TargetTags

        return Tags(estimator_type="forecaster", target_tags=TargetTags(required=True))

    def _check_is_fitted(self) -> None:
        if not getattr(self, "is_fitted_", False):
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet; call fit(y) before using this method"
            )


def _same(a, b) -> bool:
    try:
        return bool(a is b or a == b)
    except Exception:  # arrays and other objects without a scalar ==
        return False


@dataclass
class StateEstimates:
    """Latent-state estimates from ``filter()`` or ``smooth()``.

    Attributes
    ----------
    mean : DataFrame, ``(T, n)``
        State means, indexed by time, one column per state.
    std : DataFrame, ``(T, n)``
        Marginal standard deviations :math:`\\sqrt{\\mathrm{diag}\\, P_t}`.
    cov : ndarray, ``(T, n, n)``
        Full state covariances.
    log_likelihood : float
        Log-likelihood of the data the estimates are conditioned on.
    """

    mean: pd.DataFrame
    std: pd.DataFrame
    cov: np.ndarray
    log_likelihood: float

    def interval(self, coverage: float = 0.9) -> pd.DataFrame:
        """Marginal central intervals, columns ``(state, coverage, "lower"|"upper")``."""
        z = stats.norm.ppf(0.5 + coverage / 2)
        parts = {}
        for col in self.mean.columns:
            parts[(col, coverage, "lower")] = self.mean[col] - z * self.std[col]
            parts[(col, coverage, "upper")] = self.mean[col] + z * self.std[col]
        return pd.DataFrame(parts, index=self.mean.index)

    @classmethod
    def from_moments(cls, mean, cov, index, names, log_likelihood) -> "StateEstimates":
        """From state means ``(T, n)`` and covariances ``(T, n, n)`` on ``index``, columns
        ``names``; the standard deviations are :math:`\\sqrt{\\max(0, P_{t,ii})}`."""
        mean, cov = np.asarray(mean), np.asarray(cov)
        std = np.sqrt(np.clip(np.diagonal(cov, axis1=-2, axis2=-1), 0, None))
        return cls(mean=pd.DataFrame(mean, index=index, columns=names),
                   std=pd.DataFrame(std, index=index, columns=names),
                   cov=cov, log_likelihood=float(log_likelihood))

    @classmethod
    def stack(cls, parts: dict) -> "StateEstimates":
        """The estimates of independent series (``series_id -> StateEstimates``) as one:
        ``mean``/``std`` indexed by ``(series_id, time)``, ``cov`` ``(sum of T, n, n)`` in the
        same row order, ``log_likelihood`` the sum (the log-likelihood of all series, which are
        independent)."""
        keys = list(parts)
        return cls(
            mean=pd.concat([parts[k].mean for k in keys], keys=keys, names=["series_id"]),
            std=pd.concat([parts[k].std for k in keys], keys=keys, names=["series_id"]),
            cov=np.concatenate([parts[k].cov for k in keys]),
            log_likelihood=float(sum(parts[k].log_likelihood for k in keys)),
        )


def per_series(method=None, *, drop_inner_level: bool = False):
    """Decorate a forecaster method so that, on an estimator fitted on a panel, it runs on every
    series' estimator (``estimators_``) and returns their results stacked under a
    ``series_id`` index level: DataFrames and Series by :func:`pandas.concat`,
    :class:`StateEstimates` by :meth:`StateEstimates.stack`. ``drop_inner_level`` drops the
    inner index level of the stacked result (a table with one row per series' variable).
    A ``random_state`` argument becomes one generator shared by all series, so the draws of
    different series are independent. On a single series the method runs as written."""
    def decorate(fn):
        signature = inspect.signature(fn)
        shares_generator = "random_state" in signature.parameters

        @functools.wraps(fn)
        def wrapper(self, *args, **kwargs):
            if getattr(self, "_panel", None) is None:
                return fn(self, *args, **kwargs)
            self._check_is_fitted()
            if shares_generator:
                bound = signature.bind(self, *args, **kwargs)
                bound.arguments["random_state"] = _data.random_generator(bound.arguments.get("random_state"))
                args, kwargs = bound.args[1:], bound.kwargs
            parts = {sid: getattr(est, fn.__name__)(*args, **kwargs) for sid, est in self.estimators_.items()}
            first = next(iter(parts.values()))
            if isinstance(first, StateEstimates):
                return StateEstimates.stack(parts)
            stacked = pd.concat(parts, names=["series_id"])
            return stacked.droplevel(-1) if drop_inner_level else stacked

        return wrapper

    return decorate if method is None else decorate(method)


def single_series(fn):
    """Decorate a forecaster method that works on one series only: on an estimator fitted on a
    panel it raises ``ValueError`` pointing to ``estimators_[series_id]``."""
    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        if getattr(self, "_panel", None) is not None:
            raise ValueError(
                f"{fn.__name__}() works on one series; this estimator was fitted on a panel: call it "
                "on estimators_[series_id]"
            )
        return fn(self, *args, **kwargs)

    return wrapper


class BaseForecaster(BaseEstimator):
    """Base class implementing the forecasting contract around family-specific hooks.

    Families that take exogenous regressors set ``_accepts_exog = True``; ``fit`` then stores
    ``X`` (aligned with ``y``) as ``self._X`` ``(T, k)`` (``None`` without ``X``), and every
    forecasting method requires ``X`` for the forecast steps and hands it to the hooks as ``exog``
    ``(h, k)``, rows for steps ``1..h``, ``h`` the largest step asked for.

    **Panels.** Families of univariate models set ``_univariate = True``: ``fit`` then reads a
    panel (a DataFrame of several columns, rows indexed by ``(series_id, time)``, or a long frame
    with ``unique_id``/``ds``/``y`` columns; see :func:`probssm._data.is_panel`) as many series.
    It fits one estimator per series (``estimators_``, a dict ``series_id -> estimator``;
    ``_fit_panel`` is the hook a family overrides to fit them all at once), and the methods
    marked :func:`per_series` return the series' results stacked under a ``series_id`` level:
    ``predict`` a Series indexed by ``(series_id, time)``, ``filter()``/``smooth()`` one
    :class:`StateEstimates` indexed the same way. Fitted scalars named in
    ``_panel_attributes`` become Series indexed by series, ``params_`` a DataFrame. Methods
    marked :func:`single_series` (``update``, ``score``, ``plot``) raise on a panel fit.

    **Where a panel fit runs.** These families also take the execution settings of
    :mod:`probssm.distributed` (``set_config(backend=..., client=..., chunk_size=...)``):
    with ``backend="dask"`` the series are fitted in chunks on a Dask cluster
    (:func:`probssm.distributed.dask.fit_panel`), each chunk the family's batched program, and
    the fitted estimators come back in the panel's order; the methods above then run in this
    process as after a local fit. A series whose fit fails there is left out of
    ``estimators_`` and reported in ``failures_`` (``series_id -> "Error: message"``) with a
    ``RuntimeWarning`` naming it; the other series keep their fits (a local panel fit raises
    instead, naming the series). ``failures_`` is empty after a fit without failures.
    """

    _accepts_exog = False
    _univariate = False
    _panel_attributes: tuple = ()

    # -- fitting --------------------------------------------------------------------------
    def fit(self, y, X=None):
        """Fit to ``y`` (Series, DataFrame, array ``(T,)``/``(T, m)``, or a panel for univariate
        models) and, for models with regressors, exogenous data ``X`` (DataFrame or array
        ``(T, k)``). Returns ``self``."""
        self._panel = None
        if self._univariate and _data.is_panel(y, univariate=True):
            if X is not None:
                raise ValueError("panel fits take no X; fit the series one by one to use regressors")
            panel = _data.as_panel_data(y)
            self._check_panel_fit()
            self.estimators_, self.failures_ = self._fit_panel_on_backend(panel)
            if self.failures_:
                from .distributed.dask import take_series

                kept = [i for i, sid in enumerate(panel.ids) if sid in self.estimators_]
                panel = take_series(panel, kept)
            self._panel = panel
            self._collect_panel_attributes()
            self.cutoff_ = panel.index[-1]
            self.is_fitted_ = True
            return self
        data = _data.as_series_data(y, min_observed=self._min_observed())
        for attr in ("estimators_", "failures_"):  # left from an earlier panel fit
            self.__dict__.pop(attr, None)
        self._X, self._exog_columns = None, None
        if X is not None:
            self._check_no_exog(X)
            self._X, self._exog_columns = _data.as_exog(X, data.index)
        self._y = data
        self._fit(data)
        self.cutoff_ = data.index[-1]
        self.is_fitted_ = True
        return self

    # -- panels -------------------------------------------------------------------------------
    @classmethod
    def _default_config(cls) -> dict:
        """Families that fit panels (``_univariate``) also take the backend settings of
        :data:`probssm.distributed.BACKEND_CONFIG`."""
        defaults = super()._default_config()
        return {**defaults, **distributed.BACKEND_CONFIG} if cls._univariate else defaults

    def _check_config(self, config: dict) -> None:
        distributed.check_backend_config(config)

    def _fit_panel_on_backend(self, panel) -> tuple[dict, dict]:
        """``(estimators, failures)`` of a panel fit where the ``backend`` setting says: in this
        process (:meth:`_fit_panel`, no failures: an error raises) or on Dask
        (:func:`probssm.distributed.dask.fit_panel`; failed series are warned about by id)."""
        config = self.get_config()
        if not distributed.uses_dask(config):
            return self._fit_panel(panel), {}
        from .distributed.dask import fit_panel

        fitted, failures = fit_panel(self, panel, client=config["client"], chunk_size=config["chunk_size"])
        if failures:
            shown = ", ".join(repr(sid) for sid in list(failures)[:10])
            more = f" and {len(failures) - 10} more" if len(failures) > 10 else ""
            warnings.warn(
                f"{len(failures)} of {len(panel.ids)} series failed to fit and were left out: "
                f"{shown}{more}; their errors are in failures_", RuntimeWarning, stacklevel=3)
        return fitted, failures

    def _check_panel_fit(self) -> None:
        """Raise for hyper-parameters a panel fit does not support (a hook)."""

    def _fit_panel(self, panel) -> dict:
        """Fitted estimators, one per series of ``panel`` (:class:`probssm._data.PanelData`):
        a clone fitted on each series in turn. Families override it to fit all at once."""
        fitted = {}
        for i, sid in enumerate(panel.ids):
            est = type(self)(**self.get_params(deep=False))
            try:
                data = panel.series_data(i, min_observed=est._min_observed())
                fitted[sid] = est.fit(pd.Series(data.values[:, 0], index=data.index, name=panel.name))
            except ValueError as err:  # name the series at fault
                raise ValueError(f"fitting series {sid!r}: {err}") from err
        return fitted

    def _collect_panel_attributes(self) -> None:
        """Per-series fitted attributes as pandas objects indexed by series id."""
        ids = pd.Index(list(self.estimators_), name="series_id")
        params = [est.params_ for est in self.estimators_.values()]
        if all(isinstance(p, pd.Series) for p in params):
            self.params_ = pd.DataFrame([p.to_numpy() for p in params], index=ids, columns=params[0].index)
        for attr in self._panel_attributes:
            values = [getattr(est, attr) for est in self.estimators_.values()]
            setattr(self, attr, pd.Series(values, index=ids, name=attr))

    @single_series
    def update(self, y_new, X_new=None):
        """Absorb observations that follow the training data, keeping the fitted parameters.

        ``y_new`` must continue the training index. Later forecasts start after it.
        """
        self._check_is_fitted()
        new = _data.as_series_data(y_new, name="y_new", columns=self._y.columns, min_observed=0,
                                   time_index=False)
        _data.check_continuation(self._y.index, new.index)
        exog = self._exog_for(X_new, new.index, "X_new", "the new observations")
        self._update(new, exog)
        self._y = self._y.append(new)
        if exog is not None:
            self._X = np.concatenate([self._X, exog])
        self.cutoff_ = self._y.index[-1]
        return self

    # -- forecasting -------------------------------------------------------------------------
    @per_series
    def predict(self, fh, X=None):
        """Point forecasts (predictive means) for horizon ``fh``.

        ``fh``: int ``h`` (steps ``1..h``), list of steps, or an index of future labels. Returns a
        Series (univariate input) or DataFrame indexed by the continuation of the training index.
        """
        self._check_is_fitted()
        steps = _data.forecast_steps(fh, self._y.index)
        mean, _ = self._forecast_moments(steps, self._future_exog(X, steps))
        return self._wrap(mean, steps)

    @per_series
    def predict_interval(self, fh, X=None, coverage=0.9) -> pd.DataFrame:
        """Central prediction intervals; columns ``(variable, coverage, "lower"|"upper")``."""
        self._check_is_fitted()
        steps = _data.forecast_steps(fh, self._y.index)
        coverages = _data.check_coverage(coverage)
        alphas = sorted({a for c in coverages for a in (0.5 - c / 2, 0.5 + c / 2)})
        q = self._predict_quantiles(steps, alphas, self._future_exog(X, steps))
        cols = {}
        for j, var in enumerate(self._y.columns):
            for c in coverages:
                cols[(var, c, "lower")] = q[:, j, alphas.index(0.5 - c / 2)]
                cols[(var, c, "upper")] = q[:, j, alphas.index(0.5 + c / 2)]
        return pd.DataFrame(cols, index=self._future(steps))

    @per_series
    def predict_quantiles(self, fh, X=None, alpha=(0.05, 0.5, 0.95)) -> pd.DataFrame:
        """Predictive quantiles; columns ``(variable, alpha)``."""
        self._check_is_fitted()
        steps = _data.forecast_steps(fh, self._y.index)
        alphas = _data.check_alpha(alpha)
        q = self._predict_quantiles(steps, alphas, self._future_exog(X, steps))
        cols = {(var, a): q[:, j, k] for j, var in enumerate(self._y.columns) for k, a in enumerate(alphas)}
        return pd.DataFrame(cols, index=self._future(steps))

    @per_series
    def predict_var(self, fh, X=None) -> pd.DataFrame:
        """Marginal predictive variances, a DataFrame with one column per variable."""
        self._check_is_fitted()
        steps = _data.forecast_steps(fh, self._y.index)
        _, var = self._forecast_moments(steps, self._future_exog(X, steps))
        return pd.DataFrame(var, index=self._future(steps), columns=self._y.columns)

    @per_series
    def sample(self, fh, n_samples: int = 100, random_state=None, X=None) -> pd.DataFrame:
        """Joint sample paths of the forecast.

        Returns a long DataFrame indexed by ``(sample, time)`` with one column per variable.
        """
        self._check_is_fitted()
        if int(n_samples) < 1:
            raise ValueError(f"n_samples must be a positive integer, got {n_samples}")
        steps = _data.forecast_steps(fh, self._y.index)
        rng = _data.random_generator(random_state)
        draws = self._sample(steps, int(n_samples), rng, self._future_exog(X, steps))  # (n_samples, len(steps), m)
        future = self._future(steps)
        index = pd.MultiIndex.from_product([range(int(n_samples)), future], names=["sample", "time"])
        return pd.DataFrame(draws.reshape(-1, draws.shape[-1]), index=index, columns=self._y.columns)

    # -- latent states and scores -----------------------------------------------------------
    @per_series
    def filter(self) -> StateEstimates:
        """Filtered state estimates :math:`p(x_t \\mid y_{0:t})` over the data seen so far."""
        self._check_is_fitted()
        return self._filter()

    @per_series
    def smooth(self) -> StateEstimates:
        """Smoothed state estimates :math:`p(x_t \\mid y_{0:T-1})` over the data seen so far."""
        self._check_is_fitted()
        return self._smooth()

    @single_series
    def score(self, y, X=None) -> float:
        """Mean log predictive density of held-out ``y`` that follows the training data.

        :math:`\\frac{1}{N}\\log p(y_{T:T+h} \\mid y_{0:T-1})`, with :math:`N` the number of
        observed values in ``y`` (higher is better).
        """
        self._check_is_fitted()
        new = _data.as_series_data(y, columns=self._y.columns, time_index=False)
        _data.check_continuation(self._y.index, new.index, name="y")
        exog = self._exog_for(X, new.index, "X", "the scored observations")
        return float(self._log_predictive(new, exog) / np.sum(~np.isnan(new.values)))

    # -- plotting ---------------------------------------------------------------------------
    @single_series
    def plot(self, fh=10, coverage=(0.8, 0.95), ax=None, variable=None, show_smoothed=True, X=None):
        """Plot the history, the smoothed signal and the forecast with prediction bands
        (``X``: exogenous values for the forecast steps, for models fitted with regressors).

        Returns the matplotlib Axes.
        """
        from .plotting import plot_forecast

        self._check_is_fitted()
        return plot_forecast(self, fh=fh, coverage=coverage, ax=ax, variable=variable,
                             show_smoothed=show_smoothed, X=X)

    # -- persistence ------------------------------------------------------------------------
    def save(self, path) -> Path:
        """Save to a folder: ``estimator.json`` (class, hyper-parameters, fitted scalars, index)
        and ``arrays.npz`` (fitted arrays); a panel fit saves each series' estimator in a
        sub-folder ``series_<i>``. No pickle. Returns the folder's path; :func:`load` reads it."""
        self._check_is_fitted()
        return _persistence.save(self, path)

    def _restore_cutoff(self) -> None:
        """Set ``cutoff_`` after :func:`load` restored the data (the last label)."""
        self.cutoff_ = self._y.index[-1]

    def _restore_panel(self, estimators: dict, name: str) -> None:
        """Set the panel state from fitted per-series estimators (for :func:`load`)."""
        ests = list(estimators.values())
        values = np.stack([est._y.values[:, 0] for est in ests])
        self.estimators_ = estimators
        self.failures_ = {}
        self._panel = _data.PanelData(values, list(estimators), ests[0]._y.index, name)
        self._collect_panel_attributes()
        self.cutoff_ = self._panel.index[-1]
        self.is_fitted_ = True

    # -- helpers for subclasses -------------------------------------------------------------
    def _min_observed(self) -> int:
        return 1

    def _check_no_exog(self, X):
        if X is not None and not self._accepts_exog:
            raise ValueError(f"{type(self).__name__} takes no exogenous data; got X={type(X).__name__}")

    def _exog_for(self, X, index: pd.Index, name: str, what: str):
        """Exogenous values ``(len(index), k)`` for the times ``index``, or ``None`` for a model
        fitted without ``X``."""
        self._check_no_exog(X)
        if self._exog_columns is None:
            if X is not None:
                raise ValueError(f"{name} was given but {type(self).__name__} was fitted without exogenous data")
            return None
        if X is None:
            raise ValueError(
                f"{name} is required: the model was fitted with exogenous columns "
                f"{self._exog_columns}; pass their values for {what}"
            )
        return _data.as_exog(X, index, columns=self._exog_columns, name=name)[0]

    def _future_exog(self, X, steps):
        """Exogenous values for forecast steps ``1..max(steps)`` (``None`` without regressors)."""
        future = self._future(np.arange(1, int(np.max(steps)) + 1))
        return self._exog_for(X, future, "X", f"the forecast steps up to {future[-1]!r}")

    def _future(self, steps) -> pd.Index:
        return _data.future_index(self._y.index, steps)

    def _wrap(self, values: np.ndarray, steps):
        index = self._future(steps)
        if self._y.is_series:
            return pd.Series(values[:, 0], index=index, name=self._y.columns[0])
        return pd.DataFrame(values, index=index, columns=self._y.columns)

    def _predict_quantiles(self, steps, alphas, exog=None) -> np.ndarray:
        """Quantiles ``(len(steps), m, len(alphas))``; Gaussian from the moments by default."""
        mean, var = self._forecast_moments(steps, exog)
        z = stats.norm.ppf(np.asarray(alphas))
        return mean[..., None] + np.sqrt(var)[..., None] * z
