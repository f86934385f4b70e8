"""probssm estimators as sktime forecasters: :class:`ProbssmForecaster`.

The adapter maps sktime's calls onto the probssm estimator contract (:mod:`probssm.base`) and
adds nothing of its own to the numbers: ``fit(y, X, fh)`` fits a copy of the wrapped estimator
on ``y`` (and ``X``), ``predict`` / ``predict_interval`` / ``predict_quantiles`` /
``predict_var`` return the estimator's own forecasts for the steps of ``fh`` after the cutoff,
``predict_proba`` a distribution object (a normal one where the estimator's predictive is
Gaussian, else the empirical distribution of its sample paths), ``update`` a refit or the
estimator's own filter step. The sktime tags are read from the wrapped estimator
(:mod:`probssm.adapters._capabilities`), so sktime's checks and compositions know what it can do.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sktime.forecasting.base import BaseForecaster as _SktimeForecaster

from . import _capabilities as caps

__all__ = ["ProbssmForecaster"]


def _tags_for(estimator) -> dict:
    """sktime tags describing ``estimator`` (see :class:`ProbssmForecaster`)."""
    exog = caps.accepts_exog(estimator)
    # probssm's panels hold one value column and (except the deep global models) no regressors;
    # for other panels, and for estimators that take X, sktime fits the series one by one.
    panels = caps.fits_panels(estimator) and (caps.is_deep(estimator) or not exog)
    kinds = "univariate" if panels else caps.variables(estimator)
    tags = {
        "capability:exogenous": exog,
        "y_inner_mtype": _y_mtypes(kinds, panels),
        "python_dependencies": ["torch"] if caps.is_deep(estimator) else None,
    }
    # sktime 1.x names the number of variables with a boolean, earlier releases with scitype:y
    # ("both" has no boolean form: such estimators declare multivariate support, which sktime
    # 1.x reads as "any number of variables").
    if "capability:multivariate" in _SktimeForecaster._tags:
        tags["capability:multivariate"] = kinds != "univariate"
    else:
        tags["scitype:y"] = kinds
    if "capability:non_contiguous_X" in _SktimeForecaster._tags:
        # The state recursions need the regressors of every step up to the last one forecast.
        tags["capability:non_contiguous_X"] = not exog
    return tags


def _y_mtypes(kinds: str, panels: bool) -> list[str]:
    """sktime's inner mtypes of ``y`` for the number of variables ``kinds`` (see
    :func:`probssm.adapters._capabilities.variables`) and panel support."""
    mtypes = []
    if kinds in ("univariate", "both"):
        mtypes.append("pd.Series")
    if kinds in ("multivariate", "both"):
        mtypes.append("pd.DataFrame")
    if panels:
        mtypes.append("pd-multiindex")
    return mtypes


class ProbssmForecaster(_SktimeForecaster):
    """Any probssm estimator as an sktime forecaster.

    ``ProbssmForecaster(estimator)`` wraps an estimator *instance* (``LocalLevel()``,
    ``SARIMAX(order=...)``, ``UnobservedComponents(...)``, ``KalmanFilter(...)``,
    ``GaussianProcess(kernel)``, ``ExtendedKalmanFilter(model)``,
    ``UnscentedKalmanFilter(model)``, ``ParticleFilter(model)``, ``MambaForecaster(...)``,
    ``DeepStateForecaster(...)``); ``fit`` fits a copy of it (``estimator_``), so the
    hyper-parameter ``estimator`` stays unfitted, as scikit-learn's rules require.
    ``get_params(deep=True)`` lists the wrapped estimator's hyper-parameters as
    ``estimator__<name>`` and ``set_params`` takes them (tuning grids, ``sklearn.base.clone``).

    Forecasts are out of sample: ``fh`` (relative or absolute) must lie after the cutoff, the
    last time seen; sktime raises ``NotImplementedError`` for an in-sample step. Points are the
    predictive means :math:`E[y_{T+k} \\mid y_{1:T}]`; intervals and quantiles are the
    estimator's own (exact Gaussian ones for the linear-Gaussian family); ``predict_var`` the
    marginal variances :math:`\\mathrm{Var}[y_{T+k} \\mid y_{1:T}]`.

    Tags read from the estimator: ``capability:exogenous`` (it takes ``X``: UnobservedComponents,
    SARIMAX, the deep forecasters), ``y_inner_mtype`` (``pd-multiindex`` panels, one value
    column, for the estimators that fit many series at once: LocalLevel in one batched program,
    Gaussian processes, the deep global models; sktime fits other panels series by series), the
    number of variables (``scitype:y`` / ``capability:multivariate``: one for those and the
    univariate models, the model's dimension for Kalman, nonlinear and particle filters).
    Fixed: ``capability:pred_int`` (every estimator is probabilistic), ``capability:missing_values``
    (NaN in ``y`` is a missing observation), ``capability:insample`` false,
    ``requires-fh-in-fit`` false, ``capability:update`` true.

    Parameters
    ----------
    estimator : probssm estimator
        The model, unfitted (a fitted one is copied without its fit).
    n_samples : int, default 1000
        Sample paths behind ``predict_proba`` (and ``predict_var`` of the deep forecasters)
        where the predictive distribution is not Gaussian.
    random_state : None, int or numpy Generator
        Seeds those sample paths.

    Attributes
    ----------
    estimator_ : probssm estimator
        The fitted copy.

    Notes
    -----
    ``update(y, X, update_params=True)`` refits the copy on all data seen (sktime's meaning of
    updating the parameters); ``update_params=False`` absorbs the new observations with the
    estimator's own ``update`` (a filter step; no refit), which needs them to continue the data
    without a gap; a panel fit (except a deep global model's) can only refit.

    Examples
    --------
    >>> from probssm import LocalLevel
    >>> from probssm.adapters.sktime import ProbssmForecaster
    >>> from probssm.datasets import load_nile
    >>> forecaster = ProbssmForecaster(LocalLevel()).fit(load_nile())
    >>> forecaster.predict_interval(fh=[1, 2, 3], coverage=0.9)  # doctest: +SKIP
    """

    _tags = {  # noqa: RUF012 - sktime reads and merges class-level tag dicts
        "authors": ["probssm developers"],
        "maintainers": ["probssm developers"],
        "object_type": "forecaster",
        "y_inner_mtype": ["pd.Series"],
        "X_inner_mtype": "pd.DataFrame",
        "capability:exogenous": True,
        "capability:insample": False,
        "capability:pred_int": True,
        "capability:pred_int:insample": False,
        "capability:missing_values": True,
        "capability:categorical_in_X": False,
        "capability:update": True,
        "requires-fh-in-fit": False,
        "X-y-must-have-same-index": True,
        "fit_is_empty": False,
        "capability:random_state": True,  # seeds the sample paths behind predict_proba
    }

    # update(update_params=True) refits on all data seen, which sktime keeps only while
    # remember_data is set (its default changes to False in sktime 1.3).
    _config = {"remember_data": True}  # noqa: RUF012 - sktime merges class-level configs

    def __init__(self, estimator, n_samples=1000, random_state=None):
        self.estimator = estimator
        self.n_samples = n_samples
        self.random_state = random_state
        super().__init__()
        caps.check_estimator(estimator)
        self.set_tags(**_tags_for(estimator))

    # -- fitting ------------------------------------------------------------------------------
    def _fit(self, y, X, fh):
        """Fit a copy of ``estimator`` to ``y`` (and ``X``)."""
        self._check_samples()
        self.estimator_ = self._fresh_copy().fit(y, **self._exog(X))
        return self

    def _fresh_copy(self):
        """An unfitted copy of ``estimator`` with its hyper-parameters and execution settings."""
        est = self.estimator
        return type(est)(**est.get_params(deep=False)).set_config(**est.get_config())

    def _check_samples(self):
        n = self.n_samples
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n_samples must be a positive integer, got {n!r}")

    def _exog(self, X, name="X") -> dict:
        """``X`` as the keyword the estimator takes (nothing when it takes no regressors)."""
        return {} if X is None or not caps.accepts_exog(self.estimator) else {name: X}

    # -- forecasting --------------------------------------------------------------------------
    def _steps(self, fh) -> list[int]:
        """The steps of ``fh`` after the cutoff (1 = the first step after the data; sktime
        rejects in-sample steps before, as the tag ``capability:insample`` says)."""
        return [int(s) for s in fh.to_relative(self.cutoff).to_numpy()]

    def _predict(self, fh, X):
        """Predictive means for ``fh``, named as ``y``."""
        point = self.estimator_.predict(self._steps(fh), **self._exog(X))
        names = self._get_varnames()
        if isinstance(point, pd.Series):
            point = point.to_frame()
        point = point.set_axis(list(names), axis=1)
        point.index = self._time_index(point.index)
        if isinstance(self._y, pd.Series):
            return point.iloc[:, 0].rename(self._y.name)
        return point

    def _predict_interval(self, fh, X, coverage):
        """Central intervals, columns ``(variable, coverage, "lower"|"upper")``."""
        table = self.estimator_.predict_interval(self._steps(fh), coverage=list(coverage), **self._exog(X))
        return self._relabel(table, self._get_columns(method="predict_interval", coverage=coverage))

    def _predict_quantiles(self, fh, X, alpha):
        """Quantiles, columns ``(variable, alpha)``."""
        table = self.estimator_.predict_quantiles(self._steps(fh), alpha=list(alpha), **self._exog(X))
        return self._relabel(table, self._get_columns(method="predict_quantiles", alpha=alpha))

    def _predict_var(self, fh, X=None, cov=False):
        """Marginal predictive variances, one column per variable (``cov=True`` is not
        available: the estimators give marginal variances)."""
        if cov:
            raise NotImplementedError(f"{type(self).__name__} gives marginal predictive variances only (cov=False)")
        if not caps.has_moments(self.estimator_):
            # the variance of the empirical distribution of the sample paths
            paths = self._paths(fh, X)
            return paths.groupby(level=list(range(1, paths.index.nlevels)), sort=False).var(ddof=0)
        var = self.estimator_.predict_var(self._steps(fh), **self._exog(X))
        return self._relabel(var, pd.Index(self._get_varnames()))

    def _predict_proba(self, fh, X, marginal=True):
        """A normal distribution from the predictive means and variances where the estimator's
        predictive is Gaussian; else the empirical distribution of ``n_samples`` sample paths
        (skpro's ``Empirical``; paths are joint over time, ``marginal`` picks the marginals)."""
        if caps.gaussian_predictive(self.estimator_):
            return super()._predict_proba(fh=fh, X=X, marginal=marginal)
        from skpro.distributions import Empirical

        paths = self._paths(fh, X)
        index = paths.index.droplevel(0).unique()
        return Empirical(paths, time_indep=marginal, index=index, columns=paths.columns)

    def _paths(self, fh, X) -> pd.DataFrame:
        """``n_samples`` sample paths of the estimator, rows ``(sample, [series,] time)``
        (panels stack them under the series), columns named as ``y``."""
        self._check_samples()
        paths = self.estimator_.sample(self._steps(fh), n_samples=int(self.n_samples),
                                       random_state=self.random_state, **self._exog(X))
        if paths.index.nlevels == 3:  # (series_id, sample, time)
            paths = paths.reorder_levels([1, 0, 2]).sort_index(level=[0, 1], sort_remaining=False)
        paths = paths.set_axis(list(self._get_varnames()), axis=1)
        rest = self._time_index(paths.index.droplevel(0))
        paths.index = pd.MultiIndex.from_arrays(
            [paths.index.get_level_values(0).rename(None), *(rest.get_level_values(i) for i in range(rest.nlevels))])
        return paths

    def _relabel(self, table: pd.DataFrame, columns: pd.Index) -> pd.DataFrame:
        """``table`` with sktime's column labels (same order) and row index names."""
        if table.shape[1] != len(columns):
            raise ValueError(f"{type(self.estimator).__name__} returned {table.shape[1]} columns, "
                             f"expected {len(columns)} ({list(columns)})")
        table = table.set_axis(columns, axis=1)
        table.index = self._time_index(table.index)
        return table

    def _time_index(self, index: pd.Index) -> pd.Index:
        """``index`` with the level names of the ``y`` seen in fit."""
        names = list(self._y.index.names)
        if isinstance(index, pd.MultiIndex) and len(names) == index.nlevels:
            return index.set_names(names)
        if not isinstance(index, pd.MultiIndex):
            return index.rename(names[-1])
        return index

    # -- updating -----------------------------------------------------------------------------
    def _update(self, y, X=None, update_params=True):
        """``update_params``: refit on all data seen; otherwise absorb the observations of ``y``
        after the estimator's cutoff with its own ``update``."""
        if update_params:
            self.estimator_ = self._fresh_copy().fit(self._y, **self._exog(self._X))
            return self
        if isinstance(y.index, pd.MultiIndex) and not caps.is_deep(self.estimator):
            raise ValueError(
                f"{type(self.estimator).__name__} fitted on a panel cannot absorb new observations "
                "without refitting; call update(y, update_params=True)")
        new = y[y.index.get_level_values(-1) > self.estimator_.cutoff_]
        if len(new):
            self.estimator_.update(new, **self._exog(X, "X_new"))
        return self

    # -- sktime's test settings -----------------------------------------------------------------
    @classmethod
    def get_test_params(cls, parameter_set="default"):
        """Fast settings for sktime's checks: a local level model and an AR(1)."""
        from ..structural.estimator import SARIMAX, LocalLevel

        return [{"estimator": LocalLevel()}, {"estimator": SARIMAX(order=(1, 0, 0))}]
