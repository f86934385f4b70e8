"""SARIMAX models as linear-Gaussian state-space models: the functional core.

A SARIMAX(p, d, q) x (P, D, Q, s) model with deterministic trend :math:`A(t)` and regressors
:math:`z_t` (a row of ``exog``) is

.. math::

    y_t &= z_t^T \\beta + \\xi_t, \\\\
    \\phi(L)\\,\\Phi(L^s)\\,\\Delta^d \\Delta_s^D\\, \\xi_t &= A(t) + \\theta(L)\\,\\Theta(L^s)\\,
    \\varepsilon_t, \\qquad \\varepsilon_t \\sim N(0, \\sigma^2),

with :math:`\\Delta = 1 - L`, :math:`\\Delta_s = 1 - L^s`,
:math:`\\phi(L) = 1 - \\phi_1 L - \\dots - \\phi_p L^p`,
:math:`\\Phi(L^s) = 1 - \\Phi_1 L^s - \\dots - \\Phi_P L^{sP}`,
:math:`\\theta(L) = 1 + \\theta_1 L + \\dots + \\theta_q L^q` and
:math:`\\Theta(L^s) = 1 + \\Theta_1 L^s + \\dots + \\Theta_Q L^{sQ}`.

:func:`sarimax_model` writes it as an :class:`~probssm.kalman.LGSSM` exactly as statsmodels'
``SARIMAX`` does with its defaults (Harvey's representation, differencing inside the state
vector, regression coefficients in the observation offset, no measurement error unless
``measurement_error``), so
log-likelihoods, filtered states and their covariances agree with statsmodels at identical
parameters. The state vector (dimension ``n = d + sD + k``, ``k = max(p + sP, q + sQ + 1)``) is

* ``d + sD`` differencing states, which integrate the stationary part back to :math:`\\xi_t`;
  they start diffuse;
* ``k`` ARMA states :math:`u_t` in Harvey's form,
  :math:`u_{t+1} = T_c u_t + e_1 c_t + r\\,\\varepsilon_{t+1}`, where :math:`T_c` has the
  reduced AR coefficients (those of :math:`\\phi(L)\\Phi(L^s)`) in its first column and ones on
  its superdiagonal, and :math:`r = (1, \\theta^*_1, \\dots, \\theta^*_{k-1})` holds the reduced
  MA coefficients (those of :math:`\\theta(L)\\Theta(L^s)`). They start from their stationary
  distribution.

The parameter vector (natural space) is ordered as statsmodels orders it: trend coefficients,
regression coefficients, ``ar.L*``, ``ma.L*``, ``ar.S.L*``, ``ma.S.L*``,
``var.measurement_error`` (with measurement error), ``sigma2``
(:attr:`SarimaxSpec.param_names`). :func:`to_natural` / :func:`to_unconstrained` map it to and
from :math:`\\mathbb R^k` for optimisation; :func:`start_params` gives starting values
(:mod:`probssm.structural.arima_start`). Orders may list lags (:mod:`.arima_lags`), and
regression coefficients may be states (:mod:`.arima_regression`).
"""

from __future__ import annotations

import numbers
import operator
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ..fit.transforms import constrain_stationary, unconstrain_stationary
from ..kalman._linalg import solve_discrete_lyapunov
from ..kalman.model import (
    APPROXIMATE_DIFFUSE_VARIANCE, INITIALIZATIONS, LGSSM, approximate_diffuse, check_initialization,
)
from .arima_lags import dense_tail, lag_set, max_inverse_root
from .arima_regression import with_state_regression
from .arima_start import difference, start_params

__all__ = [
    "APPROXIMATE_DIFFUSE_VARIANCE",
    "difference",
    "INITIALIZATIONS",
    "SarimaxSpec",
    "lag_polynomials",
    "likelihood_burn",
    "sarimax_model",
    "sarimax_spec",
    "start_params",
    "to_natural",
    "to_unconstrained",
]

_TREND_STRINGS = {"n": (), "c": (0,), "t": (1,), "ct": (0, 1), "ctt": (0, 1, 2)}


# --------------------------------------------------------------------------------------------
# Specification
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SarimaxSpec:
    """The structure of a SARIMAX model (orders, trend, regressors); build it with :func:`sarimax_spec`.

    Hashable, so it can be a static argument of ``jax.jit``.

    Attributes
    ----------
    order : tuple ``(p, d, q)``
        AR order, differencing order, MA order (``p`` and ``q`` the largest lags).
    seasonal_order : tuple ``(P, D, Q, s)``
        Seasonal AR order, seasonal differencing order, seasonal MA order, period ``s``.
    trend_powers : tuple of int
        Powers of time in the trend polynomial :math:`A(t) = \\sum_j a_j t^{k_j}`, increasing:
        ``()`` no trend, ``(0,)`` a constant (``'c'``), ``(1,)`` a drift (``'t'``),
        ``(0, 1)`` both (``'ct'``).
    exog_names : tuple of str
        Names of the regression coefficients, one per column of ``exog``.
    enforce_stationarity, enforce_invertibility : bool
        Whether :func:`to_natural` constrains the AR (MA) polynomials to be stationary
        (invertible). ``enforce_stationarity`` also decides the prior: stationary ARMA states
        when ``True``, all states diffuse when ``False`` (as in statsmodels).
    lag_lists : tuple of 4 tuples of int, or None
        The lags that carry a coefficient in the AR, MA, seasonal AR and seasonal MA
        polynomials (seasonal ones in units of ``s``), where some lag below the largest is left
        out (:mod:`probssm.structural.arima_lags`); ``None`` when every polynomial has all its
        lags. Read them through :attr:`lags`.
    measurement_error : bool
        Add observation noise :math:`y_t = z_t^T\\beta + \\xi_t + \\nu_t`,
        :math:`\\nu_t \\sim N(0, \\sigma^2_\\nu)`, whose variance is the parameter
        ``var.measurement_error`` (statsmodels' name and place, just before ``sigma2``).
    concentrate_scale : bool
        Leave :math:`\\sigma^2` out of the parameters (it is concentrated out of the likelihood,
        :mod:`probssm.structural.concentrated`): :func:`sarimax_model` takes it as ``scale``, and
        the measurement variance becomes the ratio ``snr.measurement_error``
        :math:`= \\sigma^2_\\nu / \\sigma^2` (statsmodels' names).
    state_regression, time_varying_regression : bool
        Regression coefficients as diffuse states after the ARIMA states instead of parameters
        (statsmodels' ``mle_regression=False``), constant or, with ``time_varying_regression``,
        random walks whose variances are the parameters ``var.{name}``
        (:mod:`probssm.structural.arima_regression`). Only with regressors.
    """

    order: tuple[int, int, int]
    seasonal_order: tuple[int, int, int, int]
    trend_powers: tuple[int, ...] = ()
    exog_names: tuple[str, ...] = ()
    enforce_stationarity: bool = True
    enforce_invertibility: bool = True
    lag_lists: tuple | None = None
    measurement_error: bool = False
    concentrate_scale: bool = False
    state_regression: bool = False
    time_varying_regression: bool = False

    @property
    def lags(self) -> dict[str, tuple[int, ...]]:
        """The lags with a coefficient, by polynomial: keys ``"ar"``, ``"ma"`` (lags of
        :math:`L`), ``"seasonal_ar"``, ``"seasonal_ma"`` (lags of :math:`L^s`)."""
        keys = ("ar", "ma", "seasonal_ar", "seasonal_ma")
        if self.lag_lists is not None:
            return dict(zip(keys, self.lag_lists))
        p, _, q = self.order
        P, _, Q, _ = self.seasonal_order
        return {k: tuple(range(1, n + 1)) for k, n in zip(keys, (p, q, P, Q))}

    # -- orders ------------------------------------------------------------------------------
    @property
    def k_trend(self) -> int:
        """Number of trend coefficients."""
        return len(self.trend_powers)

    @property
    def k_exog(self) -> int:
        """Number of regression coefficients."""
        return len(self.exog_names)

    @property
    def k_params(self) -> int:
        """Length of the parameter vector."""
        return sum(sl.stop - sl.start for sl in self.param_slices.values())

    @property
    def ar_order(self) -> int:
        """Degree :math:`p + sP` of the reduced AR polynomial :math:`\\phi(L)\\Phi(L^s)`."""
        return self.order[0] + self.seasonal_order[0] * self.seasonal_order[3]

    @property
    def ma_order(self) -> int:
        """Degree :math:`q + sQ` of the reduced MA polynomial :math:`\\theta(L)\\Theta(L^s)`."""
        return self.order[2] + self.seasonal_order[2] * self.seasonal_order[3]

    @property
    def arma_dim(self) -> int:
        """Number of ARMA states, :math:`\\max(p + sP, q + sQ + 1)`."""
        return max(self.ar_order, self.ma_order + 1)

    @property
    def num_diffuse_states(self) -> int:
        """Number of states with a diffuse prior: the ``d + sD`` differencing states, or all
        states when ``enforce_stationarity=False``."""
        if not self.enforce_stationarity:
            return self.state_dim
        return self._diff_dim + self._k_state_exog

    @property
    def state_dim(self) -> int:
        """State dimension ``n = d + sD + arma_dim`` (plus ``k_exog`` with ``state_regression``)."""
        return self._arima_dim + self._k_state_exog

    @property
    def _arima_dim(self) -> int:
        return self._diff_dim + self.arma_dim

    @property
    def _k_state_exog(self) -> int:
        return self.k_exog if self.state_regression else 0

    @property
    def _diff_dim(self) -> int:
        return self.order[1] + self.seasonal_order[1] * self.seasonal_order[3]

    # -- parameters --------------------------------------------------------------------------
    @property
    def param_slices(self) -> dict[str, slice]:
        """Where each block sits in the parameter vector: keys ``"trend"``, ``"exog"``, ``"ar"``,
        ``"ma"``, ``"seasonal_ar"``, ``"seasonal_ma"``, ``"exog_variance"``, ``"measurement"``,
        ``"sigma2"`` (empty slices included)."""
        lags = self.lags
        sizes = {
            "trend": self.k_trend, "exog": self.k_exog - self._k_state_exog,
            "ar": len(lags["ar"]), "ma": len(lags["ma"]),
            "seasonal_ar": len(lags["seasonal_ar"]), "seasonal_ma": len(lags["seasonal_ma"]),
            "exog_variance": self.k_exog if self.time_varying_regression else 0,
            "measurement": int(self.measurement_error), "sigma2": int(not self.concentrate_scale),
        }
        out, start = {}, 0
        for name, size in sizes.items():
            out[name] = slice(start, start + size)
            start += size
        return out

    @property
    def param_names(self) -> tuple[str, ...]:
        """statsmodels' parameter names in statsmodels' order, e.g. ``('intercept', 'x1',
        'ar.L1', 'ma.L1', 'ar.S.L12', 'ma.S.L12', 'sigma2')``; a lag list names its lags
        (``order=([1, 4], 0, 0)`` gives ``ar.L1``, ``ar.L4``)."""
        s = self.seasonal_order[3]
        lags = self.lags
        trend = [{0: "intercept", 1: "drift"}.get(k, f"trend.{k}") for k in self.trend_powers]
        ratio = "snr" if self.concentrate_scale else "var"
        return tuple(
            trend + list(self.exog_names) * (not self.state_regression)
            + [f"ar.L{i}" for i in lags["ar"]]
            + [f"ma.L{i}" for i in lags["ma"]]
            + [f"ar.S.L{s * i}" for i in lags["seasonal_ar"]]
            + [f"ma.S.L{s * i}" for i in lags["seasonal_ma"]]
            + [f"{ratio}.{name}" for name in self.exog_names] * self.time_varying_regression
            + [f"{ratio}.measurement_error"] * self.measurement_error
            + ["sigma2"] * (not self.concentrate_scale)
        )


def _order_entry(value, where: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{where}: expected a non-negative integer, got {value!r}")
    value = operator.index(value)
    if value < 0:
        raise ValueError(f"{where}: expected a non-negative integer, got {value}")
    return value


def _trend_powers(trend) -> tuple[int, ...]:
    if trend is None:
        return ()
    if isinstance(trend, str):
        if trend not in _TREND_STRINGS:
            raise ValueError(
                f"trend: expected one of {sorted(_TREND_STRINGS)}, None or a 0/1 sequence such as "
                f"[1, 1, 0, 1] (= a + b t + c t**3), got {trend!r}"
            )
        return _TREND_STRINGS[trend]
    try:
        entries = list(trend)
    except TypeError:
        raise TypeError(
            f"trend: expected a string ('n', 'c', 't', 'ct', 'ctt'), None or a 0/1 sequence, got "
            f"{trend!r}"
        ) from None
    powers = []
    for k, entry in enumerate(entries):
        if isinstance(entry, (str, bytes)) or not isinstance(entry, numbers.Real) or entry not in (0, 1):
            raise ValueError(
                f"trend[{k}]: a trend polynomial lists 0 (leave out t**{k}) or 1 (include it), "
                f"got {entry!r}"
            )
        if entry:
            powers.append(k)
    return tuple(powers)


def sarimax_spec(
    order=(1, 0, 0),
    seasonal_order=(0, 0, 0, 0),
    trend=None,
    exog_names=(),
    enforce_stationarity: bool = True,
    enforce_invertibility: bool = True,
    measurement_error: bool = False,
    concentrate_scale: bool = False,
    state_regression: bool = False,
    time_varying_regression: bool = False,
) -> SarimaxSpec:
    """Validate a SARIMAX specification (statsmodels' ``SARIMAX`` arguments).

    Parameters
    ----------
    order : ``(p, d, q)``
        Non-negative integers; ``p`` and ``q`` may instead list the lags that carry a
        coefficient, as statsmodels accepts them: ``[1, 4]`` or the 0/1 flags ``(1, 0, 0, 1)``
        (:func:`probssm.structural.arima_lags.lag_set`). The other coefficients are zero and
        are not parameters.
    seasonal_order : ``(P, D, Q, s)``
        Non-negative integers; ``s >= 2`` when any of ``P, D, Q`` is non-zero. ``P`` and ``Q``
        may list lags in units of ``s`` (``([1, 2], 0, 0, 12)``: lags 12 and 24).
    trend : None, ``'n'``, ``'c'``, ``'t'``, ``'ct'``, ``'ctt'`` or a sequence of 0/1
        The deterministic trend :math:`A(t)`: none, a constant, a linear trend (``drift``), both,
        both plus :math:`t^2`; a sequence ``[1, 0, 1]`` includes the powers of :math:`t` whose
        entry is 1 (here :math:`a_0 + a_2 t^2`). As in statsmodels' ``SARIMAX`` the trend is the
        intercept of the *differenced* ARMA process, so a constant with ``d = 1`` is a drift in
        :math:`y_t`; statsmodels' ``SARIMAX`` allows every trend with every differencing order,
        and so does this function (its ``ARIMA`` class, which puts trends into the regression,
        forbids powers below ``d + D``).
    exog_names : sequence of str
        One unique name per regressor (statsmodels names array columns ``x1, x2, ...``).
    enforce_stationarity, enforce_invertibility, measurement_error, concentrate_scale : bool
        See :class:`SarimaxSpec`.
    state_regression, time_varying_regression : bool
        See :class:`SarimaxSpec`; ignored without regressors (as in statsmodels).
        ``time_varying_regression`` needs ``state_regression``.

    Returns
    -------
    SarimaxSpec

    Raises
    ------
    TypeError
        An order that is not an integer (naming the entry and the value given), a trend of the
        wrong type, a non-string regressor name.
    ValueError
        A negative order, a missing or too small seasonal period, AR or MA lags that appear in
        both the seasonal and the non-seasonal polynomial (e.g. ``p = 12`` with ``P = 1, s = 12``),
        an unknown trend, duplicate names.
    """
    for name, value, form in (("order", order, "(p, d, q)"), ("seasonal_order", seasonal_order, "(P, D, Q, s)")):
        if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
            raise TypeError(f"{name}: expected a sequence {form} of integers, got {value!r}")
        if len(value) != len(form.split(",")):
            raise ValueError(f"{name}: expected {form}, got {value!r}")
    given = (order, seasonal_order)
    lag_lists = (
        lag_set(order[0], "order[0] (p)"), lag_set(order[2], "order[2] (q)"),
        lag_set(seasonal_order[0], "seasonal_order[0] (P)"), lag_set(seasonal_order[2], "seasonal_order[2] (Q)"),
    )
    d = _order_entry(order[1], "order[1] (d)")
    D = _order_entry(seasonal_order[1], "seasonal_order[1] (D)")
    s = _order_entry(seasonal_order[3], "seasonal_order[3] (s)")
    p, q, P, Q = (max(lags, default=0) for lags in lag_lists)
    order, seasonal_order = (p, d, q), (P, D, Q, s)
    if (P or D or Q) and s < 2:
        raise ValueError(
            f"seasonal_order: the seasonal period s must be at least 2 when P, D or Q is non-zero, "
            f"got {given[1]}"
        )
    if not (P or D or Q):
        seasonal_order = (0, 0, 0, 0) if s < 2 else seasonal_order
    for kind, small, big in (("autoregressive", 0, 2), ("moving average", 1, 3)):
        shared = sorted(set(lag_lists[small]) & {s * i for i in lag_lists[big]})
        if shared:
            raise ValueError(
                f"{kind} lag(s) {shared} are in both the non-seasonal and the seasonal polynomial "
                f"(order={given[0]}, seasonal_order={given[1]}); lower the non-seasonal order "
                "below the seasonal period"
            )
    if all(lags == tuple(range(1, len(lags) + 1)) for lags in lag_lists):
        lag_lists = None  # every polynomial has all its lags: the plain spec
    if time_varying_regression and not state_regression:
        raise ValueError(
            "time_varying_regression=True puts the coefficients in the state vector: it needs "
            "state_regression=True (statsmodels' mle_regression=False)"
        )
    powers = _trend_powers(trend)
    if isinstance(exog_names, str):
        exog_names = (exog_names,)
    exog_names = tuple(exog_names)
    for i, name in enumerate(exog_names):
        if not isinstance(name, str):
            raise TypeError(f"exog_names[{i}]: expected a string, got {name!r}")
    spec = SarimaxSpec(
        order=order, seasonal_order=seasonal_order, trend_powers=powers, exog_names=exog_names,
        enforce_stationarity=bool(enforce_stationarity),
        enforce_invertibility=bool(enforce_invertibility), lag_lists=lag_lists,
        measurement_error=bool(measurement_error), concentrate_scale=bool(concentrate_scale),
        state_regression=bool(state_regression) and bool(exog_names),
        time_varying_regression=bool(time_varying_regression) and bool(exog_names),
    )
    names = spec.param_names
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"exog_names: the parameter names {duplicates} occur more than once")
    return spec


def likelihood_burn(spec: SarimaxSpec, initialization: str = "exact_diffuse") -> int:
    """Number of leading log-likelihood terms statsmodels leaves out (``loglikelihood_burn``).

    ``0`` for ``"exact_diffuse"``; :attr:`SarimaxSpec.num_diffuse_states` for
    ``"approximate_diffuse"`` (the differencing states, or every state when
    ``enforce_stationarity=False``). Pass it as ``burn=`` to
    :func:`probssm.kalman.log_likelihood` or :func:`probssm.kalman.filter`.
    """
    check_initialization(initialization)
    return 0 if initialization == "exact_diffuse" else spec.num_diffuse_states


# --------------------------------------------------------------------------------------------
# State-space form
# --------------------------------------------------------------------------------------------


def _check_params(spec: SarimaxSpec, params, name="params"):
    if not isinstance(params, jax.core.Tracer):
        params = jnp.asarray(params)
        if not jnp.issubdtype(params.dtype, jnp.floating):
            params = params.astype(jnp.result_type(float))
    if jnp.shape(params)[-1:] != (spec.k_params,):
        raise ValueError(
            f"{name}: expected shape (..., {spec.k_params}) for the parameters {list(spec.param_names)}, "
            f"got {jnp.shape(params)}"
        )
    return params


def _split(spec: SarimaxSpec, params) -> dict:
    return {k: params[..., sl] for k, sl in spec.param_slices.items()}


def lag_polynomials(spec: SarimaxSpec, params):
    """The reduced AR and MA lag polynomials :math:`\\phi(L)\\Phi(L^s)` and :math:`\\theta(L)\\Theta(L^s)`.

    Parameters
    ----------
    spec : SarimaxSpec
    params : array, shape ``(k_params,)``
        Natural parameters (see :attr:`SarimaxSpec.param_names`).

    Returns
    -------
    ar : array, shape ``(p + sP + 1,)``
        Coefficients in increasing powers of :math:`L`, leading 1:
        :math:`(1, -\\phi^*_1, \\dots, -\\phi^*_{p+sP})` (statsmodels' ``polynomial_reduced_ar``).
    ma : array, shape ``(q + sQ + 1,)``
        :math:`(1, \\theta^*_1, \\dots, \\theta^*_{q+sQ})`.
    """
    params = _check_params(spec, params)
    return _lag_polynomials(spec, _split(spec, params), params.dtype)


def _poly(coefs, lags, step, sign, dtype):
    """:math:`1 + \\text{sign} \\sum_j c_j L^{\\text{step}\\, l_j}` as coefficients in
    increasing powers of :math:`L`, shape ``(step * max(lags) + 1,)``."""
    out = jnp.zeros(step * max(lags, default=0) + 1, dtype).at[0].set(1)
    if not lags:
        return out
    return out.at[np.asarray(lags) * step].set(sign * coefs)


def _lag_polynomials(spec, parts, dtype):
    s = spec.seasonal_order[3]
    lags = spec.lags
    ar = _poly(parts["ar"], lags["ar"], 1, -1, dtype)
    ma = _poly(parts["ma"], lags["ma"], 1, 1, dtype)
    if spec.seasonal_order[0]:
        ar = jnp.convolve(ar, _poly(parts["seasonal_ar"], lags["seasonal_ar"], s, -1, dtype))
    if spec.seasonal_order[2]:
        ma = jnp.convolve(ma, _poly(parts["seasonal_ma"], lags["seasonal_ma"], s, 1, dtype))
    return ar, ma


def _static_matrices(spec: SarimaxSpec):
    """Transition and observation matrices with the parameters left out (NumPy, float64)."""
    d, (_, D, _, s) = spec.order[1], spec.seasonal_order
    kd, n = spec._diff_dim, spec._arima_dim
    F = np.zeros((n, n))
    # ARMA block: ones on the superdiagonal (the AR coefficients go into its first column).
    F[kd:, kd:] += np.eye(spec.arma_dim, k=1)
    # Seasonal differencing blocks of s states each: the block shifts its values down by one and
    # its first state accumulates its oldest value, the ARMA state and (for every block but the
    # last) the oldest value of the next block -- undoing one (1 - L^s) at a time.
    for i in range(D):
        b = d + i * s
        F[b, b + s - 1] = 1
        F[b + 1:b + s, b:b + s - 1] += np.eye(s - 1)
        if i < D - 1:
            F[b, b + 2 * s - 1] = 1
        F[b, kd] = 1
    # Ordinary differencing states: state i accumulates states i..d-1, the oldest value of every
    # seasonal block and the ARMA state -- undoing one (1 - L) at a time.
    F[:d, :d] = np.triu(np.ones((d, d)))
    for i in range(D):
        F[:d, d + i * s + s - 1] = 1
    F[:d, kd] = 1
    H = np.zeros((1, n))
    H[0, :d] = 1
    for i in range(D):
        H[0, d + i * s + s - 1] = 1
    H[0, kd] = 1
    return F, H


def _trend_values(spec, parts, times):
    powers = jnp.asarray(spec.trend_powers, times.dtype)
    return (times[:, None] ** powers) @ parts["trend"]


def _concrete_checks(spec, params: np.ndarray):
    """Value checks that need concrete parameters (NumPy, outside any trace)."""
    if not np.all(np.isfinite(params)):
        bad = [spec.param_names[i] for i in np.flatnonzero(~np.isfinite(params))]
        raise ValueError(f"params: non-finite value for {bad}")
    for key, name in (("sigma2", "sigma2"), ("measurement", "the measurement error's variance"),
                      ("exog_variance", "a regression coefficient's variance")):
        for value in params[spec.param_slices[key]]:
            if value <= 0:
                raise ValueError(f"params: {name} must be positive, got {value}")
    if spec.enforce_stationarity:
        for key, label in (("ar", "AR"), ("seasonal_ar", "seasonal AR")):
            coefs = params[spec.param_slices[key]]
            lags = spec.lags[key]
            if coefs.size and max_inverse_root(-dense_tail(coefs, lags, max(lags))) >= 1 - 1e-10:
                raise ValueError(
                    f"params: the {label} coefficients {coefs.tolist()} are not stationary (the "
                    "polynomial 1 - c_1 z - c_2 z^2 - ... has a root on or inside the unit circle); "
                    "stationary ARMA states need stationary parameters (map free values with "
                    "to_natural) or build the spec with enforce_stationarity=False"
                )


def sarimax_model(
    spec: SarimaxSpec,
    params,
    exog=None,
    *,
    num_timesteps: int | None = None,
    time_offset=0,
    initialization: str = "exact_diffuse",
    scale=1.0,
) -> LGSSM:
    """The linear-Gaussian state-space form of a SARIMAX model (statsmodels' ``SARIMAX``).

    .. math::

        y_t &= H x_t + d_t, \\qquad d_t = z_t^T \\beta, \\\\
        x_{t+1} &= F x_t + b_t + \\eta_t, \\qquad \\eta_t \\sim N(0, \\sigma^2 r r^T),

    with state dimension ``n = d + sD + k`` (see the module documentation): :math:`F` holds the
    differencing structure and, in column ``d + sD``, the reduced AR coefficients
    :math:`\\phi^*` of :math:`\\phi(L)\\Phi(L^s)`; :math:`r = e_{d+sD} + \\sum_j \\theta^*_j
    e_{d+sD+j}` holds the reduced MA coefficients of :math:`\\theta(L)\\Theta(L^s)`; :math:`H`
    sums the differencing states and the first ARMA state; :math:`R = 0`, or
    :math:`\\sigma^2_\\nu` (``var.measurement_error``) with ``spec.measurement_error``.
    The trend is the state intercept of the first ARMA state,
    :math:`b_t = A(\\tau_t)\\, e_{d+sD}` at statsmodels' trend time
    :math:`\\tau_t = \\text{time\\_offset} + t + 1` (``trend_offset=1``), the intercept of the
    transition from step ``t`` to ``t + 1``.

    Prior: with ``enforce_stationarity`` the ARMA block starts from its stationary distribution,
    mean :math:`(I - T_c)^{-1} e_1 A(\\tau_0)` and covariance :math:`\\Sigma` solving
    :math:`\\Sigma = T_c \\Sigma T_c^T + \\sigma^2 r r^T` (a differentiable Kronecker solve for
    ``k <= 10``, a doubling iteration above), and the differencing states are diffuse; without it
    every state is diffuse with mean zero (as in statsmodels).

    Parameters
    ----------
    spec : SarimaxSpec
    params : array, shape ``(k_params,)``
        Natural parameters in the order of :attr:`SarimaxSpec.param_names`. The model is
        differentiable in ``params`` and the function works under ``jit`` (``spec``,
        ``num_timesteps`` and ``initialization`` static) and ``vmap``.
    exog : array, shape ``(T, k_exog)``, optional
        Regressors :math:`z_t`; required exactly when ``spec.exog_names`` is non-empty. It sets
        the number of time steps ``T``.
    num_timesteps : int, optional
        ``T`` when there is no ``exog``; needed only for a trend with powers of :math:`t` (a
        constant trend and a model without exog and trend are time-invariant).
    time_offset : int
        Shift of the trend's time index. ``0`` for the observed sample. To forecast ``h`` steps
        after a sample of length ``T`` with :func:`probssm.kalman.forecast` (whose step ``k``
        uses the transition *into* forecast step ``k``, i.e. out of step ``T + k - 1``), build the
        forecast model with ``time_offset=T - 1`` and the future ``exog``; this reproduces
        statsmodels' forecasts.
    initialization : {"exact_diffuse", "approximate_diffuse"}
        See :data:`INITIALIZATIONS`. Pair ``"approximate_diffuse"`` with
        ``burn=likelihood_burn(spec, "approximate_diffuse")`` in the log-likelihood.
    scale : float
        :math:`\\sigma^2` when ``spec.concentrate_scale`` (then also
        :math:`\\sigma^2_\\nu = \\text{snr} \\cdot \\sigma^2`); ignored otherwise.

    Returns
    -------
    LGSSM
        ``transition_offset`` has shape ``(T, n)`` for a trend in :math:`t` (``(n,)`` otherwise);
        ``observation_offset`` ``(T, 1)`` with exog (zero otherwise); all other fields are
        time-invariant: ``F`` and ``Q`` ``(n, n)``, ``H`` ``(1, n)``, ``R`` ``(1, 1)``. With
        ``spec.state_regression`` the ``k_exog`` regression states follow the ARIMA states and
        ``H`` is ``(T, 1, n)`` (:func:`~probssm.structural.arima_regression.with_state_regression`).

    Raises
    ------
    ValueError
        Wrong shapes; with concrete values also a non-positive ``sigma2``, non-finite ``exog``,
        or non-stationary AR coefficients when ``enforce_stationarity`` (statsmodels refuses
        those too).
    """
    check_initialization(initialization)
    params = _check_params(spec, params)
    if params.ndim != 1:
        raise ValueError(f"params: expected shape ({spec.k_params},), got {params.shape}; use jax.vmap for batches")
    if not isinstance(params, jax.core.Tracer):
        _concrete_checks(spec, np.asarray(params, dtype=float))

    # Time axis: from exog, else num_timesteps.
    T = None
    if spec.k_exog:
        if exog is None:
            raise ValueError(f"exog: the spec has regressors {list(spec.exog_names)}; pass exog of shape (T, {spec.k_exog})")
        if not isinstance(exog, jax.core.Tracer):
            exog = jnp.asarray(np.asarray(exog, dtype=float) if not isinstance(exog, jax.Array) else exog)
            if not bool(jnp.all(jnp.isfinite(exog))):
                pos = tuple(int(i) for i in np.argwhere(~np.isfinite(np.asarray(exog)))[0])
                raise ValueError(f"exog: non-finite value at index {pos}; regressors cannot be missing")
        if exog.ndim != 2 or exog.shape[1] != spec.k_exog:
            raise ValueError(f"exog: expected shape (T, {spec.k_exog}) for {list(spec.exog_names)}, got {exog.shape}")
        T = exog.shape[0]
        if num_timesteps is not None and int(num_timesteps) != T:
            raise ValueError(f"num_timesteps={num_timesteps} but exog has {T} rows")
    elif exog is not None and np.size(exog):
        raise ValueError(f"exog: the spec has no regressors but exog of shape {np.shape(exog)} was given")
    elif num_timesteps is not None:
        T = int(num_timesteps)
        if T < 1:
            raise ValueError(f"num_timesteps must be positive, got {num_timesteps}")
    trend_in_time = any(k > 0 for k in spec.trend_powers)
    if trend_in_time and T is None:
        raise ValueError(
            f"num_timesteps: the trend has powers of t {spec.trend_powers}, so the model is "
            "time-varying; pass num_timesteps (or exog)"
        )
    if not spec.k_exog:
        exog = None
        if not trend_in_time:
            T = None  # time-invariant: one compiled builder for every length
    return _build(spec, params, exog, time_offset, T, initialization, scale)


@partial(jax.jit, static_argnames=("spec", "num_timesteps", "initialization"))
def _build(spec, params, exog, time_offset, num_timesteps, initialization, scale):
    """The model's arrays, compiled once per spec and shape (the inputs are validated)."""
    T = num_timesteps
    trend_in_time = any(k > 0 for k in spec.trend_powers)
    dtype = params.dtype
    parts = _split(spec, params)
    ar_poly, ma_poly = _lag_polynomials(spec, parts, dtype)
    kd, k, n = spec._diff_dim, spec.arma_dim, spec._arima_dim
    F0, H0 = _static_matrices(spec)
    F = jnp.asarray(F0, dtype)
    if spec.ar_order:
        F = F.at[kd:kd + spec.ar_order, kd].set(-ar_poly[1:])
    r = jnp.zeros(n, dtype).at[kd].set(1)
    if spec.ma_order:
        r = r.at[kd + 1:kd + 1 + spec.ma_order].set(ma_poly[1:])
    sigma2 = jnp.asarray(scale, dtype) if spec.concentrate_scale else parts["sigma2"][0]
    Q = sigma2 * (r[:, None] * r[None, :])
    H = jnp.asarray(H0, dtype)
    R = jnp.zeros((1, 1), dtype)
    if spec.measurement_error:
        R = parts["measurement"].reshape(1, 1) * (sigma2 if spec.concentrate_scale else 1)
    time_varying = set()

    # Trend: state intercept of the first ARMA state.
    b = None
    c0 = None
    if spec.k_trend:
        if trend_in_time:
            times = jnp.arange(T, dtype=dtype) + (jnp.asarray(time_offset, dtype) + 1)
            values = _trend_values(spec, parts, times)
            b = jnp.zeros((T, n), dtype).at[:, kd].set(values)
            c0 = values[0]
            time_varying.add("transition_offset")
        else:
            c0 = parts["trend"][0]
            b = jnp.zeros(n, dtype).at[kd].set(c0)
    d_off = None
    if spec.k_exog and not spec.state_regression:
        d_off = (exog.astype(dtype) @ parts["exog"])[:, None]
        time_varying.add("observation_offset")

    # Prior.
    mean = jnp.zeros(n, dtype)
    P0 = jnp.zeros((n, n), dtype)
    if spec.enforce_stationarity:
        A = F[kd:, kd:]
        rr = r[kd:]
        P0 = P0.at[kd:, kd:].set(solve_discrete_lyapunov(A, sigma2 * (rr[:, None] * rr[None, :])))
        if c0 is not None:
            e1 = jnp.zeros(k, dtype).at[0].set(c0)
            mean = mean.at[kd:].set(jnp.linalg.solve(jnp.eye(k, dtype=dtype) - A, e1))
        P_inf = jnp.diag(jnp.concatenate([jnp.ones(kd, dtype), jnp.zeros(k, dtype)]))
    else:
        P_inf = jnp.eye(n, dtype=dtype)

    model = LGSSM(
        transition_matrix=F, transition_cov=Q, observation_matrix=H, observation_cov=R,
        initial_mean=mean, initial_cov=P0, transition_offset=b, observation_offset=d_off,
        initial_diffuse_cov=P_inf, time_varying=time_varying,
    )
    if spec.state_regression:
        variances = None
        if spec.time_varying_regression:
            variances = parts["exog_variance"] * (sigma2 if spec.concentrate_scale else 1)
        model = with_state_regression(model, exog, variances)
    if initialization == "approximate_diffuse":
        model = approximate_diffuse(model, APPROXIMATE_DIFFUSE_VARIANCE)
    return model


# --------------------------------------------------------------------------------------------
# Parameter transforms
# --------------------------------------------------------------------------------------------


def to_natural(spec: SarimaxSpec, theta):
    """Map unconstrained numbers :math:`\\vartheta \\in \\mathbb R^k` to natural parameters.

    Block by block (statsmodels' ``transform_params``, except for the variance): trend and
    regression coefficients unchanged; AR and seasonal AR coefficients through
    :func:`probssm.fit.constrain_stationary` when ``enforce_stationarity`` (so
    :math:`\\phi(z)` and :math:`\\Phi(z)` have their roots outside the unit circle); MA and
    seasonal MA coefficients through :math:`-\\,`:func:`~probssm.fit.constrain_stationary` when
    ``enforce_invertibility`` (invertible :math:`\\theta(z)`, :math:`\\Theta(z)`);
    :math:`\\sigma^2 = e^{\\vartheta}` and likewise ``var.measurement_error`` (statsmodels squares
    instead, which is not one-to-one).

    Parameters
    ----------
    spec : SarimaxSpec
    theta : array, shape ``(*batch, k_params)``

    Returns
    -------
    array, shape ``(*batch, k_params)``
        Works under ``jit``, ``vmap`` and ``grad``.
    """
    theta = _check_params(spec, theta, "theta")
    return _transform(spec, theta, forward=True)


def to_unconstrained(spec: SarimaxSpec, params):
    """Inverse of :func:`to_natural`: natural parameters to :math:`\\mathbb R^k`.

    Uses :func:`probssm.fit.unconstrain_stationary` and :math:`\\log \\sigma^2`.

    Parameters
    ----------
    spec : SarimaxSpec
    params : array, shape ``(*batch, k_params)``
        With stationary (invertible) polynomials where the spec enforces it and
        :math:`\\sigma^2 > 0`.

    Returns
    -------
    array, shape ``(*batch, k_params)``

    Raises
    ------
    ValueError
        For concrete inputs outside the constrained region (instead of returning NaN).
    """
    params = _check_params(spec, params)
    out = _transform(spec, params, forward=False)
    if not isinstance(out, jax.core.Tracer):
        bad = ~np.isfinite(np.asarray(out))
        if bad.any():
            names = sorted({spec.param_names[i] for i in np.argwhere(bad)[:, -1]})
            raise ValueError(
                f"params: {names} lie outside the region the spec enforces (stationary AR, invertible "
                "MA, positive variances), so they have no unconstrained value"
            )
    return out


@partial(jax.jit, static_argnames=("spec", "forward"))
def _transform(spec, x, forward: bool):
    pieces = []
    enforce = {
        "ar": spec.enforce_stationarity, "seasonal_ar": spec.enforce_stationarity,
        "ma": spec.enforce_invertibility, "seasonal_ma": spec.enforce_invertibility,
    }
    for name, sl in spec.param_slices.items():
        block = x[..., sl]
        if name in ("sigma2", "measurement", "exog_variance"):
            block = jnp.exp(block) if forward else jnp.log(block)
        elif enforce.get(name, False) and block.shape[-1]:
            sign = -1 if name in ("ma", "seasonal_ma") else 1
            block = sign * constrain_stationary(block) if forward else unconstrain_stationary(sign * block)
        pieces.append(block)
    return jnp.concatenate(pieces, axis=-1)
