r"""Automatic model selection: :class:`AutoSARIMAX` (Hyndman-Khandakar order search) and
:class:`AutoUC` (a choice among structural specifications), one selection per series of a panel."""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd

from .._progress import progress_bar
from .auto_base import AutoForecaster
from .auto_candidates import criterion_value
from .auto_differencing import differences, seasonal_differences
from .auto_search import SearchBounds, search
from .components import Seasonal

__all__ = ["AutoSARIMAX", "AutoUC"]

_CRITERIA = ("aicc", "aic", "bic")
# forecast::auto.arima searches with the CSS approximation on series longer than this.
_APPROXIMATION_LENGTH = 150


def _check_int(name, value, low=0):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def _check_criterion(value):
    if value not in _CRITERIA:
        raise ValueError(f"information_criterion must be one of {_CRITERIA}, got {value!r}")


class AutoSARIMAX(AutoForecaster):
    r"""Seasonal ARIMA with orders chosen automatically (Hyndman & Khandakar 2008, as
    ``forecast::auto.arima`` and statsforecast's ``AutoARIMA``).

    1. :math:`D` by the seasonal strength of an STL decomposition (:math:`F_S > 0.64`), then
       :math:`d` by KPSS tests on the seasonally differenced series
       (:mod:`probssm.structural.auto_differencing`), unless given.
    2. :math:`(p, q, P, Q)` and a constant (allowed when :math:`d + D \le 1`: a mean, or a drift)
       by the stepwise search of :mod:`probssm.structural.auto_search`, or over all admissible
       orders (``stepwise=False``), minimising the information criterion of the ARMA model of
       :math:`w_t = \Delta^d\Delta_s^D y_t`. Each round's candidates, of every series of a panel,
       are fitted in one batched, compiled L-BFGS (:mod:`probssm.structural.auto_candidates`).
    3. The selected candidate's estimates become ``best_estimator_``, a
       :class:`~probssm.structural.SARIMAX` of :math:`y` with orders :math:`(p, d, q)(P, D, Q)_s`
       (exact diffuse differencing states) at those parameters, which every forecasting method
       uses.

    Candidates are estimated and compared by the exact likelihood, or, with the approximation,
    by the conditional sum of squares (all candidates conditioned on the first
    ``max_p + s * max_P`` steps of :math:`w`; :math:`\sigma^2` the mean squared residual).
    Unlike ``forecast::auto.arima``, the approximated model is not refitted by exact maximum
    likelihood: the Kalman-filter fit of a seasonal model of 13 to 30 states costs more than
    the whole search, and on the US employment panel of ``benchmarks/auto_models.py`` such a
    refit (from the CSS estimates) forecast worse, MASE 0.592 against 0.583, in three times the
    time.

    Parameters
    ----------
    seasonal_period : int, default 1
        Period :math:`s` of the seasonality (12 for monthly data); 1 for none.
    information_criterion : {"aicc", "aic", "bic"}, default "aicc"
        With :math:`k` estimated parameters (:math:`\sigma^2` included) and :math:`n`
        observations of :math:`w`: :math:`-2\log L + 2k`, plus :math:`2k(k+1)/(n-k-1)` for AICc;
        BIC :math:`-2\log L + k\log n`.
    stepwise : bool, default True
    max_p, max_q, max_P, max_Q : int, default 5, 5, 2, 2
    max_order : int, default 5
        Largest :math:`p + q + P + Q` of any candidate.
    max_d, max_D : int, default 2, 1
    d, D : int, optional
        Fixed numbers of differences (no test).
    max_models : int, default 94
        Most candidates per series in the stepwise search.
    approximation : bool, optional
        Compare candidates by conditional sum of squares; default (``None``): when the series
        has more than 150 observations or :math:`s > 12` (``forecast::auto.arima``'s rule).
    verbose : bool, default True
        A progress bar over the series (only when stderr is a terminal).

    Attributes
    ----------
    best_estimator_ : SARIMAX
    order_ : tuple ``(p, d, q)``
    seasonal_order_ : tuple ``(P, D, Q, s)``
    trend_ : str or None
        ``"c"`` when the model has a constant.
    criterion_ : float
        The selected candidate's criterion.
    candidates_ : DataFrame
        One row per fitted candidate: ``p, d, q, P, D, Q, constant, objective`` (``"css"`` or
        ``"ml"``), ``loglik``, ``nobs``, the criterion (column named after it), ``converged``.
        The selected model is the row of lowest criterion.
    """

    _selection_attributes = ("order_", "seasonal_order_", "trend_", "criterion_")

    def __init__(self, seasonal_period=1, information_criterion="aicc", stepwise=True, max_p=5, max_q=5,
                 max_P=2, max_Q=2, max_order=5, max_d=2, max_D=1, d=None, D=None, max_models=94,
                 approximation=None, verbose=True):
        self.seasonal_period = seasonal_period
        self.information_criterion = information_criterion
        self.stepwise = stepwise
        self.max_p, self.max_q, self.max_P, self.max_Q = max_p, max_q, max_P, max_Q
        self.max_order, self.max_d, self.max_D = max_order, max_d, max_D
        self.d, self.D = d, D
        self.max_models = max_models
        self.approximation = approximation
        self.verbose = verbose

    # -- checks -------------------------------------------------------------------------------
    def _check_settings(self):
        _check_int("seasonal_period", self.seasonal_period, 1)
        _check_criterion(self.information_criterion)
        for name in ("max_p", "max_q", "max_P", "max_Q", "max_order", "max_d", "max_D"):
            _check_int(name, getattr(self, name))
        _check_int("max_models", self.max_models, 1)
        for name in ("d", "D"):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name))
        if self.approximation not in (None, True, False):
            raise ValueError(f"approximation must be None, True or False, got {self.approximation!r}")
        if not isinstance(self.stepwise, (bool, np.bool_)):
            raise TypeError(f"stepwise must be a bool, got {self.stepwise!r}")

    def _check_panel_fit(self):
        self._check_settings()

    # -- fitting ------------------------------------------------------------------------------
    def _fit(self, data):
        self._check_settings()
        self.__dict__.update(self._select([data], ["y"])[0].__dict__)

    def _fit_panel(self, panel):
        datas = [panel.series_data(i, min_observed=self._min_observed()) for i in range(len(panel.ids))]
        return dict(zip(panel.ids, self._select(datas, [f"series {sid!r}" for sid in panel.ids])))

    def _differences(self, y):
        s = self.seasonal_period
        D = self.D if self.D is not None else (seasonal_differences(y, s, self.max_D) if s > 1 else 0)
        seasonal_y = y
        for _ in range(D):
            seasonal_y = seasonal_y[s:] - seasonal_y[:-s]
        d = self.d if self.d is not None else differences(seasonal_y, self.max_d)
        w = seasonal_y
        for _ in range(d):
            w = np.diff(w)
        first = int(np.argmax(np.isfinite(w))) if np.isfinite(w).any() else w.size
        return d, D, w[first:]

    def _select(self, datas, names):
        """Select and fit a model for every series of ``datas`` (SeriesData, called ``names`` in
        errors); returns one fitted copy of ``self`` per series."""
        from .estimator import SARIMAX

        s = self.seasonal_period
        bar = progress_bar(len(datas), type(self).__name__, show=self.verbose, unit="series")
        diffs, ws, seasonal, constant, method = [], [], [], [], []
        for data, name in zip(datas, names):
            d, D, w = self._differences(data.values[:, 0])
            if np.sum(np.isfinite(w)) < 3 or np.ptp(w[np.isfinite(w)]) == 0:
                raise ValueError(f"{name} has too few varying values after differencing (d={d}, D={D}) "
                                 "to fit a model")
            diffs.append((d, D))
            ws.append(w)
            seasonal.append(s > 1 and w.size >= 3 * s)
            constant.append(d + D <= 1)
            approx = self.approximation
            if approx is None:
                approx = data.num_timesteps > _APPROXIMATION_LENGTH or s > 12
            method.append("css" if approx else "ml")
        bounds = SearchBounds(self.max_p, self.max_q, self.max_P, self.max_Q, self.max_order, self.max_models)
        fits, best = search(ws, seasonal, constant, s, bounds, self.information_criterion, method,
                            self.stepwise, progress=None if bar is None else bar.update)
        if bar is not None:
            bar.close()
        out = []
        for i, data in enumerate(datas):
            est = self._series_estimator(data)
            (d, D), cand = diffs[i], best[i]
            rows = [self._row(c, d, D, method[i], f, value) for c, (f, value) in fits[i].items()]
            final = fits[i][cand][0]
            est.candidates_ = pd.DataFrame(rows)
            est.criterion_ = float(fits[i][cand][1])
            est.order_ = (cand.p, d, cand.q)
            est.seasonal_order_ = (cand.P, D, cand.Q, s) if (cand.P or cand.Q or D) else (0, 0, 0, 0)
            est.trend_ = "c" if cand.constant else None
            best_est = SARIMAX(est.order_, est.seasonal_order_, trend=est.trend_)
            y = pd.Series(data.values[:, 0], index=data.index, name=data.columns[0])
            est.best_estimator_ = best_est.fit(y, params=final.params)
            out.append(est)
        return out

    def _row(self, cand, d, D, objective, fit, value):
        return {"p": cand.p, "d": d, "q": cand.q, "P": cand.P, "D": D, "Q": cand.Q, "constant": cand.constant,
                "objective": objective, "loglik": fit.loglik, "nobs": fit.nobs,
                self.information_criterion: value, "converged": fit.converged}

    def _describe_best(self):
        P, D, Q, s = self.seasonal_order_
        p, d, q = self.order_
        seasonal = f"({P},{D},{Q})[{s}]" if s else ""
        const = " with constant" if self.trend_ else ""
        return f"SARIMAX({p},{d},{q}){seasonal}{const}"


_TRENDS = ("local level", "local linear trend", "smooth trend")


class AutoUC(AutoForecaster):
    r"""Unobserved-components model chosen among structural specifications by an information
    criterion.

    The candidates are a trend, ``"local level"``, ``"local linear trend"`` or
    ``"smooth trend"``, each alone and, when ``seasonal_period > 1``, with a stochastic dummy
    seasonal of that period (:class:`~probssm.structural.components.Seasonal`), plus an
    irregular: up to six :class:`~probssm.structural.UnobservedComponents` models, fitted by
    maximum likelihood with the exact diffuse initialisation. The criterion counts the diffuse
    states among the parameters (statsmodels' convention, as ``aic_`` does):
    :math:`k` = parameters + diffuse states, :math:`n` = observations, and
    :math:`\mathrm{AICc} = \mathrm{AIC} + 2k(k+1)/(n-k-1)`. On a panel each specification is
    fitted to all series in one batched program, and each series takes its own best.

    Parameters
    ----------
    seasonal_period : int, default 1
    trends : sequence of str, default all three
    information_criterion : {"aicc", "aic", "bic"}, default "aicc"
    verbose : bool, default True

    Attributes
    ----------
    best_estimator_ : UnobservedComponents
    terms_ : tuple
        The selected specification's terms.
    criterion_ : float
    candidates_ : DataFrame
        One row per specification: ``trend``, ``seasonal`` (bool), ``loglik``, ``k``, ``nobs``,
        the criterion, ``converged``.
    """

    _selection_attributes = ("criterion_",)

    def __init__(self, seasonal_period=1, trends=_TRENDS, information_criterion="aicc", verbose=True):
        self.seasonal_period = seasonal_period
        self.trends = trends
        self.information_criterion = information_criterion
        self.verbose = verbose

    def _check_settings(self):
        _check_int("seasonal_period", self.seasonal_period, 1)
        _check_criterion(self.information_criterion)
        trends = list(self.trends) if not isinstance(self.trends, str) else None
        if not trends or any(t not in _TRENDS for t in trends):
            raise ValueError(f"trends must be a non-empty sequence of {_TRENDS}, got {self.trends!r}")

    def _check_panel_fit(self):
        self._check_settings()

    def _specifications(self):
        seasonal = [False, True] if self.seasonal_period > 1 else [False]
        return [(t, s) for t in self.trends for s in seasonal]

    def _terms(self, trend, seasonal):
        return (trend, Seasonal(self.seasonal_period)) if seasonal else (trend,)

    def _criterion(self, est):
        k = int(np.rint((est.aic_ + 2 * est.loglik_) / 2))
        return criterion_value(self.information_criterion, est.loglik_, k, est.nobs_), k

    def _fit(self, data):
        self._check_settings()
        y = pd.Series(data.values[:, 0], index=data.index, name=data.columns[0])
        fitted = {spec: self._uc(spec).fit(y) for spec in self._specifications()}
        self._choose(fitted)

    def _uc(self, spec):
        from .estimator import UnobservedComponents

        return UnobservedComponents(self._terms(*spec))

    def _fit_panel(self, panel):
        specs = self._specifications()
        bar = progress_bar(len(specs), type(self).__name__, show=self.verbose, unit="series")
        fitted = {}
        for spec in specs:  # one batched fit of this specification over all series
            uc = self._uc(spec)
            uc._check_panel_fit()
            fitted[spec] = uc._fit_panel(panel)
            if bar is not None:
                bar.update()
        if bar is not None:
            bar.close()
        out = {}
        for i, sid in enumerate(panel.ids):
            est = self._series_estimator(panel.series_data(i, min_observed=self._min_observed()))
            est._choose({spec: fitted[spec][sid] for spec in specs})
            out[sid] = est
        return out

    def _choose(self, fitted):
        rows, best, best_value = [], None, np.inf
        for (trend, seasonal), est in fitted.items():
            value, k = self._criterion(est)
            rows.append({"trend": trend, "seasonal": seasonal, "loglik": est.loglik_, "k": k, "nobs": est.nobs_,
                         self.information_criterion: value, "converged": bool(est.converged_)})
            if value < best_value:
                best, best_value = (trend, seasonal), value
        self.candidates_ = pd.DataFrame(rows)
        self.best_estimator_ = fitted[best]
        self.terms_ = tuple(self.best_estimator_.terms)
        self.criterion_ = float(best_value)

    def _restore_fitted_state(self, meta, arrays):
        super()._restore_fitted_state(meta, arrays)
        self.terms_ = tuple(self.best_estimator_.terms)

    def _describe_best(self):
        return " + ".join(str(t) for t in self.best_estimator_.terms)
