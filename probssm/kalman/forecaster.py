"""The shared forecaster of the linear-Gaussian family.

:class:`LinearGaussianForecaster` turns a parameter vector into an :class:`LGSSM` (a subclass
hook) and implements the estimator contract with :mod:`probssm.kalman`'s functions: maximum
likelihood (or NUTS, :mod:`.posterior`), forecasting, filtering, smoothing, sampling, scoring,
panels fitted in one batched program, save/load. :class:`~probssm.kalman.estimator.KalmanFilter`
and the structural models (:mod:`probssm.structural`) are its subclasses.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from .. import _data
from .._compile import use_persistent_cache
from ..base import BaseForecaster, StateEstimates
from ..fit import maximize_likelihood, observed_information
from ..fit.batched import maximize_likelihood_batched
from . import compiled
from .fixed import FixedParamsMixin, with_fixed
from .inference import filter as kalman_filter
from .inference import sample as kalman_sample
from .inference import smooth as kalman_smooth
from .insample import InSampleMixin
from .model import APPROXIMATE_DIFFUSE_VARIANCE, LGSSM, approximate_diffuse, check_initialization, diffuse_rank
from .posterior import PosteriorMixin
from .reports import ReportsMixin
from .simulation import SimulationMixin

__all__ = ["LinearGaussianForecaster", "FIT_METHODS"]

FIT_METHODS = ("mle", "nuts")
"""Estimation methods every linear-Gaussian forecaster offers (``KalmanFilter`` adds ``"em"``)."""


def _psd_part(cov) -> np.ndarray:
    """The filter's predicted covariance ``(n, n)`` as a model's prior: symmetrised, and where
    round-off left an eigenvalue below zero (states of nearly deterministic dynamics, such as
    an MA polynomial at its invertibility boundary), those eigenvalues set to zero."""
    cov = np.asarray(cov)
    cov = 0.5 * (cov + cov.T)
    values, vectors = np.linalg.eigh(cov)
    if values.min() >= 0:
        return cov
    return (vectors * np.maximum(values, 0.0)) @ vectors.T


class LinearGaussianForecaster(PosteriorMixin, ReportsMixin, InSampleMixin, SimulationMixin, FixedParamsMixin,
                               BaseForecaster):
    """Base for estimators whose model is an :class:`LGSSM` built from a parameter vector.

    Everything that configures a fit is a constructor hyper-parameter (scikit-learn's rule), so
    ``clone``, ``get_params``, grid searches and save/load see it. Every subclass takes:

    - ``method`` (``"mle"`` or ``"nuts"``): ``"mle"``, maximum likelihood, L-BFGS on exact
      gradients over unconstrained parameters; ``"nuts"``, a Bayesian fit with NumPyro's NUTS
      started at the MLE: ``posterior_`` holds the draws, ``posterior_summary_`` means,
      quantiles, ``r_hat`` and ESS, and ``params_`` the posterior means. Forecasts, intervals,
      samples and ``score`` then integrate over the posterior (a mixture over up to 200 draws).
    - ``priors`` (dict, optional): with ``"nuts"``, ``name -> prior`` on natural parameters (a
      NumPyro distribution or a log-density callable), overriding the defaults: half-Cauchy on
      standard deviations with the scale of :math:`\\Delta y`; flat on bounded parameters (AR/MA
      coefficients, cycle frequency and damping); :math:`N(0, (10 s)^2)` on location
      parameters, ``s`` the scale of ``y`` over that of the regressor.
    - ``num_warmup``, ``num_samples``, ``num_chains`` (int): NUTS settings.
    - ``random_state`` (None, int or ``numpy.random.Generator``): seed of the sampler (an int
      reproduces a fit; ``None`` draws fresh entropy).

    ``fit(y, X=None, *, params=None, fixed=None)`` takes data; ``params`` (by name, or in the
    order of ``params_``) sets all parameters at known values instead of estimating them, as
    statsmodels' ``model.smooth(params)`` does; ``fixed`` (``{name: value}``) holds some at given
    values while the others are estimated (statsmodels' ``fix_params``, :mod:`.fixed`).

    Subclasses define ``_param_names(m)``, ``_start_params(values)`` (natural parameters),
    ``_to_unconstrained`` / ``_to_natural`` (bijections between natural parameters and
    :math:`\\mathbb R^k`), ``_build(params, aux)`` (an LGSSM, possibly with an exact diffuse
    prior), ``_state_names()`` and, where ``_build`` reads resolved structure,
    ``_structure()`` and ``_structure_attributes``. ``aux`` is a pytree of fixed arrays for a
    stretch of time (``_aux(exog, start, steps)``: exogenous values, the position of the first
    step and the number of steps), so the same ``_build`` gives the model over the data and over
    a forecast period.

    Fitted attributes: ``params_`` (Series of natural parameters), ``loglik_``, ``aic_``,
    ``bic_``, ``hqic_``, ``nobs_``, ``bse_`` (standard errors from the observed information),
    ``converged_``, ``fixed_params_`` (the values held by ``fixed``, empty without). On a
    panel: ``estimators_`` and those as Series / a DataFrame by series.
    """

    _methods = FIT_METHODS
    _panel_attributes = ("loglik_", "aic_", "bic_", "hqic_", "nobs_", "converged_")
    # What ``_build`` and the parameter maps read beyond the hyper-parameters (resolved at fit).
    _structure_attributes: tuple = ()
    approximate_diffuse_variance = APPROXIMATE_DIFFUSE_VARIANCE

    # -- hooks ----------------------------------------------------------------------------
    def _aux(self, exog, start, steps):
        """Fixed arrays ``_build`` needs for the ``steps`` time steps ``start, start+1, ...``
        (positions counted from the first observation) with exogenous values ``exog``
        ``(steps, k)`` (``None`` without regressors)."""
        return ()

    def _state_names(self) -> list[str]:
        raise NotImplementedError

    def _structure(self):
        """Hashable description of everything but the parameter values that ``_build`` uses."""
        return (self.initialization,)

    def _prepare(self, data):
        """Validate hyper-parameters against the data before fitting (a hook)."""

    # -- data padded to a bucket length -------------------------------------------------------
    def _padded_data(self, steps=None):
        """``(y (T', m), aux, T)``: the first ``T = steps`` observations (all by default) and
        their ``aux``, padded with missing steps to ``T' =``
        :func:`~probssm.kalman.compiled.bucket_length` ``(T)``, so that every compiled program
        serves all lengths of a bucket. The log-likelihood and the states of the first ``T``
        steps are those of the unpadded data."""
        T = self._y.num_timesteps if steps is None else int(steps)
        length = compiled.bucket_length(T)
        y = compiled.pad_time(self._y.values[:T], length, np.nan)
        exog = None if self._X is None else compiled.pad_time(self._X[:T], length, 0.0)
        with jax.enable_x64(True):  # the fitted model computes in float64 whatever JAX's default
            return jnp.asarray(y), self._aux(exog, 0, length), T

    # -- model building ---------------------------------------------------------------------
    def _model(self, params, aux, burn=None) -> tuple[LGSSM, int]:
        """The model with the chosen initialisation and its log-likelihood burn."""
        model = compiled.builder(self)(jnp.asarray(params), aux)
        if self.initialization == "approximate_diffuse":
            burn = self._burn if burn is None else burn
            return approximate_diffuse(model, self.approximate_diffuse_variance), burn
        return model, 0

    def _set_burn(self, params):
        with jax.enable_x64(True):
            _, aux, _ = self._padded_data()
            self._diffuse_states = diffuse_rank(compiled.builder(self)(jnp.asarray(params), aux))
            self._burn = self._diffuse_states if self.initialization == "approximate_diffuse" else 0

    def _check_settings(self):
        check_initialization(self.initialization)
        if self.method not in self._methods:
            raise ValueError(f"method must be one of {self._methods}, got {self.method!r}")
        if self.method != "nuts" and self.priors is not None:
            raise ValueError(f"priors are used only with method='nuts' (method={self.method!r})")
        for name in ("num_warmup", "num_samples", "num_chains"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")

    # -- fitting ------------------------------------------------------------------------------
    def fit(self, y, X=None, *, params=None, fixed=None):
        """Fit to ``y`` (and exogenous ``X`` for models with regressors); returns ``self``.

        ``params`` (mapping, Series or array, optional): known values of all parameters, by name
        or in the order of ``params_``, used instead of estimates (statsmodels'
        ``smooth(params)``). ``fixed`` (mapping ``{name: value}``, optional): parameters held at
        the given values while the others are estimated by maximum likelihood (statsmodels'
        ``fix_params``); their ``bse_`` are NaN and the information criteria count the free
        parameters only. How the parameters are estimated otherwise is set by the constructor
        (``method``, ...).
        """
        use_persistent_cache()
        if params is not None and fixed is not None:
            raise ValueError("give either params (all parameters known) or fixed (some held), not both")
        self._fixed_params, self._fixed_request = params, fixed
        try:
            if self._univariate and _data.is_panel(y, univariate=True):
                for name, value in (("params", params), ("fixed", fixed)):
                    if value is not None:
                        raise ValueError(f"{name} cannot be given for a panel fit; fit the series one by one")
            return super().fit(y, X)
        finally:
            self._fixed_params, self._fixed_request = None, None

    def _fit(self, data):
        self._check_settings()
        self._prepare(data)
        start = np.asarray(self._start_params(data.values), dtype=np.float64)
        self._fixed = self._resolve_fixed(data, start)
        start = with_fixed(start, self._param_names(data.values.shape[1]), self._fixed)
        self._set_burn(start)
        if getattr(self, "_fixed_params", None) is not None:
            params = self._given_params(self._fixed_params, data)
            self.converged_ = True
        else:
            params = self._estimate(data, start)
        self._draws = None
        if self.method == "nuts":
            params = self._sample_posterior(data, params)
        self._finish_fit(data, params)

    def _given_params(self, given, data) -> np.ndarray:
        names = self._param_names(data.values.shape[1])
        if isinstance(given, (dict, pd.Series)):
            given = dict(given.items())  # a Series iterates over its values, a dict over its keys
            missing = [n for n in names if n not in given]
            extra = [n for n in given if n not in names]
            if missing or extra:
                raise ValueError(f"params: missing {missing}, unknown {extra}; expected names {names}")
            values = np.array([given[n] for n in names], dtype=np.float64)
        else:
            values = np.asarray(given, dtype=np.float64).reshape(-1)
            if values.shape != (len(names),):
                raise ValueError(f"params: expected {len(names)} values for {names}, got shape {np.shape(given)}")
        if not np.all(np.isfinite(values)):
            raise ValueError(f"params must be finite, got {values}")
        with jax.enable_x64(True):
            back = np.asarray(self._to_natural(self._to_unconstrained(jnp.asarray(values))))
        if not np.allclose(back, values, rtol=1e-6, atol=1e-10):
            bad = names[int(np.argmax(np.abs(back - values)))]
            raise ValueError(f"params: {bad} is outside its admissible range (got {dict(zip(names, values))})")
        return values

    def _estimate(self, data, start) -> np.ndarray:
        """Maximum likelihood over the unconstrained parameters (the free ones, with ``fixed``)."""
        if self._fixed:
            return self._estimate_free(data, start)
        y, aux, _ = self._padded_data()
        with jax.enable_x64(True):
            theta0 = np.asarray(self._to_unconstrained(jnp.asarray(start)))
            res = maximize_likelihood(compiled.objective(self, self._burn), theta0, y, aux)
            self.converged_ = res.converged
            return np.asarray(self._to_natural(jnp.asarray(res.theta)))

    def _finish_fit(self, data, params):
        params = np.asarray(params, dtype=np.float64)
        self._params = params
        y, aux, T = self._padded_data()
        with jax.enable_x64(True):
            model, burn = self._model(params, aux)
            result = kalman_filter(model, y, burn=burn)
            next_state = tuple(np.asarray(a) for a in compiled.state_after(result, T))
        self._store_fit(data, params, float(result.log_likelihood), next_state, burn)

    def _store_fit(self, data, params, loglik, next_state, burn):
        """Set the fitted attributes from the estimates, their log-likelihood and the prediction
        ``(mean, cov)`` of the state after the data."""
        params = np.asarray(params, dtype=np.float64)
        self._params, self.loglik_, self._next = params, float(loglik), next_state
        self._y = data
        names = self._param_names(data.values.shape[1])
        self.params_ = pd.Series(params, index=names, name="estimate")
        self._fixed = getattr(self, "_fixed", {})
        self.fixed_params_ = pd.Series(self._fixed, index=[n for n in names if n in self._fixed],
                                       name="fixed", dtype=np.float64)
        self._bse, self._fit_steps = None, data.num_timesteps
        # statsmodels' conventions: exact diffuse states count as estimated parameters, fixed
        # parameters do not, and the burned (approximate diffuse) terms do not count as
        # observations.
        k = len(params) - len(self._fixed) + (self._diffuse_states if self.initialization == "exact_diffuse" else 0)
        self.nobs_ = int(np.sum(~np.all(np.isnan(data.values), axis=1)))
        nobs_eff = self.nobs_ - burn
        self.aic_ = -2 * self.loglik_ + 2 * k
        self.bic_ = -2 * self.loglik_ + k * np.log(nobs_eff)
        self.hqic_ = -2 * self.loglik_ + 2 * k * np.log(np.log(nobs_eff))

    @property
    def bse_(self) -> pd.Series:
        """Standard errors: square roots of the diagonal of the inverse observed information
        :math:`-\\nabla^2 \\log L(\\hat\\theta)` in the natural parameters (``jax.hessian``; of
        the free parameters only when some are ``fixed``, whose errors are NaN), computed on
        first use (the Hessian's compilation is the slowest part of a fit); NaN where
        the information is not positive definite (estimates on a boundary)."""
        self._check_is_fitted()
        if self._bse is None:
            # the data of the fit, not what update() added since
            y, aux, _ = self._padded_data(self._fit_steps)
            with jax.enable_x64(True):
                info = observed_information(
                    compiled.objective(self, self._burn, natural=True), self._params, y, aux,
                ) if len(self._params) else np.zeros((0, 0))
            # Fixed parameters: the information of the free ones given the fixed is the free
            # block of the full information; fixed ones have no standard error (NaN).
            free = ~self.params_.index.isin(list(self._fixed))
            bse = np.full(len(self._params), np.nan)
            with np.errstate(invalid="ignore"):
                try:
                    var = np.diag(np.linalg.inv(info[np.ix_(free, free)]))
                    bse[free] = np.sqrt(np.where(var > 0, var, np.nan))
                except np.linalg.LinAlgError:
                    pass
            self._bse = pd.Series(bse, index=self.params_.index, name="std err")
        return self._bse

    # -- many series at once -----------------------------------------------------------------
    def _check_panel_fit(self):
        self._check_settings()
        if self.method != "mle":
            raise ValueError(f"panel fits use method='mle' (got {self.method!r}); fit series one by one for others")
        if getattr(self, "simple_differencing", False):
            raise ValueError("simple_differencing=True is not available for panel fits; fit series one by one")

    def _fit_panel(self, panel) -> dict:
        """One batched, compiled L-BFGS over all series
        (:func:`~probssm.fit.batched.maximize_likelihood_batched`), then one batched filter at
        the estimates; a fitted copy of the estimator per series."""
        ests, starts, datas = [], [], []
        hyper = self.get_params(deep=False)
        for i, sid in enumerate(panel.ids):
            est = type(self)(**hyper)
            data = panel.series_data(i, min_observed=est._min_observed())
            est._y, est._X, est._exog_columns, est._draws, est._panel = data, None, None, None, None
            try:
                est._prepare(data)
                starts.append(np.asarray(est._start_params(data.values), dtype=np.float64))
            except ValueError as err:  # name the series at fault
                raise ValueError(f"fitting series {sid!r}: {err}") from err
            ests.append(est)
            datas.append(data)
        template = ests[0]
        template._set_burn(starts[0])  # the burn depends on the structure only
        burn = template._burn
        T = panel.values.shape[1]
        length = compiled.bucket_length(T)
        Y = compiled.pad_time(panel.values.T, length, np.nan).T[:, :, None]
        aux = template._aux(None, 0, length)
        with jax.enable_x64(True):
            to_unconstrained, to_natural = compiled.panel_maps(template)
            theta0 = to_unconstrained(np.stack(starts))
            # L-BFGS in units of each series' starting values: its first steps are then of the
            # right size for every parameter (about 13 % fewer evaluations on structural models)
            units = np.where(np.abs(theta0) > 1e-8, np.abs(theta0), 1.0)
            res = maximize_likelihood_batched(
                compiled.in_units(compiled.objective(template, burn)), theta0 / units, Y, aux, units,
                in_axes=(0, None, 0),
            )
            params = to_natural(np.asarray(res.theta) * units)
            loglik, next_mean, next_cov = compiled.panel_filter(template, burn)(params, Y, aux, T)
            params, loglik, next_mean, next_cov, converged = map(
                np.asarray, (params, loglik, next_mean, next_cov, res.converged))
        for i, est in enumerate(ests):
            est._burn, est._diffuse_states = burn, template._diffuse_states
            est._store_fit(datas[i], params[i], loglik[i], (next_mean[i], next_cov[i]), burn)
            est.converged_ = bool(converged[i])
            est.cutoff_, est.is_fitted_ = datas[i].index[-1], True
        return dict(zip(panel.ids, ests))

    # -- after the data -----------------------------------------------------------------------
    def _model_after_data(self, exog, steps: int) -> LGSSM:
        """The model over the ``steps`` time steps past the data, its prior the prediction of
        the first of them given all the data (:math:`p(x_T \\mid y_{0:T-1})`)."""
        model = compiled.builder(self)(jnp.asarray(self._params), self._aux(exog, self._y.num_timesteps, steps))
        if model.num_timesteps is not None and model.num_timesteps != steps:
            raise ValueError(f"expected a model of {steps} steps, got {model.num_timesteps}")
        mean, cov = self._next
        return model.replace(initial_mean=jnp.asarray(mean), initial_cov=jnp.asarray(_psd_part(cov)),
                             initial_diffuse_cov=None)

    def _update(self, new, exog=None):
        with jax.enable_x64(True):
            res = kalman_filter(self._model_after_data(exog, new.num_timesteps), new.values)
            self._next = (np.asarray(res.next_mean), np.asarray(res.next_cov))

    # -- forecasting --------------------------------------------------------------------------
    def _forecast(self, horizon: int, exog=None):
        """Predictive moments of :math:`y` for the ``horizon`` steps past the data: the filter run
        over a stretch of missing observations. Returns ``(mean (h, m), cov (h, m, m))``."""
        with jax.enable_x64(True):
            model = self._model_after_data(exog, horizon)
            nan = jnp.full((horizon, self._y.values.shape[1]), jnp.nan)
            res = kalman_filter(model, nan)
            return np.asarray(res.observation_mean), np.asarray(res.observation_cov)

    def _forecast_moments(self, steps, exog=None):
        if self._draws is not None:
            return self._posterior_moments(steps, exog)
        idx = np.asarray(steps) - 1
        mean, cov = self._forecast(int(np.max(steps)), exog)
        return mean[idx], np.diagonal(cov[idx], axis1=-2, axis2=-1).copy()

    def _predict_quantiles(self, steps, alphas, exog=None):
        if self._draws is not None:
            return self._posterior_quantiles(steps, alphas, exog)
        return super()._predict_quantiles(steps, alphas, exog)

    def _sample(self, steps, n_samples, rng, exog=None):
        horizon = int(np.max(steps))
        with jax.enable_x64(True):
            key = jax.random.PRNGKey(int(rng.integers(0, 2**31 - 1)))
            if self._draws is None:
                _, obs = kalman_sample(self._model_after_data(exog, horizon), key, horizon,
                                       sample_shape=(n_samples,))
            else:
                obs = self._posterior_sample(horizon, n_samples, rng, key, exog)
        return np.asarray(obs)[:, np.asarray(steps) - 1, :]

    def _log_predictive(self, new, exog=None) -> float:
        with jax.enable_x64(True):
            if self._draws is not None:
                return self._posterior_log_predictive(new, exog)
            model = self._model_after_data(exog, new.num_timesteps)
            return float(kalman_filter(model, new.values).log_likelihood)

    # -- latent states --------------------------------------------------------------------------
    def _estimates(self, mean, cov, loglik) -> StateEstimates:
        return StateEstimates.from_moments(mean, cov, self._y.index, self._state_names(), loglik)

    def _filter(self) -> StateEstimates:
        y, aux, T = self._padded_data()
        with jax.enable_x64(True):
            model, burn = self._model(self._params, aux)
            res = kalman_filter(model, y, burn=burn)
            return self._estimates(res.mean[:T], res.cov[:T], res.log_likelihood)

    def _smooth(self) -> StateEstimates:
        y, aux, T = self._padded_data()
        with jax.enable_x64(True):
            model, burn = self._model(self._params, aux)
            res = kalman_smooth(model, y)
            loglik = jnp.sum(res.filtered.log_likelihood_terms[burn:])
            return self._estimates(res.mean[:T], res.cov[:T], loglik)

    # -- persistence --------------------------------------------------------------------------------
    def _fitted_state(self):
        meta = {
            "loglik_": self.loglik_, "aic_": self.aic_, "bic_": self.bic_, "hqic_": self.hqic_,
            "nobs_": self.nobs_, "converged_": bool(self.converged_), "burn": self._burn,
            "diffuse_states": self._diffuse_states, "fit_steps": self._fit_steps,
            "param_names": list(self.params_.index), "fixed": self._fixed,
        }
        arrays = {"params": self._params, "next_mean": self._next[0], "next_cov": self._next[1]}
        if self._draws is not None:
            arrays["posterior_draws"] = self._draws
            meta["divergences_"] = self.divergences_
        return meta, arrays

    def _restore_fitted_state(self, meta, arrays):
        self._params = arrays["params"]
        self._next = (arrays["next_mean"], arrays["next_cov"])
        self._burn = meta["burn"]
        self._diffuse_states = meta["diffuse_states"]
        for k in ("loglik_", "aic_", "bic_", "hqic_", "nobs_", "converged_"):
            setattr(self, k, meta[k])
        self.params_ = pd.Series(self._params, index=meta["param_names"], name="estimate")
        self._fixed = dict(meta.get("fixed", {}))  # saves from before fixed= hold none
        self.fixed_params_ = pd.Series(self._fixed, index=[n for n in meta["param_names"] if n in self._fixed],
                                       name="fixed", dtype=np.float64)
        self._bse, self._fit_steps = None, meta["fit_steps"]
        self._draws = None
        if "posterior_draws" in arrays:
            self._set_posterior(arrays["posterior_draws"], meta["param_names"])
            self.divergences_ = meta["divergences_"]

