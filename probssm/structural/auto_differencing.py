r"""How many differences an automatic ARIMA takes: KPSS tests for :math:`d`, seasonal strength for
:math:`D` (the defaults of ``forecast::auto.arima``, Hyndman & Khandakar 2008, and of
statsforecast's ``AutoARIMA``).

* :func:`seasonal_differences` (:math:`D`): the strength of seasonality of an STL decomposition
  :math:`y_t = T_t + S_t + R_t` (period :math:`s`, seasonal window 11, two inner iterations, not
  robust: what ``forecast::mstl`` uses for one period),

  .. math:: F_S = \max\Bigl(0,\ 1 - \frac{\operatorname{Var}(R_t)}{\operatorname{Var}(S_t + R_t)}\Bigr),

  takes a seasonal difference while :math:`F_S > 0.64` (``forecast::nsdiffs(test="seas")``).
* :func:`differences` (:math:`d`): the KPSS test of level stationarity (statsmodels'
  :func:`~statsmodels.tsa.stattools.kpss`, ``regression="c"``) with
  :math:`\lfloor 3\sqrt{n}/13 \rfloor` Newey-West lags, as ``forecast::ndiffs`` calls
  ``urca::ur.kpss``; a difference is taken while the statistic exceeds the 5 % critical value
  (0.463), on the seasonally differenced series.
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["differences", "kpss_rejects", "seasonal_differences", "seasonal_strength"]

# forecast::nsdiffs: seasonal strength above this calls for a seasonal difference.
SEASONAL_STRENGTH_THRESHOLD = 0.64
# 5 % critical value of the KPSS level-stationarity statistic (Kwiatkowski et al. 1992, table 1).
KPSS_CRITICAL_5 = 0.463


def _observed(x) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    return x[np.isfinite(x)]


def seasonal_strength(x, period: int) -> float:
    r"""Strength of seasonality :math:`F_S \in [0, 1]` of ``x`` ``(n,)`` (missing values dropped)
    from an STL decomposition of period ``period`` (seasonal window 11, not robust)."""
    from statsmodels.tsa.seasonal import STL

    x = _observed(x)
    fit = STL(x, period=int(period), seasonal=11, robust=False).fit(inner_iter=2, outer_iter=0)
    remainder = np.asarray(fit.resid)
    detrended = remainder + np.asarray(fit.seasonal)
    total = np.var(detrended, ddof=1)
    if total <= 0:
        return 0.0
    return float(max(0.0, min(1.0, 1.0 - np.var(remainder, ddof=1) / total)))


def seasonal_differences(x, period: int, max_D: int = 1) -> int:
    """Number of seasonal differences :math:`D \\le` ``max_D`` of ``x`` ``(n,)``: one more while
    the seasonal strength of the differenced series exceeds 0.64 and at least two full periods
    remain (``forecast::nsdiffs(test="seas")``). ``period < 2`` gives 0."""
    x = _observed(x)
    D = 0
    while D < max_D and period >= 2 and x.size >= 2 * period + 1 and np.ptp(x) > 0:
        if seasonal_strength(x, period) <= SEASONAL_STRENGTH_THRESHOLD:
            break
        x = x[period:] - x[:-period]
        D += 1
    return D


def kpss_rejects(x) -> bool:
    """Whether the KPSS test rejects level stationarity of ``x`` ``(n,)`` at 5 %, with
    :math:`\\lfloor 3\\sqrt{n}/13 \\rfloor` lags."""
    from statsmodels.tsa.stattools import kpss

    x = _observed(x)
    with warnings.catch_warnings():  # the p-value table's range warning: the statistic is compared directly
        warnings.simplefilter("ignore")
        stat = kpss(x, regression="c", nlags=int(3 * np.sqrt(x.size) / 13))[0]
    return bool(stat > KPSS_CRITICAL_5)


def differences(x, max_d: int = 2) -> int:
    """Number of first differences :math:`d \\le` ``max_d`` of ``x`` ``(n,)``: one more while
    KPSS rejects level stationarity (``forecast::ndiffs(test="kpss")``); a constant series
    needs none."""
    x = _observed(x)
    d = 0
    while d < max_d and x.size > 3 and np.ptp(x) > 0 and kpss_rejects(x):
        x = np.diff(x)
        d += 1
    return d
