r"""Forecast-accuracy metrics (pure NumPy).

Point-forecast metrics
    :func:`mase`, :func:`smape`
Probabilistic-forecast metrics
    :func:`crps_gaussian`, :func:`crps_samples`, :func:`pinball_loss`,
    :func:`interval_coverage`

Conventions shared by every function
------------------------------------
* Inputs may be NumPy arrays, nested lists/tuples, scalars, or pandas
  ``Series``/``DataFrame`` objects. pandas objects are aligned **by position**
  (their index and column labels are ignored) and converted with
  ``to_numpy(dtype=float)``.
* Arrays that are compared element-wise must have exactly the same shape
  (a silent ``(n,)`` vs ``(n, 1)`` broadcast is a classic bug, so it is
  refused); a mismatch raises :class:`ValueError` whose message contains both
  the expected and the received shape. Where a docstring says so, a scalar is
  also accepted and broadcast.
* Any NaN or +/-inf raises :class:`ValueError` naming the argument and the
  position (C order, zero-based) of the first offending value; values that are
  not numbers (strings, objects) raise :class:`TypeError`, and so does a
  non-integer ``sp``. The checks are :mod:`probssm._data`'s, shared with
  :mod:`probssm.diagnostics` and the estimators.
* Inputs are never modified.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.special import ndtr

from ._data import as_float_array, check_finite, check_int, format_position

__all__ = [
    "mase",
    "smape",
    "crps_gaussian",
    "crps_samples",
    "pinball_loss",
    "interval_coverage",
]

_INV_SQRT_PI = 1.0 / math.sqrt(math.pi)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


# --------------------------------------------------------------------------- #
# Input handling helpers
# --------------------------------------------------------------------------- #
def _to_array(x: Any, name: str) -> np.ndarray:
    """A fresh float64 copy of ``x`` that is finite everywhere (``TypeError`` for non-numbers,
    ``ValueError`` naming the position of a NaN or inf)."""
    arr = as_float_array(x, name)
    check_finite(arr, name)
    return arr


def _check_same_shape(
    arr: np.ndarray,
    name: str,
    expected: tuple[int, ...],
    ref_name: str,
    allow_scalar: bool = False,
) -> np.ndarray:
    """Return ``arr`` (broadcast if a permitted scalar) or raise on mismatch."""
    if arr.shape == expected:
        return arr
    if allow_scalar and arr.ndim == 0:
        return np.broadcast_to(arr, expected)
    extra = " (or a scalar)" if allow_scalar else ""
    raise ValueError(
        f"shape mismatch: {name} must have shape {expected}{extra} "
        f"(the shape of {ref_name}), got {arr.shape}"
    )


def _check_nonempty(arr: np.ndarray, name: str) -> None:
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); need at least one value")


# --------------------------------------------------------------------------- #
# Point-forecast metrics
# --------------------------------------------------------------------------- #
def mase(y_true: Any, y_pred: Any, y_train: Any, sp: int = 1) -> float:
    r"""Mean absolute scaled error (Hyndman & Koehler, 2006).

    For a single series with forecast horizon :math:`h` and an in-sample
    training series :math:`x_1, \dots, x_n`,

    .. math::

        \mathrm{MASE} = \frac{\frac{1}{h}\sum_{t=1}^{h} |y_t - \hat y_t|}
                             {\frac{1}{n - s}\sum_{t=s+1}^{n} |x_t - x_{t-s}|},

    i.e. the forecast MAE divided by the in-sample MAE of the seasonal naive
    forecast :math:`\hat x_t = x_{t-s}` with season length :math:`s` = ``sp``.

    Parameters
    ----------
    y_true : array_like, shape (h,) or (h, k, ...)
        Observed values over the forecast horizon. Axis 0 is time; any
        trailing axes index separate series.
    y_pred : array_like, same shape as ``y_true``
        Point forecasts.
    y_train : array_like, shape (n,) or (n, k, ...)
        In-sample (training) observations, axis 0 is time. Trailing shape must
        equal ``y_true.shape[1:]``; ``n`` must exceed ``sp``.
    sp : int, default 1
        Seasonal period :math:`s \ge 1` of the naive benchmark.

    Returns
    -------
    float
        The MASE. With several series (trailing axes) the MASE is computed per
        series (each with its own scale) and the per-series values are averaged
        uniformly (as in the M4 competition). This equals the mean of sktime's
        ``multioutput="raw_values"`` output; note that sktime's default
        ``"uniform_average"`` instead divides the column-averaged MAE by the
        column-averaged scale, which differs for several series.

    Raises
    ------
    TypeError
        If ``sp`` is not an integer or an input does not hold numbers.
    ValueError
        If ``sp < 1``, ``y_train`` has ``<= sp`` time
        points, the naive-forecast scale of some series is zero (e.g. a
        constant or exactly ``sp``-periodic training series), shapes
        mismatch, or any input is non-finite.
    """
    sp = check_int(sp, "sp", 1)
    yt = _to_array(y_true, "y_true")
    yp = _to_array(y_pred, "y_pred")
    ytr = _to_array(y_train, "y_train")
    if yt.ndim == 0:
        raise ValueError("y_true must be at least 1-D (axis 0 is time), got a scalar")
    _check_nonempty(yt, "y_true")
    _check_same_shape(yp, "y_pred", yt.shape, "y_true")
    if ytr.ndim != yt.ndim or ytr.shape[1:] != yt.shape[1:]:
        raise ValueError(
            f"shape mismatch: y_train must have shape (n, *{yt.shape[1:]}) to match "
            f"y_true of shape {yt.shape}, got {ytr.shape}"
        )
    n = ytr.shape[0]
    if n <= sp:
        raise ValueError(
            f"y_train needs more than sp={sp} time points to compute the seasonal "
            f"naive scale, got {n}"
        )
    scale = np.mean(np.abs(ytr[sp:] - ytr[:-sp]), axis=0)
    if np.any(scale <= 0):
        if scale.ndim == 0:
            raise ValueError(
                f"MASE scale is zero: y_train is constant at lag sp={sp} "
                "(in-sample seasonal naive forecast is perfect), MASE is undefined"
            )
        bad = int(np.flatnonzero((scale <= 0).ravel())[0])
        raise ValueError(
            f"MASE scale is zero for series at position "
            f"{format_position(bad, scale.shape)}: y_train is constant at lag sp={sp}, "
            "MASE is undefined"
        )
    mae = np.mean(np.abs(yt - yp), axis=0)
    return float(np.mean(mae / scale))


def smape(y_true: Any, y_pred: Any) -> float:
    r"""Symmetric mean absolute percentage error, on the 0-200 percent scale.

    The M3/M4-competition definition:

    .. math::

        \mathrm{sMAPE} = \frac{200}{h} \sum_{t=1}^{h}
            \frac{|y_t - \hat y_t|}{|y_t| + |\hat y_t|},

    where a term with :math:`y_t = \hat y_t = 0` counts as 0. The result is a
    **percentage in [0, 200]** (not a fraction). It equals 100 times sktime's
    ``mean_absolute_percentage_error(..., symmetric=True)`` (a fraction in
    [0, 2]) and 200 times ``utilsforecast.losses.smape`` (a fraction in
    [0, 1]).

    Parameters
    ----------
    y_true : array_like, any shape
        Observed values.
    y_pred : array_like, same shape as ``y_true``
        Point forecasts.

    Returns
    -------
    float
        sMAPE averaged over all elements, in percent (0-200).
    """
    yt = _to_array(y_true, "y_true")
    yp = _to_array(y_pred, "y_pred")
    _check_nonempty(yt, "y_true")
    _check_same_shape(yp, "y_pred", yt.shape, "y_true")
    num = np.abs(yt - yp)
    den = np.abs(yt) + np.abs(yp)
    terms = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    return float(200.0 * np.mean(terms))


# --------------------------------------------------------------------------- #
# Probabilistic metrics
# --------------------------------------------------------------------------- #
def crps_gaussian(y: Any, mean: Any, std: Any, reduce: bool = True) -> float | np.ndarray:
    r"""Closed-form CRPS of a Gaussian predictive distribution.

    For :math:`F = \mathcal N(\mu, \sigma^2)` and observation :math:`y`
    (Gneiting & Raftery, 2007),

    .. math::

        \mathrm{CRPS}(F, y) = \int_{-\infty}^{\infty} (F(x) - 1\{x \ge y\})^2 dx
          = \sigma \Big[ z\,(2\Phi(z) - 1) + 2\varphi(z) - \tfrac{1}{\sqrt{\pi}} \Big],
        \qquad z = \frac{y - \mu}{\sigma},

    with :math:`\Phi`, :math:`\varphi` the standard normal CDF and density.

    Parameters
    ----------
    y : array_like, any shape
        Observations.
    mean : array_like, shape of ``y`` or scalar
        Predictive means :math:`\mu`.
    std : array_like, shape of ``y`` or scalar
        Predictive standard deviations :math:`\sigma`; must be strictly positive.
    reduce : bool, default True
        If True return the mean CRPS over all points (a float); otherwise the
        per-point CRPS as an array of shape ``y.shape``.

    Returns
    -------
    float or numpy.ndarray
        Mean CRPS, or per-point CRPS (same units as ``y``) if ``reduce=False``.

    Raises
    ------
    ValueError
        If any ``std <= 0``, shapes mismatch, or inputs are non-finite.
    """
    yy = _to_array(y, "y")
    mu = _to_array(mean, "mean")
    sd = _to_array(std, "std")
    _check_nonempty(yy, "y")
    mu = _check_same_shape(mu, "mean", yy.shape, "y", allow_scalar=True)
    sd = _check_same_shape(sd, "std", yy.shape, "y", allow_scalar=True)
    if np.any(sd <= 0):
        bad = int(np.flatnonzero((sd <= 0).ravel())[0])
        where = "" if sd.ndim == 0 else f" at position {format_position(bad, sd.shape)}"
        raise ValueError(
            f"std must be strictly positive, got {sd.ravel()[bad]!r}{where}"
        )
    z = (yy - mu) / sd
    pdf = _INV_SQRT_2PI * np.exp(-0.5 * z * z)
    cdf = ndtr(z)
    crps = sd * (z * (2.0 * cdf - 1.0) + 2.0 * pdf - _INV_SQRT_PI)
    if reduce:
        return float(np.mean(crps))
    return np.asarray(crps)


def crps_samples(y: Any, samples: Any, reduce: bool = True) -> float | np.ndarray:
    r"""CRPS of an ensemble / Monte-Carlo sample forecast (energy form).

    With samples :math:`x_1, \dots, x_m` of the predictive distribution, this
    is the CRPS of their empirical distribution :math:`\hat F_m`,

    .. math::

        \mathrm{CRPS}(\hat F_m, y)
          = \frac{1}{m}\sum_{i=1}^{m} |x_i - y|
            - \frac{1}{2m^2}\sum_{i=1}^{m}\sum_{j=1}^{m} |x_i - x_j| ,

    i.e. :math:`E|X - y| - \tfrac12 E|X - X'|` with :math:`X, X'` drawn
    independently from :math:`\hat F_m` (the "NRG"/ECDF estimator, not the
    :math:`1/(m(m-1))` "fair" variant). The double sum is computed in
    :math:`O(m \log m)` per point by sorting: with order statistics
    :math:`x_{(1)} \le \dots \le x_{(m)}`,

    .. math::

        \sum_{i,j} |x_i - x_j| = 2 \sum_{i=1}^{m} (2i - m - 1)\, x_{(i)} .

    Parameters
    ----------
    y : array_like, any shape
        Observations.
    samples : array_like, shape (n_samples, *y.shape)
        Predictive samples; axis 0 indexes the samples.
    reduce : bool, default True
        If True return the mean CRPS over all points (a float); otherwise the
        per-point CRPS as an array of shape ``y.shape``.

    Returns
    -------
    float or numpy.ndarray
        Mean CRPS, or per-point CRPS if ``reduce=False``.

    Raises
    ------
    ValueError
        If ``samples`` does not have shape ``(n_samples, *y.shape)`` with
        ``n_samples >= 1``, or inputs are non-finite.
    """
    yy = _to_array(y, "y")
    xs = _to_array(samples, "samples")
    _check_nonempty(yy, "y")
    if xs.ndim != yy.ndim + 1 or xs.shape[1:] != yy.shape or xs.shape[0] < 1:
        raise ValueError(
            f"shape mismatch: samples must have shape (n_samples, *{yy.shape}) with "
            f"n_samples >= 1 (y has shape {yy.shape}), got {xs.shape}"
        )
    m = xs.shape[0]
    abs_err = np.mean(np.abs(xs - yy), axis=0)
    xs.sort(axis=0)  # xs is our private copy; the caller's array is untouched
    weights = (2.0 * np.arange(1, m + 1) - m - 1.0).reshape((m,) + (1,) * yy.ndim)
    # (1/m^2) * sum_{i,j} |x_i - x_j| = (2/m^2) * sum_i (2i - m - 1) x_(i)
    spread = 2.0 * np.sum(weights * xs, axis=0) / (m * m)
    crps = abs_err - 0.5 * spread
    # guard tiny negative values from floating-point cancellation
    crps = np.maximum(crps, 0.0)
    if reduce:
        return float(np.mean(crps))
    return np.asarray(crps)


def _check_alpha_value(a: float, name: str) -> float:
    if not np.isfinite(a) or not (0.0 < a < 1.0):
        raise ValueError(f"{name} must lie in the open interval (0, 1), got {a!r}")
    return float(a)


def pinball_loss(
    y_true: Any, y_quantile: Any, alpha: float | Sequence[float]
) -> float | np.ndarray:
    r"""Quantile (pinball) loss.

    For quantile level :math:`\alpha \in (0, 1)` and quantile forecast
    :math:`q_t`,

    .. math::

        L_\alpha = \frac{1}{N}\sum_{t} \rho_\alpha(y_t - q_t), \qquad
        \rho_\alpha(u) = \max(\alpha u,\ (\alpha - 1) u)
                       = u\,(\alpha - 1\{u < 0\}).

    At :math:`\alpha = 0.5` this is half the mean absolute error.

    Parameters
    ----------
    y_true : array_like, any shape
        Observations.
    y_quantile : array_like
        Quantile forecasts. Shape ``y_true.shape`` for a scalar ``alpha``, or
        ``(*y_true.shape, K)`` for a sequence of ``K`` levels (the trailing axis
        follows the order of ``alpha``; e.g. a DataFrame with one column per
        level for a 1-D ``y_true``).
    alpha : float or sequence of float
        Quantile level(s), each strictly between 0 and 1.

    Returns
    -------
    float or numpy.ndarray
        Mean loss (a float) for a scalar ``alpha``; an array of shape ``(K,)``
        with the mean loss per level for a sequence.
    """
    yt = _to_array(y_true, "y_true")
    yq = _to_array(y_quantile, "y_quantile")
    _check_nonempty(yt, "y_true")
    alpha_arr = np.asarray(alpha, dtype=float)
    if alpha_arr.ndim == 0:
        a = _check_alpha_value(float(alpha_arr), "alpha")
        _check_same_shape(yq, "y_quantile", yt.shape, "y_true")
        u = yt - yq
        return float(np.mean(np.maximum(a * u, (a - 1.0) * u)))
    if alpha_arr.ndim != 1 or alpha_arr.size == 0:
        raise ValueError(
            f"alpha must be a float or a non-empty 1-D sequence, got shape {alpha_arr.shape}"
        )
    for i, a in enumerate(alpha_arr):
        _check_alpha_value(float(a), f"alpha[{i}]")
    k = alpha_arr.size
    expected = yt.shape + (k,)
    if yq.shape != expected:
        raise ValueError(
            f"shape mismatch: y_quantile must have shape {expected} (y_true shape "
            f"{yt.shape} plus a trailing axis of len(alpha)={k}), got {yq.shape}"
        )
    u = yt[..., None] - yq
    loss = np.maximum(alpha_arr * u, (alpha_arr - 1.0) * u)
    return loss.reshape(-1, k).mean(axis=0)


def interval_coverage(y_true: Any, lower: Any, upper: Any) -> float:
    r"""Empirical coverage of prediction intervals.

    .. math::

        \mathrm{coverage} = \frac{1}{N}\sum_{t} 1\{\ell_t \le y_t \le u_t\}

    (closed interval: points on a bound count as covered).

    Parameters
    ----------
    y_true : array_like, any shape
        Observations.
    lower, upper : array_like, shape of ``y_true`` or scalar
        Interval bounds; ``lower <= upper`` is required element-wise.

    Returns
    -------
    float
        Fraction of points inside their interval, in [0, 1].

    Raises
    ------
    ValueError
        If some ``lower > upper``, shapes mismatch, or inputs are non-finite.
    """
    yt = _to_array(y_true, "y_true")
    lo = _to_array(lower, "lower")
    hi = _to_array(upper, "upper")
    _check_nonempty(yt, "y_true")
    lo = _check_same_shape(lo, "lower", yt.shape, "y_true", allow_scalar=True)
    hi = _check_same_shape(hi, "upper", yt.shape, "y_true", allow_scalar=True)
    crossed = lo > hi
    if np.any(crossed):
        bad = int(np.flatnonzero(crossed.ravel())[0])
        where = "" if crossed.ndim == 0 else f" at position {format_position(bad, crossed.shape)}"
        raise ValueError(
            f"lower must not exceed upper, got lower={lo.ravel()[bad]!r} > "
            f"upper={hi.ravel()[bad]!r}{where}"
        )
    return float(np.mean((lo <= yt) & (yt <= hi)))
