r"""Residual diagnostics for state-space models, computed the way statsmodels computes them.

A well-specified model leaves one-step forecast errors :math:`v_t = y_t - E[y_t \mid y_{<t}]`
that are independent :math:`N(0, F_t)`. After standardisation they should look like white
Gaussian noise with constant variance, which three classical tests check:

* :func:`ljung_box` -- no serial correlation (portmanteau test);
* :func:`jarque_bera` -- normality (skewness and kurtosis);
* :func:`heteroskedasticity` -- no change of variance between the start and the end of the sample.

:func:`standardized_residuals` turns the one-step predictive moments of a filter
(``observation_mean``, ``observation_cov`` of :class:`probssm.kalman.FilterResult`, or
statsmodels' ``forecasts`` / ``forecasts_error_cov``) into standardised residuals;
:func:`diagnostics_table` collects the tests in one DataFrame and :func:`plot_diagnostics` draws
the four panels of statsmodels' ``plot_diagnostics``.

Every number reproduces statsmodels' ``MLEResults.test_serial_correlation(method="ljungbox")``,
``test_normality("jarquebera")`` and ``test_heteroskedasticity("breakvar")`` on the same
residuals (same default lags, degrees of freedom, subset length and treatment of missing
values), provided the first ``d = max(loglikelihood_burn, nobs_diffuse)`` residuals are
dropped as statsmodels does -- pass ``skip=d`` to :func:`standardized_residuals`; for probssm's
own filter :math:`d = \max(\text{burn}, \text{nobs\_diffuse}(\text{result}))`, see
:func:`nobs_diffuse`.

Conventions: residual arrays are ``(T, m)`` (time first; a 1-D array is one variable) and may be
NumPy arrays, JAX arrays or pandas objects; NaN marks a missing residual. Inputs are never
modified. Bad input is checked by :mod:`probssm._data`, as everywhere: ``TypeError`` for
non-numeric data or non-integer counts, ``ValueError`` for shapes and values.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from scipy import stats

from ._data import as_float_array, check_finite, check_int

__all__ = [
    "HeteroskedasticityResult",
    "JarqueBeraResult",
    "LjungBoxResult",
    "diagnostics_table",
    "heteroskedasticity",
    "jarque_bera",
    "ljung_box",
    "nobs_diffuse",
    "plot_diagnostics",
    "standardized_residuals",
]

_ALTERNATIVES = ("two-sided", "increasing", "decreasing")
_DIFFUSE_TOLERANCE = 1e-10  # statsmodels' ``tolerance_diffuse`` on the squared Frobenius norm


class LjungBoxResult(NamedTuple):
    """Output of :func:`ljung_box` for ``m`` variables and ``L`` reported lags.

    Attributes
    ----------
    statistic : ndarray, shape ``(m, L)``
        Ljung-Box :math:`Q(k)` for each variable (row) and each reported lag ``k`` (column).
    pvalue : ndarray, shape ``(m, L)``
        Upper-tail :math:`\\chi^2_{k - \\text{model\\_df}}` probabilities of ``statistic``; NaN
        where ``k <= model_df``.
    lags : ndarray of int, shape ``(L,)``
        The reported lags ``k``.

    ``np.stack([statistic, pvalue], axis=1)`` is statsmodels' ``(m, 2, L)`` array of
    ``test_serial_correlation``.
    """

    statistic: np.ndarray
    pvalue: np.ndarray
    lags: np.ndarray


class JarqueBeraResult(NamedTuple):
    """Output of :func:`jarque_bera` for ``m`` variables; every field has shape ``(m,)``.

    Attributes
    ----------
    statistic : ndarray, shape ``(m,)``
        :math:`JB = \\tfrac{n}{6}\\left(S^2 + \\tfrac14 (K - 3)^2\\right)`.
    pvalue : ndarray, shape ``(m,)``
        Upper-tail :math:`\\chi^2_2` probability of ``statistic``.
    skew : ndarray, shape ``(m,)``
        Sample skewness :math:`S = \\hat\\mu_3 / \\hat\\mu_2^{3/2}`.
    kurtosis : ndarray, shape ``(m,)``
        Sample kurtosis :math:`K = \\hat\\mu_4 / \\hat\\mu_2^2` (3 for a Gaussian, not the excess).

    ``np.column_stack(result)`` is statsmodels' ``(m, 4)`` array of ``test_normality``.
    """

    statistic: np.ndarray
    pvalue: np.ndarray
    skew: np.ndarray
    kurtosis: np.ndarray


class HeteroskedasticityResult(NamedTuple):
    """Output of :func:`heteroskedasticity` for ``m`` variables.

    Attributes
    ----------
    statistic : ndarray, shape ``(m,)``
        :math:`H(h)`, the sum of squares of the last ``h`` residuals over that of the first ``h``
        (its inverse for ``alternative="decreasing"``).
    pvalue : ndarray, shape ``(m,)``
        p-value under the chosen alternative and reference distribution.
    subset_length : int
        :math:`h = \\mathrm{round}(T / 3)`, the number of rows in each of the two subsets.

    ``np.column_stack([statistic, pvalue])`` is statsmodels' ``(m, 2)`` array of
    ``test_heteroskedasticity``.
    """

    statistic: np.ndarray
    pvalue: np.ndarray
    subset_length: int


# --------------------------------------------------------------------------- #
# Input handling
# --------------------------------------------------------------------------- #
def _residual_matrix(resid: Any) -> tuple[np.ndarray, list]:
    """``resid`` as a ``(T, m)`` float array and the variables' names."""
    if isinstance(resid, pd.DataFrame):
        names = list(resid.columns)
    elif isinstance(resid, pd.Series):
        names = [resid.name if resid.name is not None else 0]
    else:
        names = None
    arr = as_float_array(resid, "resid")
    check_finite(arr, "resid", allow_nan=True)  # positions in the caller's shape
    if arr.ndim == 1:
        arr = arr[:, None]
    elif arr.ndim != 2:
        raise ValueError(
            f"resid must have shape (T,) or (T, m) (time first), got an array of shape {arr.shape}"
        )
    if arr.shape[1] == 0:
        raise ValueError(f"resid has no variables (shape {arr.shape})")
    if names is None:
        names = list(range(arr.shape[1]))
    return arr, names


def _demeaned_nonconstant(x: np.ndarray, j: int) -> np.ndarray:
    centred = x - x.mean()
    if not np.any(centred):
        raise ValueError(f"resid[:, {j}] is constant; the test statistic is undefined")
    return centred


# --------------------------------------------------------------------------- #
# Standardised residuals
# --------------------------------------------------------------------------- #
def standardized_residuals(y, observation_mean, observation_cov, skip: int = 0, *,
                           missing: str = "nan") -> np.ndarray:
    r"""Standardised one-step forecast errors, as statsmodels' ``standardized_forecasts_error``.

    With the forecast error :math:`v_t = y_t - \hat y_t` and its covariance :math:`F_t`, the
    standardised error is

    .. math::

        e_t = L_t^{-1} v_t, \qquad F_t = L_t L_t^\top,

    :math:`L_t` the lower Cholesky factor, so that :math:`e_t \sim N(0, I)` under the model. For
    :math:`m = 1` this is :math:`e_t = v_t / \sqrt{F_t}`. Where a row is partly missing, only the
    observed entries :math:`o` are standardised, with the Cholesky factor of the sub-matrix
    :math:`F_{t,oo}`; missing entries are NaN. The ordering of the variables matters for
    :math:`m > 1` (the first variable is standardised by its own variance only, the second after
    removing its regression on the first, and so on), exactly as in statsmodels.

    Parameters
    ----------
    y : array_like, shape ``(T, m)`` or ``(T,)``
        Observations; NaN marks a missing entry. A 1-D array is one variable, and then
        ``observation_mean`` may be ``(T,)`` and ``observation_cov`` ``(T,)`` (variances).
    observation_mean : array_like, shape ``(T, m)``
        One-step predictions :math:`\hat y_t = E[y_t \mid y_{<t}]` (``FilterResult.observation_mean``;
        statsmodels: ``filter_results.forecasts.T``).
    observation_cov : array_like, shape ``(T, m, m)``
        Their covariances :math:`F_t` (``FilterResult.observation_cov``; statsmodels:
        ``filter_results.forecasts_error_cov.transpose(2, 0, 1)``).
    skip : int, default 0
        Number of leading time steps to drop, the steps whose forecast errors do not come from a
        proper prior. To reproduce statsmodels' tests pass
        ``d = max(loglikelihood_burn, nobs_diffuse)``: for a statsmodels results object
        ``max(res.loglikelihood_burn, res.nobs_diffuse)``; for :func:`probssm.kalman.filter`
        ``max(burn, nobs_diffuse(result))`` (``burn`` the log-likelihood burn used with an
        approximate diffuse prior, :func:`nobs_diffuse` the length of an exact diffuse period).
    missing : {"nan", "zero"}, default "nan"
        What to put where ``y`` is missing. ``"nan"`` is the definition statsmodels documents
        (and computes in its Python code path, and stores for ``VARMAX``): the tests then leave
        missing residuals out. ``"zero"`` reproduces what statsmodels' compiled filters store in
        ``standardized_forecasts_error`` for ``UnobservedComponents``, ``SARIMAX`` and
        ``DynamicFactor`` (0 at every missing entry), which its ``test_normality`` and
        ``test_heteroskedasticity`` then count as residuals; use it only to reproduce those
        numbers.

    Returns
    -------
    ndarray, shape ``(T - skip, m)``
        The standardised residuals of steps ``skip, ..., T - 1``; NaN (or 0, see ``missing``)
        where ``y`` is missing, and NaN for a whole row whose :math:`F_{t,oo}` is not positive
        definite (with a warning).

    Raises
    ------
    ValueError
        On shapes that do not agree, ``skip`` outside ``[0, T)``, an unknown ``missing``,
        infinite observations, or non-finite predictions where ``y`` is observed.
    """
    if missing not in ("nan", "zero"):
        raise ValueError(f'missing must be "nan" or "zero", got {missing!r}')
    y_arr = as_float_array(y, "y")
    check_finite(y_arr, "y", allow_nan=True)  # positions in the caller's shape
    mean = as_float_array(observation_mean, "observation_mean")
    cov = as_float_array(observation_cov, "observation_cov")
    if y_arr.ndim == 1:
        y_arr = y_arr[:, None]
        if mean.ndim == 1:
            mean = mean[:, None]
        if cov.ndim == 1:
            cov = cov[:, None, None]
    elif y_arr.ndim != 2:
        raise ValueError(f"y must have shape (T, m) or (T,), got an array of shape {y_arr.shape}")
    T, m = y_arr.shape
    if mean.shape != (T, m):
        raise ValueError(f"observation_mean must have shape (T, m) = {(T, m)}, got {mean.shape}")
    if cov.shape != (T, m, m):
        raise ValueError(
            f"observation_cov must have shape (T, m, m) = {(T, m, m)}, got {cov.shape}"
        )
    skip = check_int(skip, "skip", 0)
    if skip >= T:
        raise ValueError(f"skip must be in [0, T) = [0, {T}), got {skip}")

    y_arr, mean, cov = y_arr[skip:], mean[skip:], cov[skip:]
    observed = ~np.isnan(y_arr)
    bad_mean = observed & ~np.isfinite(mean)
    if bad_mean.any():
        flat = int(np.flatnonzero(bad_mean.ravel())[0])
        t, i = np.unravel_index(flat, bad_mean.shape)
        raise ValueError(
            f"observation_mean is not finite at position {(int(t) + skip, int(i))} where y is observed"
        )
    pair = observed[:, :, None] & observed[:, None, :]
    bad_cov = pair & ~np.isfinite(cov)
    if bad_cov.any():
        flat = int(np.flatnonzero(bad_cov.ravel())[0])
        t, i, j = np.unravel_index(flat, bad_cov.shape)
        raise ValueError(
            f"observation_cov is not finite at position {(int(t) + skip, int(i), int(j))} "
            "where y is observed"
        )

    errors = y_arr - mean
    out = np.full((T - skip, m), np.nan)
    if missing == "zero":
        out[~observed] = 0.0
    failed: list[int] = []
    patterns, inverse = np.unique(observed, axis=0, return_inverse=True)
    inverse = np.asarray(inverse).reshape(-1)
    for k, pattern in enumerate(patterns):
        if not pattern.any():
            continue
        rows = np.flatnonzero(inverse == k)
        cols = np.flatnonzero(pattern)
        # The Cholesky factor of the upper triangle (as LAPACK's ``potrf`` with ``uplo="U"``,
        # which statsmodels calls): lower factor of the transposed block.
        block = cov[np.ix_(rows, cols, cols)].transpose(0, 2, 1)
        lower, ok = _cholesky_rows(block)
        solved = _forward_substitution(lower[ok], errors[np.ix_(rows[ok], cols)])
        out[np.ix_(rows[ok], cols)] = solved
        failed.extend(int(r) + skip for r in rows[~ok])
    if failed:
        failed.sort()
        warnings.warn(
            f"observation_cov is not positive definite over the observed entries at time steps "
            f"{failed[:10]}{' ...' if len(failed) > 10 else ''}; their standardized residuals are NaN",
            RuntimeWarning,
            stacklevel=2,
        )
    return out


def _cholesky_rows(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower Cholesky factors of a stack ``(k, p, p)``; ``ok[i]`` False where one fails."""
    ok = np.ones(block.shape[0], dtype=bool)
    try:
        return np.linalg.cholesky(block), ok
    except np.linalg.LinAlgError:
        pass
    lower = np.zeros_like(block)
    for i in range(block.shape[0]):
        try:
            lower[i] = np.linalg.cholesky(block[i])
        except np.linalg.LinAlgError:
            ok[i] = False
    return lower, ok


def _forward_substitution(lower: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Solve ``lower[i] @ x[i] = rhs[i]`` for a stack of lower-triangular ``(k, p, p)``."""
    x = np.empty_like(rhs)
    for i in range(rhs.shape[1]):
        partial = np.einsum("kj,kj->k", lower[:, i, :i], x[:, :i])
        x[:, i] = (rhs[:, i] - partial) / lower[:, i, i]
    return x


def nobs_diffuse(predicted_diffuse_cov, tol: float = _DIFFUSE_TOLERANCE) -> int:
    r"""Length of the exact diffuse period, as statsmodels' ``nobs_diffuse``.

    The filter is in its diffuse phase at step :math:`t` while the diffuse part of the predicted
    state covariance is non-zero; the period is the leading run of steps with

    .. math::

        \lVert P_{\infty,t} \rVert_F^2 = \sum_{ij} (P_{\infty,t})_{ij}^2 > \text{tol}.

    Parameters
    ----------
    predicted_diffuse_cov : array_like, shape ``(T, n, n)``, or a :class:`probssm.kalman.FilterResult`
        :math:`P_{\infty,t}` for each step (``FilterResult.predicted_diffuse_cov``); a result
        object is read through its ``predicted_diffuse_cov`` attribute.
    tol : float, default 1e-10
        statsmodels' ``tolerance_diffuse``.

    Returns
    -------
    int
        The number of leading diffuse steps (0 for a proper prior). Pass
        ``skip=max(burn, nobs_diffuse(result))`` to :func:`standardized_residuals`.
    """
    if hasattr(predicted_diffuse_cov, "predicted_diffuse_cov"):
        predicted_diffuse_cov = predicted_diffuse_cov.predicted_diffuse_cov
    arr = as_float_array(predicted_diffuse_cov, "predicted_diffuse_cov")
    if arr.ndim != 3 or arr.shape[1] != arr.shape[2]:
        raise ValueError(
            f"predicted_diffuse_cov must have shape (T, n, n), got an array of shape {arr.shape}"
        )
    if not np.isfinite(arr).all():
        raise ValueError("predicted_diffuse_cov contains NaN or infinite values")
    diffuse = np.sum(arr * arr, axis=(1, 2)) > tol
    proper = np.flatnonzero(~diffuse)
    return int(proper[0]) if proper.size else int(arr.shape[0])


# --------------------------------------------------------------------------- #
# Tests
# --------------------------------------------------------------------------- #
def _resolve_lags(lags, nobs: int, period: int | None) -> tuple[np.ndarray, int]:
    if lags is None:
        period = 0 if period is None else check_int(period, "period", 0)
        maxlag = min(2 * period, nobs // 5) if period else min(10, nobs // 5)
        if maxlag < 1:
            raise ValueError(
                f"too few residuals (T = {nobs}) for the default number of lags "
                "(min(10, T // 5), needs T >= 5); pass lags explicitly"
            )
        reported = np.arange(1, maxlag + 1)
    elif isinstance(lags, (Sequence, np.ndarray)) and not isinstance(lags, str):
        reported = np.array([check_int(k, "lags", 1) for k in np.asarray(lags).ravel()], dtype=int)
        if reported.size == 0:
            raise ValueError("lags must not be empty")
    else:
        reported = np.arange(1, check_int(lags, "lags", 1) + 1)
    maxlag = int(reported.max())
    if maxlag > nobs - 1:
        raise ValueError(f"the largest lag ({maxlag}) must be at most T - 1 = {nobs - 1}")
    return reported, maxlag


def ljung_box(resid, lags=None, *, period: int | None = None, model_df: int = 0) -> LjungBoxResult:
    r"""Ljung-Box test of no serial correlation, per variable.

    For one variable with :math:`T` residuals :math:`e_t`, mean :math:`\bar e` and sample
    autocorrelations

    .. math::

        r_k = \frac{\sum_{t=k}^{T-1} (e_t - \bar e)(e_{t-k} - \bar e)}
                   {\sum_{t=0}^{T-1} (e_t - \bar e)^2},

    the statistic at lag :math:`K` is

    .. math::

        Q(K) = T (T + 2) \sum_{k=1}^{K} \frac{r_k^2}{T - k}
        \;\sim\; \chi^2_{K - \text{model\_df}} \text{ under the null.}

    This is statsmodels' ``test_serial_correlation(method="ljungbox")`` (``acorr_ljungbox``).

    Parameters
    ----------
    resid : array_like, shape ``(T, m)`` or ``(T,)``
        Standardised residuals after the skip (see :func:`standardized_residuals`).
    lags : int, sequence of int, or None
        An int ``K`` reports lags ``1..K``; a sequence reports just those lags. ``None`` uses
        statsmodels' rule ``min(10, T // 5)``, or ``min(2 * period, T // 5)`` when ``period`` is
        given, where ``T`` counts all rows (missing ones included).
    period : int, optional
        Seasonal period for the default lags (statsmodels reads the model's
        ``seasonal_periods``); ``None`` or 0 means non-seasonal.
    model_df : int, default 0
        Degrees of freedom used by the model (statsmodels' ``df_adjust``), subtracted from each
        lag's degrees of freedom.

    Returns
    -------
    LjungBoxResult
        ``statistic`` and ``pvalue`` of shape ``(m, L)``, ``lags`` of shape ``(L,)``. A variable
        with any missing residual gets NaN, as in statsmodels (a warning says so).

    Raises
    ------
    ValueError
        On a wrong ``ndim``, ``lags < 1``, a lag above ``T - 1``, too few rows for the default
        lags, or a constant variable.
    """
    arr, _ = _residual_matrix(resid)
    nobs, m = arr.shape
    model_df = check_int(model_df, "model_df", 0)
    reported, maxlag = _resolve_lags(lags, nobs, period)
    statistic = np.full((m, reported.size), np.nan)
    pvalue = np.full((m, reported.size), np.nan)
    dof = reported - model_df
    with_dof = dof > 0
    missing = []
    for j in range(m):
        x = arr[:, j]
        if np.isnan(x).any():
            missing.append(j)
            continue
        centred = _demeaned_nonconstant(x, j)
        acov = np.array([centred[k:] @ centred[: nobs - k] for k in range(maxlag + 1)])
        acf = acov[1:] / acov[0]
        q = nobs * (nobs + 2) * np.cumsum(acf**2 / (nobs - np.arange(1, maxlag + 1)))
        statistic[j] = q[reported - 1]
        pvalue[j, with_dof] = stats.chi2.sf(statistic[j, with_dof], dof[with_dof])
    if missing:
        warnings.warn(
            f"resid has missing values in variable(s) {missing}; their Ljung-Box statistics are NaN "
            "(as in statsmodels)",
            RuntimeWarning,
            stacklevel=2,
        )
    return LjungBoxResult(statistic, pvalue, reported)


def jarque_bera(resid) -> JarqueBeraResult:
    r"""Jarque-Bera test of normality, per variable, over the non-missing residuals.

    With the :math:`n` non-missing residuals of a variable and their central sample moments
    :math:`\hat\mu_k = \tfrac1n \sum_t (e_t - \bar e)^k`,

    .. math::

        S = \frac{\hat\mu_3}{\hat\mu_2^{3/2}}, \qquad K = \frac{\hat\mu_4}{\hat\mu_2^{2}}, \qquad
        JB = \frac{n}{6}\Big(S^2 + \frac{(K - 3)^2}{4}\Big) \;\sim\; \chi^2_2
        \text{ under the null.}

    This is statsmodels' ``test_normality("jarquebera")``; missing residuals are dropped (the
    data are assumed missing completely at random).

    Parameters
    ----------
    resid : array_like, shape ``(T, m)`` or ``(T,)``
        Standardised residuals after the skip.

    Returns
    -------
    JarqueBeraResult
        ``statistic``, ``pvalue``, ``skew``, ``kurtosis``, each of shape ``(m,)``.

    Raises
    ------
    ValueError
        On a wrong ``ndim``, a variable with fewer than 2 non-missing residuals, or a constant
        variable.
    """
    arr, _ = _residual_matrix(resid)
    m = arr.shape[1]
    out = np.empty((4, m))
    for j in range(m):
        x = arr[:, j][~np.isnan(arr[:, j])]
        n = x.size
        if n < 2:
            raise ValueError(
                f"resid[:, {j}] has {n} non-missing value(s); the Jarque-Bera test needs at least 2"
            )
        centred = _demeaned_nonconstant(x, j)
        m2 = np.mean(centred**2)
        skew = np.mean(centred**3) / m2**1.5
        kurtosis = np.mean(centred**4) / m2**2
        jb = n / 6.0 * (skew**2 + 0.25 * (kurtosis - 3.0) ** 2)
        out[:, j] = jb, stats.chi2.sf(jb, 2), skew, kurtosis
    return JarqueBeraResult(*out)


def heteroskedasticity(resid, alternative: str = "two-sided", use_f: bool = True) -> HeteroskedasticityResult:
    r"""Test of a change in variance between the first and the last third of the sample.

    With :math:`h = \mathrm{round}(T / 3)` (``T`` counts all rows, missing ones included),

    .. math::

        H(h) = \frac{\sum_{t=T-h}^{T-1} e_t^2}{\sum_{t=0}^{h-1} e_t^2},

    sums over the non-missing residuals, :math:`n_1` of them in the last subset and :math:`n_0`
    in the first. Under the null :math:`H \, n_0 / n_1 \sim F(n_1, n_0)` (``use_f=True``), or
    asymptotically :math:`n_0 H \sim \chi^2_{n_1}` (``use_f=False``). ``"increasing"`` uses the
    upper tail, ``"two-sided"`` twice the smaller tail, ``"decreasing"`` reports :math:`1/H` and
    its upper tail with the subsets swapped. Harvey (1990, section 5.4); statsmodels'
    ``test_heteroskedasticity("breakvar")`` as of statsmodels 0.15 (0.14 referred the unscaled
    :math:`H` to :math:`F(n_1, n_0)`, which differs only when missing values make
    :math:`n_0 \ne n_1`).

    Parameters
    ----------
    resid : array_like, shape ``(T, m)`` or ``(T,)``
        Standardised residuals after the skip.
    alternative : {"two-sided", "increasing", "decreasing"}
        The alternative hypothesis.
    use_f : bool, default True
        F reference distribution (True) or the chi-squared limit (False).

    Returns
    -------
    HeteroskedasticityResult
        ``statistic`` and ``pvalue`` of shape ``(m,)`` and ``subset_length`` ``h``. A variable with
        fewer than 2 non-missing residuals in either subset gets NaN (with a warning), as in
        statsmodels.

    Raises
    ------
    ValueError
        On a wrong ``ndim``, an unknown ``alternative``, or fewer than 5 rows (``h < 2``).
    """
    arr, _ = _residual_matrix(resid)
    if not isinstance(alternative, str) or alternative.lower() not in _ALTERNATIVES:
        raise ValueError(f"alternative must be one of {_ALTERNATIVES}, got {alternative!r}")
    alternative = alternative.lower()
    nobs = arr.shape[0]
    h = int(np.round(nobs / 3))
    if h < 2:
        raise ValueError(
            f"too few residuals (T = {nobs}): the test compares the first and last round(T / 3) "
            "rows and needs at least 2 in each, i.e. T >= 5"
        )
    squared = arr**2
    late, early = squared[-h:], squared[:h]
    late_dof = np.sum(~np.isnan(late), axis=0)
    early_dof = np.sum(~np.isnan(early), axis=0)
    late_sum, early_sum = np.nansum(late, axis=0), np.nansum(early, axis=0)
    short = np.flatnonzero((late_dof < 2) | (early_dof < 2))
    if short.size:
        warnings.warn(
            f"variable(s) {short.tolist()} have fewer than 2 non-missing residuals in the first or "
            "last third of the sample; their heteroskedasticity statistics are NaN",
            RuntimeWarning,
            stacklevel=2,
        )
        late_sum[late_dof < 2] = np.nan
        early_sum[early_dof < 2] = np.nan
    dfn, dfd = late_dof, early_dof
    with np.errstate(divide="ignore", invalid="ignore"):
        statistic = late_sum / early_sum
        if alternative == "decreasing":
            statistic = 1.0 / statistic
            dfn, dfd = dfd, dfn
        if use_f:
            scaled = statistic * dfd / dfn
            lower, upper = stats.f.cdf(scaled, dfn, dfd), stats.f.sf(scaled, dfn, dfd)
        else:
            scaled = statistic * dfd
            lower, upper = stats.chi2.cdf(scaled, dfn), stats.chi2.sf(scaled, dfn)
    pvalue = 2.0 * np.minimum(lower, upper) if alternative == "two-sided" else upper
    return HeteroskedasticityResult(np.asarray(statistic, float), np.asarray(pvalue, float), h)


def diagnostics_table(resid, lags: int = 1, *, alternative: str = "two-sided",
                      use_f: bool = True, names: Sequence | None = None) -> pd.DataFrame:
    r"""The three residual tests in one tidy DataFrame, one row per variable.

    The numbers of statsmodels' results summary (``Ljung-Box (L1) (Q)``, ``Prob(Q)``,
    ``Heteroskedasticity (H)``, ``Prob(H)``, ``Jarque-Bera (JB)``, ``Prob(JB)``, ``Skew``,
    ``Kurtosis``), from :func:`ljung_box` at the single lag ``lags``, :func:`jarque_bera` and
    :func:`heteroskedasticity`.

    Parameters
    ----------
    resid : array_like, shape ``(T, m)`` or ``(T,)``
        Standardised residuals after the skip; a DataFrame's columns (a Series' name) name the rows.
    lags : int, default 1
        The lag :math:`K` of the reported Ljung-Box :math:`Q(K)` (statsmodels' summary uses 1).
    alternative, use_f
        Passed to :func:`heteroskedasticity`.
    names : sequence of length ``m``, optional
        Row labels; default the DataFrame columns, else ``0..m-1``.

    Returns
    -------
    DataFrame, shape ``(m, 8)``
        Index ``variable``; columns ``ljung_box``, ``ljung_box_pvalue``, ``jarque_bera``,
        ``jarque_bera_pvalue``, ``skew``, ``kurtosis`` (not excess), ``heteroskedasticity``,
        ``heteroskedasticity_pvalue``.
    """
    arr, default_names = _residual_matrix(resid)
    lags = check_int(lags, "lags", 1)
    if names is None:
        names = default_names
    elif len(names) != arr.shape[1]:
        raise ValueError(f"names must have length m = {arr.shape[1]}, got {len(names)}")
    lb = ljung_box(arr, lags=[lags])
    jb = jarque_bera(arr)
    het = heteroskedasticity(arr, alternative=alternative, use_f=use_f)
    return pd.DataFrame(
        {
            "ljung_box": lb.statistic[:, -1],
            "ljung_box_pvalue": lb.pvalue[:, -1],
            "jarque_bera": jb.statistic,
            "jarque_bera_pvalue": jb.pvalue,
            "skew": jb.skew,
            "kurtosis": jb.kurtosis,
            "heteroskedasticity": het.statistic,
            "heteroskedasticity_pvalue": het.pvalue,
        },
        index=pd.Index(list(names), name="variable"),
    )


# --------------------------------------------------------------------------- #
# Plot
# --------------------------------------------------------------------------- #
def plot_diagnostics(resid, index=None, variable=0, lags: int = 10, fig=None, figsize=None):
    r"""Four diagnostic panels for one variable's standardised residuals (as statsmodels draws them).

    Top left: the residuals over time. Top right: their histogram with a Gaussian kernel density
    estimate and the :math:`N(0, 1)` density. Bottom left: normal Q-Q plot, sample quantiles
    against :math:`\Phi^{-1}(i / (n + 1))`, with the line :math:`\bar e + s\,x`. Bottom right:
    correlogram, the sample autocorrelations :math:`r_0, \dots, r_{\text{lags}}` with the band
    :math:`\pm 1.96 / \sqrt{n}`. Missing residuals are left out of every panel (statsmodels'
    correlogram turns blank instead).

    Parameters
    ----------
    resid : array_like, shape ``(T, m)`` or ``(T,)``
        Standardised residuals after the skip.
    index : sequence of length ``T``, optional
        Time labels for the first panel; default the index of a pandas ``resid``, else
        ``0..T-1``. A ``PeriodIndex`` is plotted as timestamps.
    variable : int or str, default 0
        Column position, or a column name of a DataFrame ``resid``.
    lags : int, default 10
        Number of lags in the correlogram; must be below the number of non-missing residuals.
    fig : matplotlib Figure, optional
        Figure to draw into (a 2 x 2 grid of new subplots); default a new one.
    figsize : tuple, optional
        Size of a new figure.

    Returns
    -------
    matplotlib.figure.Figure
        The figure, with its four Axes in ``fig.axes``.
    """
    import matplotlib.pyplot as plt

    arr, names = _residual_matrix(resid)
    T, m = arr.shape
    if isinstance(variable, str):
        if variable not in names:
            raise ValueError(f"variable {variable!r} not among {names}")
        j = names.index(variable)
    else:
        j = check_int(variable, "variable", 0)
        if j >= m:
            raise ValueError(f"variable must be in [0, m) = [0, {m}), got {j}")
    lags = check_int(lags, "lags", 1)
    if index is None:
        index = resid.index if isinstance(resid, (pd.Series, pd.DataFrame)) else np.arange(T)
    if len(index) != T:
        raise ValueError(f"index must have length T = {T}, got {len(index)}")
    x_all = pd.Index(index)
    if isinstance(x_all, pd.PeriodIndex):
        x_all = x_all.to_timestamp()
    x_all = x_all.to_numpy()
    e = arr[:, j]
    ok = ~np.isnan(e)
    values = e[ok]
    n = values.size
    if n <= lags or n < 3:
        raise ValueError(
            f"resid[:, {j}] has {n} non-missing values; plot_diagnostics needs more than "
            f"lags = {lags} (and at least 3)"
        )
    centred = _demeaned_nonconstant(values, j)
    if isinstance(resid, (pd.Series, pd.DataFrame)):
        name = str(names[j])
        title = f'Standardized residual for "{name[:21] + "..." if len(name) > 24 else name}"'
    else:
        title = f"Standardized residual, variable {j}"

    if fig is None:
        fig = plt.figure(figsize=figsize)

    ax = fig.add_subplot(221)
    ax.plot(x_all[ok], values, color="C0")
    ax.axhline(0.0, color="0.3", alpha=0.5)
    ax.set_xlim(x_all[0], x_all[-1])
    ax.set_title(title)

    ax = fig.add_subplot(222)
    ax.hist(values, density=True, label="Hist", edgecolor="#FFFFFF")
    grid = np.linspace(-1.96 * 2, 1.96 * 2)
    ax.plot(grid, stats.gaussian_kde(values)(grid), label="KDE")
    ax.plot(grid, stats.norm.pdf(grid), label="N(0,1)")
    ax.set_xlim(grid[0], grid[-1])
    ax.legend()
    ax.set_title("Histogram plus estimated density")

    ax = fig.add_subplot(223)
    theoretical = stats.norm.ppf(np.arange(1, n + 1) / (n + 1.0))
    ax.plot(theoretical, np.sort(values), marker="o", linestyle="none", markerfacecolor="C0",
            markeredgecolor="C0")
    ax.plot(theoretical, values.mean() + values.std() * theoretical, color="C3")
    ax.set_xlabel("Theoretical Quantiles")
    ax.set_ylabel("Sample Quantiles")
    ax.set_title("Normal Q-Q")

    ax = fig.add_subplot(224)
    acov = np.array([centred[k:] @ centred[: n - k] for k in range(lags + 1)])
    acf = acov / acov[0]
    steps = np.arange(lags + 1)
    band = stats.norm.ppf(0.975) / np.sqrt(n)
    ax.fill_between(steps[1:], -band, band, alpha=0.25, lw=0, color="C0")
    ax.vlines(steps, 0.0, acf, color="C0")
    ax.plot(steps, acf, marker="o", linestyle="none", color="C0")
    ax.axhline(0.0, color="0.3", lw=1)
    ax.set_xlim(-0.5, lags + 0.5)
    ax.set_title("Correlogram")
    return fig
