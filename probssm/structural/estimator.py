"""Structural time-series estimators: :class:`LocalLevel`, :class:`UnobservedComponents` and
:class:`SARIMAX`."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from ..base import per_series, single_series
from ..fit import maximize_likelihood
from ..kalman.forecaster import LinearGaussianForecaster
from ..kalman.inference import smooth as kalman_smooth
from ..kalman.model import APPROXIMATE_DIFFUSE_VARIANCE, LGSSM
from . import arima, unobserved
from .concentrated import profile_log_likelihood, profile_objective
from .diffuse_options import DiffuseOptionsMixin

__all__ = ["LocalLevel", "UnobservedComponents", "SARIMAX"]


class LocalLevel(LinearGaussianForecaster):
    """Local level model (random walk plus noise), fitted by maximum likelihood.

    .. math::

        y_t = \\mu_t + \\varepsilon_t,\\quad \\varepsilon_t \\sim N(0, \\sigma^2_\\varepsilon),
        \\qquad \\mu_{t+1} = \\mu_t + \\eta_t,\\quad \\eta_t \\sim N(0, \\sigma^2_\\eta)

    The two variances are estimated with ``jax.grad`` + L-BFGS over their logarithms; standard
    errors come from the observed information. The level starts diffuse.

    Parameters
    ----------
    initialization : {"exact_diffuse", "approximate_diffuse"}, default "exact_diffuse"
        Exact diffuse (Koopman 1997) or a prior variance of ``1e6`` with the first
        log-likelihood term left out (statsmodels' ``UnobservedComponents`` default).
    method, priors, num_warmup, num_samples, num_chains, random_state
        How the parameters are estimated: ``"mle"`` (default) or ``"nuts"`` with its priors and
        sampler settings (see :class:`~probssm.kalman.forecaster.LinearGaussianForecaster`).

    Attributes
    ----------
    params_ : Series
        ``sigma2.irregular`` (:math:`\\sigma^2_\\varepsilon`) and ``sigma2.level``
        (:math:`\\sigma^2_\\eta`), statsmodels' names.
    bse_ : Series
        Standard errors.
    loglik_, aic_, bic_, hqic_ : float
    nobs_ : int
    cutoff_ : label
        The last training index label.

    Examples
    --------
    >>> from probssm.datasets import load_nile
    >>> model = LocalLevel().fit(load_nile())
    >>> model.predict(3)  # doctest: +SKIP
    """

    _univariate = True

    def __init__(self, initialization="exact_diffuse", method="mle", priors=None, num_warmup=500,
                 num_samples=500, num_chains=2, random_state=None):
        self.initialization = initialization
        self.method = method
        self.priors = priors
        self.num_warmup = num_warmup
        self.num_samples = num_samples
        self.num_chains = num_chains
        self.random_state = random_state

    def _min_observed(self) -> int:
        return 3

    def _param_names(self, m):
        if m != 1:
            raise ValueError(f"LocalLevel models one series; y has {m} columns")
        return ["sigma2.irregular", "sigma2.level"]

    def _start_params(self, values):
        y = values[:, 0]
        y = y[~np.isnan(y)]
        if np.ptp(y) == 0:
            raise ValueError("y is constant; the local level model's variances are not identified")
        var = np.var(np.diff(y)) if len(y) > 1 else np.var(y)
        if var == 0:  # a straight line: start from its squared slope (a zero variance has log -inf)
            var = np.mean(np.diff(y) ** 2)
        return np.array([var / 2, var / 2])

    def _to_unconstrained(self, params):
        return jnp.log(params)

    def _to_natural(self, theta):
        return jnp.exp(theta)

    def _build(self, params, aux):
        dtype = params.dtype
        one = jnp.ones((1, 1), dtype)
        return LGSSM(
            transition_matrix=one,
            transition_cov=params[1] * one,
            observation_matrix=one,
            observation_cov=params[0] * one,
            initial_mean=jnp.zeros(1, dtype),
            initial_cov=jnp.zeros((1, 1), dtype),
            initial_diffuse_cov=one,
        )

    def _state_names(self):
        return ["level"]


class UnobservedComponents(DiffuseOptionsMixin, LinearGaussianForecaster):
    """Structural time-series model: a sum of components plus an irregular, fitted by MLE.

    .. math::

        y_t = \\sum_c z_{c,t}^T x_{c,t} + x_t^T\\beta + \\varepsilon_t,\\quad
        x_{c,t+1} = F_c x_{c,t} + \\eta_{c,t}

    See :mod:`probssm.structural.components` for the blocks (level, local linear trend, smooth
    trend, dummy and trigonometric seasonals, damped cycle, AR(p), regression). Parameters and
    state layout follow statsmodels' ``UnobservedComponents``, so estimates compare by name; the
    model itself is built by :mod:`probssm.structural.unobserved`. Variances are fitted as squares of free numbers (so they can reach zero), the cycle's
    frequency and damping through logistic maps into their bounds, AR coefficients through the
    Monahan (1984) stationarity transform; standard errors come from the observed information.

    Parameters
    ----------
    terms : sequence of Component or str
        The model's components in state order. Strings name trends as statsmodels does:
        ``"local level"``, ``"fixed level"``, ``"local linear trend"``, ``"smooth trend"``,
        ``"random walk with drift"``, ``"deterministic trend"``. A :class:`~probssm.structural.components.Regression`
        (fixed coefficients) is added when ``fit`` gets ``X`` and none is listed.
    irregular : bool, default True
        Include the observation noise :math:`\\varepsilon_t \\sim N(0, \\sigma^2_{irregular})`.
    initialization : {"exact_diffuse", "approximate_diffuse"}, default "exact_diffuse"
        How non-stationary states start (AR states start stationary either way): exact diffuse
        (Koopman 1997), or variance ``1e6`` with the first ``k`` log-likelihood terms left out
        (``k`` = number of diffuse states; statsmodels' default).
    method, priors, num_warmup, num_samples, num_chains, random_state
        How the parameters are estimated: ``"mle"`` (default) or ``"nuts"`` with its priors and
        sampler settings (see :class:`~probssm.kalman.forecaster.LinearGaussianForecaster`).
    initial_variance : float, optional
        Prior variance of the diffuse states under ``initialization="approximate_diffuse"``
        (statsmodels' ``initial_variance``); ``None`` is statsmodels' default, ``1e6``.
    loglikelihood_burn : int, optional
        Number of leading log-likelihood terms left out, under either initialisation
        (statsmodels' argument); by default the number of diffuse states under
        ``"approximate_diffuse"`` and none under ``"exact_diffuse"``
        (:mod:`probssm.structural.diffuse_options`).
    mle_regression : bool, default True
        With ``X`` and no Regression listed: ``True`` estimates the coefficients as parameters
        ``beta.{column}``; ``False`` puts them in the state vector as constant diffuse states
        (statsmodels' ``mle_regression=False``), estimated by the filter and smoother and read
        from ``smooth()`` (states ``beta.{column}``). List
        ``Regression(time_varying=True)`` for random-walk coefficients.

    Attributes
    ----------
    params_, bse_ : Series
        Estimates and standard errors, named as in statsmodels (``sigma2.level``, ...).
    loglik_, aic_, bic_, hqic_ : float
    components_ : list of Component
        The resolved components (trend strings replaced, irregular and regression added).

    Examples
    --------
    >>> from probssm.structural import UnobservedComponents, TrigSeasonal
    >>> model = UnobservedComponents(["local linear trend", TrigSeasonal(12, harmonics=3)])
    >>> model.fit(y).components()  # doctest: +SKIP
    """

    _accepts_exog = True
    _univariate = True
    _structure_attributes = ("_spec",)

    def __init__(self, terms=("local level",), irregular=True, initialization="exact_diffuse",
                 method="mle", priors=None, num_warmup=500, num_samples=500, num_chains=2,
                 random_state=None, initial_variance=None,
                 loglikelihood_burn=None, mle_regression=True):
        self.terms = terms
        self.irregular = irregular
        self.initialization = initialization
        self.method = method
        self.priors = priors
        self.num_warmup = num_warmup
        self.num_samples = num_samples
        self.num_chains = num_chains
        self.random_state = random_state
        self.initial_variance = initial_variance
        self.loglikelihood_burn = loglikelihood_burn
        self.mle_regression = mle_regression

    # -- specification: the engine's, see probssm.structural.unobserved ------------------------
    def _resolve(self, index):
        self._spec = unobserved.uc_spec(
            self.terms, self.irregular, self._exog_columns or (), unobserved.freq_code(index),
            mle_regression=bool(self.mle_regression))
        self.components_ = list(self._spec.components)

    def _structure(self):
        return (self.initialization, self._spec, self._diffuse_options())

    def _prepare(self, data):
        if data.values.shape[1] != 1:
            raise ValueError(f"UnobservedComponents models one series; y has {data.values.shape[1]} columns")
        self._resolve(data.index)
        k, n_states = self._spec.k_params, self._spec.num_states
        observed = int(np.sum(~np.isnan(data.values)))
        if observed <= k + n_states:
            raise ValueError(
                f"y has {observed} observed values; the model has {k} parameters "
                f"and {n_states} states, so more observations are needed"
            )

    def _restore_fitted_state(self, meta, arrays):
        self._resolve(self._y.index)
        super()._restore_fitted_state(meta, arrays)

    # -- parameters ----------------------------------------------------------------------------
    def _param_names(self, m):
        return list(self._spec.param_names)

    def _param_kind(self, name):
        return unobserved.param_kind(self._spec, name)

    def _to_natural(self, theta):
        return unobserved.to_natural(self._spec, theta)

    def _to_unconstrained(self, params):
        return unobserved.to_unconstrained(self._spec, params)

    def _start_params(self, values):
        return unobserved.start_params(self._spec, values[:, 0], self._X)

    # -- the model -------------------------------------------------------------------------------
    def _aux(self, exog, start, steps):
        return {} if exog is None else {"exog": jnp.asarray(exog)}

    def _build(self, params, aux):
        return unobserved.uc_model(self._spec, params, aux.get("exog"))

    def _state_names(self):
        return unobserved.state_names(self._spec)

    # -- results ---------------------------------------------------------------------------------
    @per_series
    def components(self) -> pd.DataFrame:
        """Smoothed components :math:`E[z_c^T x_{c,t} \\mid y_{0:T-1}]` and their standard
        deviations, columns ``(component, "mean"|"std")`` indexed like the data. A local linear
        trend reports its ``level`` and ``slope``; fixed regression its fitted :math:`x_t^T\\hat\\beta`."""
        self._check_is_fitted()
        y, aux, T = self._padded_data()
        with jax.enable_x64(True):
            params = jnp.asarray(self._params)
            model, _ = self._model(params, aux)
            res = kalman_smooth(model, y)
            cols = unobserved.component_moments(
                self._spec, params, np.asarray(res.mean)[:T], np.asarray(res.cov)[:T], self._X)
        return pd.DataFrame(cols, index=self._y.index)

    @single_series
    def plot_components(self, coverage=0.9, fig=None):
        """Plot the data with the smoothed signal, and each smoothed component with a
        ``coverage`` band, one panel each. Returns the matplotlib Figure."""
        from ..plotting import plot_components

        self._check_is_fitted()
        return plot_components(self, coverage=coverage, fig=fig)


class SARIMAX(DiffuseOptionsMixin, LinearGaussianForecaster):
    """Seasonal ARIMA with exogenous regressors, :math:`\\text{SARIMAX}(p,d,q)\\times(P,D,Q)_s`,
    fitted by maximum likelihood on the linear-Gaussian engine.

    .. math::

        \\phi(L)\\Phi(L^s)\\,\\Delta^d\\Delta_s^D\\,(y_t - x_t^T\\beta) = A(t)
        + \\theta(L)\\Theta(L^s)\\,\\varepsilon_t,\\qquad \\varepsilon_t \\sim N(0, \\sigma^2)

    in statsmodels' state-space form (:mod:`probssm.structural.arima`): the differences are
    states, the trend :math:`A(t)` enters the state equation, regressors the observation
    equation. AR and MA polynomials are kept stationary / invertible by the Monahan (1984) / Jones
    (1980) transforms; :math:`\\sigma^2` by a log. Parameter names are statsmodels'
    (``intercept``, ``drift``, ``beta`` columns by name, ``ar.L1``, ``ma.S.L12``, ``sigma2``).

    Parameters
    ----------
    order : tuple of 3 int
        :math:`(p, d, q)`, non-negative integers; ``p`` and ``q`` may be lists of lags.
    seasonal_order : tuple of 4 int
        :math:`(P, D, Q, s)`; ``s >= 2`` when any seasonal term is non-zero; ``P`` and ``Q`` may
        be lists of lags (in units of ``s``).
    trend : {None, "n", "c", "t", "ct"}
        Deterministic trend :math:`A(t)`: none, constant, linear in :math:`t`, or both.
    enforce_stationarity, enforce_invertibility : bool
        Restrict the AR / MA polynomials to the stationary / invertible region.
    initialization : {"exact_diffuse", "approximate_diffuse"}
        How the differencing states start (the ARMA states start stationary): exact diffuse, or
        variance ``1e6`` with the first ``d + sD`` log-likelihood terms left out (statsmodels'
        default).
    simple_differencing : bool, default False
        Estimate on the differenced series :math:`\\Delta^d\\Delta_s^D y` (the first
        ``d + sD`` observations are conditioned on; Stata's and statsmodels'
        ``simple_differencing=True``, whose log-likelihood ``loglik_`` then reports). Forecasts,
        filtering and smoothing still use the model in levels at those parameters.
    method, priors, num_warmup, num_samples, num_chains, random_state
        How the parameters are estimated: ``"mle"`` (default) or ``"nuts"`` with its priors and
        sampler settings (see :class:`~probssm.kalman.forecaster.LinearGaussianForecaster`).
    measurement_error : bool, default False
        Add white observation noise :math:`\\nu_t \\sim N(0, \\sigma^2_\\nu)` to :math:`y_t`; its
        variance is the parameter ``var.measurement_error`` (statsmodels' option and name).
    initial_variance : float, optional
        Prior variance of the diffuse states under ``initialization="approximate_diffuse"``
        (statsmodels' ``initial_variance``; in units of :math:`\\sigma^2` with
        ``concentrate_scale``, as there). ``None`` is statsmodels' default: ``1e6``, or
        ``1e10`` with ``mle_regression=False``.
    loglikelihood_burn : int, optional
        Number of leading log-likelihood terms left out, under either initialisation
        (statsmodels' argument); by default ``d + sD`` under ``"approximate_diffuse"`` and none
        under ``"exact_diffuse"`` (:mod:`probssm.structural.diffuse_options`).
    concentrate_scale : bool, default False
        Concentrate :math:`\\sigma^2` out of the likelihood (statsmodels' option,
        :mod:`probssm.structural.concentrated`): ``params_`` leaves out ``sigma2`` (a measurement
        variance becomes the ratio ``snr.measurement_error``), ``scale_`` holds
        :math:`\\hat\\sigma^2`, ``loglik_`` the profile log-likelihood (equal to the full
        one at the optimum), and ``bse_`` is conditional on :math:`\\hat\\sigma^2`. Not with
        ``simple_differencing`` or panels.
    mle_regression : bool, default True
        ``False`` puts the coefficients of ``X`` into the state vector (diffuse, after the
        ARIMA states, named ``beta.{column}`` in ``smooth()``) instead of estimating them as
        parameters (statsmodels' option, :mod:`probssm.structural.arima_regression`).
    time_varying_regression : bool, default False
        With ``mle_regression=False``: the coefficients are random walks whose variances are
        the parameters ``var.{column}`` (statsmodels' option).

    Orders may list lags instead of counting them, as in statsmodels: ``order=([1, 4], 1, 0)``
    or ``order=(1, 1, (1, 0, 0, 1))`` estimate only the coefficients of the lags listed (the
    others are zero), and ``seasonal_order=([1, 2], 1, 0, 12)`` the seasonal lags 12 and 24
    (:mod:`probssm.structural.arima_lags`).

    Attributes
    ----------
    params_, bse_ : Series
    loglik_, aic_, bic_, hqic_ : float
    scale_ : float
        :math:`\\sigma^2`: the estimate ``params_["sigma2"]``, or the concentrated
        :math:`\\hat\\sigma^2` with ``concentrate_scale``.

    Examples
    --------
    >>> from probssm.datasets import load_airpassengers
    >>> import numpy as np
    >>> airline = SARIMAX((0, 1, 1), (0, 1, 1, 12)).fit(np.log(load_airpassengers()))
    >>> airline.predict(12)  # doctest: +SKIP
    """

    _accepts_exog = True
    _univariate = True
    _structure_attributes = ("_spec",)

    def __init__(
        self, order=(1, 0, 0), seasonal_order=(0, 0, 0, 0), trend=None, enforce_stationarity=True,
        enforce_invertibility=True, initialization="exact_diffuse", simple_differencing=False,
        method="mle", priors=None, num_warmup=500, num_samples=500, num_chains=2, random_state=None,
        measurement_error=False, initial_variance=None, loglikelihood_burn=None,
        concentrate_scale=False, mle_regression=True, time_varying_regression=False,
    ):
        self.order = order
        self.seasonal_order = seasonal_order
        self.trend = trend
        self.enforce_stationarity = enforce_stationarity
        self.enforce_invertibility = enforce_invertibility
        self.initialization = initialization
        self.simple_differencing = simple_differencing
        self.method = method
        self.priors = priors
        self.num_warmup = num_warmup
        self.num_samples = num_samples
        self.num_chains = num_chains
        self.random_state = random_state
        self.measurement_error = measurement_error
        self.initial_variance = initial_variance
        self.loglikelihood_burn = loglikelihood_burn
        self.concentrate_scale = concentrate_scale
        self.mle_regression = mle_regression
        self.time_varying_regression = time_varying_regression

    def _make_spec(self, order=None, seasonal_order=None):
        return arima.sarimax_spec(
            tuple(self.order) if order is None else order,
            tuple(self.seasonal_order) if seasonal_order is None else seasonal_order,
            self.trend, tuple(self._exog_columns or ()),
            self.enforce_stationarity, self.enforce_invertibility, self.measurement_error,
            self.concentrate_scale, not self.mle_regression, self.time_varying_regression,
        )

    def _structure(self):
        return (self.initialization, self._spec, self._diffuse_options())

    def _prepare(self, data):
        if data.values.shape[1] != 1:
            raise ValueError(f"SARIMAX models one series; y has {data.values.shape[1]} columns")
        if self.concentrate_scale and self.simple_differencing:
            raise ValueError("concentrate_scale=True is not available with simple_differencing=True")
        self._spec = self._make_spec()
        self._scale = 1.0  # the model at unit scale while the scale is concentrated out
        observed = int(np.sum(~np.isnan(data.values)))
        if observed <= self._spec.k_params + self._spec.num_diffuse_states:
            raise ValueError(
                f"y has {observed} observed values; the model has {self._spec.k_params} parameters "
                f"and {self._spec.num_diffuse_states} diffuse states, so more observations are needed"
            )

    def _restore_fitted_state(self, meta, arrays):
        self._spec = self._make_spec()
        self._scale = meta.get("scale", 1.0)
        super()._restore_fitted_state(meta, arrays)

    def _param_names(self, m):
        return list(self._spec.param_names)

    def _start_params(self, values):
        return arima.start_params(self._spec, values[:, 0], self._X)

    def _param_kind(self, name):
        if name == "sigma2" or name.startswith(("var.", "snr.")):
            return "variance"
        if name.startswith("ar."):
            return "bounded" if self.enforce_stationarity else "location"
        if name.startswith("ma."):
            return "bounded" if self.enforce_invertibility else "location"
        return "location"

    def _to_natural(self, theta):
        return arima.to_natural(self._spec, theta)

    def _to_unconstrained(self, params):
        return arima.to_unconstrained(self._spec, params)

    def _aux(self, exog, start, steps):
        # The trend's time index: positions start, ..., start + steps - 1 (the array's length
        # is static under jit, its first value may be traced).
        aux = {"time": jnp.arange(start, start + steps)}
        if exog is not None:
            aux["exog"] = jnp.asarray(exog)
        if self.concentrate_scale:
            aux["scale"] = jnp.asarray(self._scale, jnp.float64)
        return aux

    def _build(self, params, aux):
        return arima.sarimax_model(
            self._spec, params, aux.get("exog"), num_timesteps=aux["time"].shape[0],
            time_offset=aux["time"][0], scale=aux.get("scale", 1.0),
        )

    def _state_names(self):
        spec = self._spec
        betas = [f"beta.{c}" for c in spec.exog_names] if spec.state_regression else []
        return [f"state.{i}" for i in range(spec.state_dim - len(betas))] + betas

    # -- concentrated scale ---------------------------------------------------------------------
    @property
    def default_initial_variance(self) -> float:
        """statsmodels' :math:`\\kappa`: ``1e6``, or ``1e10`` with the regression coefficients in
        the state (their diffuse prior needs a larger variance)."""
        return 1e10 if not self.mle_regression else APPROXIMATE_DIFFUSE_VARIANCE

    @property
    def approximate_diffuse_variance(self) -> float:
        """:math:`\\kappa` (``initial_variance``), times :math:`\\hat\\sigma^2` with
        ``concentrate_scale`` (statsmodels sets the prior in units of the scale)."""
        kappa = super().approximate_diffuse_variance
        return kappa * float(getattr(self, "_scale", 1.0)) if self.concentrate_scale else kappa

    def _concentrated_scale(self, params) -> float:
        """:math:`\\hat\\sigma^2` at ``params`` (the model at unit scale)."""
        self._scale = 1.0
        y, aux, _ = self._padded_data()
        with jax.enable_x64(True):
            model, burn = self._model(jnp.asarray(params), aux)
            return float(profile_log_likelihood(model, y, burn)[1])

    def _check_panel_fit(self):
        super()._check_panel_fit()
        if self.concentrate_scale:
            raise ValueError("concentrate_scale=True is not available for panel fits; fit series one by one")

    @property
    def scale_(self) -> float:
        self._check_is_fitted()
        return float(self._scale) if self.concentrate_scale else float(self.params_["sigma2"])

    def _fitted_state(self):
        meta, arrays = super()._fitted_state()
        meta["scale"] = float(getattr(self, "_scale", 1.0))
        return meta, arrays

    # -- simple differencing: estimate on the differenced series -------------------------------
    def _estimate(self, data, start):
        if self.concentrate_scale:
            y, aux, _ = self._padded_data()
            with jax.enable_x64(True):
                theta0 = np.asarray(self._to_unconstrained(jnp.asarray(start)))
                res = maximize_likelihood(profile_objective(self, self._burn), theta0, y, aux)
                self.converged_ = res.converged
                return np.asarray(self._to_natural(jnp.asarray(res.theta)))
        if not self.simple_differencing:
            return super()._estimate(data, start)
        inner = self._differenced_fit(data)
        self.converged_ = inner.converged_
        return inner.params_.to_numpy()

    def _differenced_fit(self, data, params=None):
        p, d, q = self.order
        P, D, Q, s = self.seasonal_order
        dy = arima.difference(data.values[:, 0], d, D, s)
        dX = None if self._X is None else arima.difference(self._X, d, D, s)
        inner = SARIMAX(
            (p, 0, q), (P, 0, Q, s if (P or Q) else 0), trend=self.trend,
            enforce_stationarity=self.enforce_stationarity,
            enforce_invertibility=self.enforce_invertibility, initialization=self.initialization,
            measurement_error=self.measurement_error, initial_variance=self.initial_variance,
            loglikelihood_burn=self.loglikelihood_burn, mle_regression=self.mle_regression,
            time_varying_regression=self.time_varying_regression,
        )
        X_frame = None if dX is None else pd.DataFrame(dX, columns=self._exog_columns)
        return inner.fit(dy, X=X_frame, params=params)

    def _finish_fit(self, data, params):
        if self.concentrate_scale:
            # the full likelihood at the concentrated scale is the profile likelihood
            self._scale = self._concentrated_scale(params)
        super()._finish_fit(data, params)
        if self.simple_differencing:
            inner = self._differenced_fit(data, params=dict(zip(self.params_.index, params)))
            self.loglik_, self.aic_, self.bic_, self.hqic_ = inner.loglik_, inner.aic_, inner.bic_, inner.hqic_
            self.nobs_ = inner.nobs_

