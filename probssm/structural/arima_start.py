"""Starting values for maximum likelihood of SARIMAX models (:func:`start_params`).

Differencing, least squares for the trend and the regression, Hannan & Rissanen (1982) for the
ARMA coefficients on their lags, then each polynomial pulled inside the stationary / invertible
region; :func:`difference` applies :math:`\\Delta^d \\Delta_s^D`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .arima_lags import max_inverse_root, shrink_into_region

if TYPE_CHECKING:
    from .arima import SarimaxSpec

__all__ = ["difference", "start_params"]

_START_MAX_ROOT = 0.95  # starting polynomials have inverse roots of modulus at most this


def _into_region(coefs, lags):
    """Starting coefficients on ``lags`` inside the stationary / invertible region: every lag
    present, :func:`_pull_inside`; a lag list, :func:`~probssm.structural.arima_lags.shrink_into_region`."""
    if tuple(lags) == tuple(range(1, len(lags) + 1)):
        return _pull_inside(coefs)
    return shrink_into_region(coefs, lags, _START_MAX_ROOT)


def _pull_inside(tail, limit=_START_MAX_ROOT):
    """Scale ``c_i -> c_i lam^i`` so that ``1 + sum c_i z^i`` has inverse roots within ``limit``."""
    tail = np.asarray(tail, dtype=float)
    if not np.all(np.isfinite(tail)):
        return np.zeros_like(tail)
    rho = max_inverse_root(tail)
    if rho > limit:
        tail = tail * (limit / rho) ** np.arange(1, tail.size + 1)
    return tail


def difference(x, d: int, D: int, s: int) -> np.ndarray:
    """:math:`\\Delta^d \\Delta_s^D x` along the first axis of ``x`` ``(T, ...)``: a float
    array of ``T - d - sD`` rows (the leading ones have no lagged values)."""
    x = np.asarray(x, dtype=float)
    for _ in range(D):
        x = x[s:] - x[:-s]
    for _ in range(d):
        x = x[1:] - x[:-1]
    return x


def _lagged(x, lags, start):
    """Rows ``t = start..len(x)-1`` of ``[x_{t-l} for l in lags]``."""
    return np.column_stack([x[start - lag:len(x) - lag] for lag in lags]) if lags else np.zeros((len(x) - start, 0))


def _hannan_rissanen(e, ar_lags, ma_lags):
    """ARMA coefficients on the lag sets by Hannan & Rissanen (1982); missing values as zeros
    in the regressors, rows with a missing target left out. Returns ``(coefs, sigma2)`` or
    ``(None, None)`` when there are too few rows."""
    finite = np.isfinite(e)
    filled = np.where(finite, e, 0.0)
    n_obs = int(finite.sum())
    eps = filled
    start_eps = 0
    if ma_lags:
        max_lag = max(ar_lags + ma_lags)
        m = min(max(2 * max_lag, 10), n_obs // 3)
        while m >= 1:
            X = _lagged(filled, list(range(1, m + 1)), m)
            rows = finite[m:]
            if rows.sum() > 2 * m:
                coef = np.linalg.lstsq(X[rows], filled[m:][rows], rcond=None)[0]
                eps = np.zeros_like(filled)
                eps[m:] = np.where(rows, filled[m:] - X @ coef, 0.0)
                start_eps = m
                break
            m //= 2
    lags = ar_lags + ma_lags
    k = len(lags)
    for start in (max(max(ar_lags, default=0), start_eps + max(ma_lags, default=0)), max(lags, default=0)):
        if start >= len(e):
            continue
        X = np.column_stack([_lagged(filled, ar_lags, start), _lagged(eps, ma_lags, start)])
        rows = finite[start:]
        if rows.sum() > k + 1:
            target = filled[start:][rows]
            coef = np.linalg.lstsq(X[rows], target, rcond=None)[0]
            resid = target - X[rows] @ coef
            return coef, float(np.mean(resid ** 2))
    return None, None


def start_params(spec: SarimaxSpec, y, exog=None) -> np.ndarray:
    """Starting values for maximum likelihood (natural parameters, NumPy float64).

    1. Difference :math:`y_t` and the regressors: :math:`w_t = \\Delta^d\\Delta_s^D y_t`.
    2. Least squares of :math:`w_t` on the trend regressors :math:`t^{k_j}` and the differenced
       regressors gives :math:`\\beta` and the trend's mean :math:`\\mu`.
    3. Hannan-Rissanen on the residual :math:`e_t` over the lags :math:`1..p`,
       :math:`s, \\dots, sP` (AR) and :math:`1..q`, :math:`s, \\dots, sQ` (MA): a long
       autoregression estimates the innovations, then one regression of :math:`e_t` on lagged
       :math:`e` and lagged innovations gives the coefficients and :math:`\\sigma^2`. Missing
       values count as zero among the regressors; rows with a missing target are left out.
    4. Each polynomial is pulled inside the stationary / invertible region
       (:math:`c_i \\to c_i \\lambda^i`, inverse roots of modulus at most 0.95), the trend's
       intercept becomes :math:`\\mu\\, \\phi^*(1)`, and :math:`\\sigma^2` is floored at
       :math:`10^{-10}\\,\\mathrm{Var}(y)`. Where the data are too short for step 3 the ARMA
       coefficients start at zero.

    Parameters
    ----------
    spec : SarimaxSpec
    y : array, shape ``(T,)`` or ``(T, 1)``
        NaN marks a missing observation.
    exog : array, shape ``(T, k_exog)``, optional
        Required exactly when the spec has regressors; must be finite.

    Returns
    -------
    ndarray, shape ``(k_params,)``
        Finite, with stationary and invertible polynomials and :math:`\\sigma^2 > 0`.

    Raises
    ------
    ValueError
        A constant series, too few observations (fewer differenced observations than
        ``k_params + 1``), infinite values, or mismatched shapes.
    """
    y = np.asarray(y, dtype=float)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"y: expected shape (T,) or (T, 1), got {y.shape}")
    if np.isinf(y).any():
        raise ValueError(f"y: infinite value at index {int(np.argwhere(np.isinf(y))[0, 0])}; use NaN for missing values")
    T = y.shape[0]
    observed = y[np.isfinite(y)]
    if observed.size and np.ptp(observed) == 0:
        raise ValueError(f"y is constant ({observed[0]!r}); the SARIMAX parameters are not identified")
    if spec.k_exog:
        if exog is None:
            raise ValueError(f"exog: the spec has regressors {list(spec.exog_names)}; pass exog of shape ({T}, {spec.k_exog})")
        exog = np.asarray(exog, dtype=float)
        if exog.shape != (T, spec.k_exog):
            raise ValueError(f"exog: expected shape ({T}, {spec.k_exog}), got {exog.shape}")
        if not np.isfinite(exog).all():
            pos = tuple(int(i) for i in np.argwhere(~np.isfinite(exog))[0])
            raise ValueError(f"exog: non-finite value at index {pos}; regressors cannot be missing")
    elif exog is not None and np.size(exog):
        raise ValueError(f"exog: the spec has no regressors but exog of shape {np.shape(exog)} was given")
    else:
        exog = np.zeros((T, 0))

    d, (_, D, _, s) = spec.order[1], spec.seasonal_order
    offset = d + s * D
    w = difference(y, d, D, s)
    Xd = difference(exog, d, D, s)
    valid = np.isfinite(w)
    n_valid = int(valid.sum())
    if n_valid < spec.k_params + 1:
        raise ValueError(
            f"y: too few observations: {n_valid} observed values remain after differencing "
            f"(d={d}, D={D}, s={s}) but the model has {spec.k_params} parameters "
            f"{list(spec.param_names)}; need at least {spec.k_params + 1}"
        )
    # (2) trend and regression by least squares on the differenced data. The trend regressor of
    # w at (0-based) step t is A(t): the intercept of the transition into step t.
    times = np.arange(offset, T, dtype=float)
    trend = np.column_stack([times ** k for k in spec.trend_powers]) if spec.k_trend else np.zeros((len(w), 0))
    Z = np.column_stack([trend, Xd])
    if Z.shape[1]:
        coef = np.linalg.lstsq(Z[valid], w[valid], rcond=None)[0]
        coef = np.where(np.isfinite(coef), coef, 0.0)
        e = w - Z @ coef
    else:
        coef = np.zeros(0)
        e = w
    mu, beta = coef[:spec.k_trend], coef[spec.k_trend:]

    # (3) ARMA by Hannan-Rissanen.
    lags = spec.lags
    ar_lags = list(lags["ar"]) + [s * i for i in lags["seasonal_ar"]]
    ma_lags = list(lags["ma"]) + [s * i for i in lags["seasonal_ma"]]
    arma, sigma2 = (None, None)
    if ar_lags or ma_lags:
        arma, sigma2 = _hannan_rissanen(e, ar_lags, ma_lags)
    if arma is None or not np.all(np.isfinite(arma)):
        arma = np.zeros(len(ar_lags) + len(ma_lags))
        sigma2 = float(np.mean(e[np.isfinite(e)] ** 2))
    ar, sar, ma, sma = np.split(arma, np.cumsum([len(lags[k]) for k in ("ar", "seasonal_ar", "ma")]))

    # (4) into the valid region.
    ar, sar = -_into_region(-ar, lags["ar"]), -_into_region(-sar, lags["seasonal_ar"])
    ma, sma = _into_region(ma, lags["ma"]), _into_region(sma, lags["seasonal_ma"])
    phi_at_one = (1 - np.sum(ar)) * (1 - np.sum(sar))  # phi(1) Phi(1)
    intercept = mu * phi_at_one
    scale = float(np.var(observed)) if observed.size > 1 else 1.0
    sigma2 = max(float(sigma2), 1e-10 * max(scale, np.finfo(float).tiny))
    # Measurement noise starts at a tenth of the innovation variance: the one-step variation of
    # the differenced series, of which white noise on y_t is usually the smaller part.
    unit = 1 if spec.concentrate_scale else sigma2
    measurement = [0.1 * unit] * spec.measurement_error
    # Random-walk coefficients start slow: their steps a thousandth of the innovation variance
    # in units of each regressor's differenced scale.
    exog_variance = []
    if spec.time_varying_regression:
        spread = np.maximum(np.var(Xd, axis=0), 1e-12) if len(Xd) > 1 else np.ones(spec.k_exog)
        exog_variance = 1e-3 * unit / spread
    variance = [] if spec.concentrate_scale else [sigma2]
    if spec.state_regression:
        beta = []
    params = np.concatenate([intercept, beta, ar, ma, sar, sma, exog_variance, measurement, variance])
    return params
