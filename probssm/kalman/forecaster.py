"""Estimators on the linear-Gaussian engine: the shared machinery and :class:`KalmanFilter`.

:class:`LinearGaussianForecaster` turns a parameter vector into an :class:`LGSSM` (a subclass
hook) and implements the estimator contract with :mod:`probssm.kalman`'s functions: MLE fitting,
forecasting, filtering, smoothing, sampling, scoring. Structural models reuse it.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from scipy import stats

from .. import _data, diagnostics
from .._compile import jit
from ..base import BaseForecaster, StateEstimates
from ..fit import (
    cov_from_unconstrained, cov_to_unconstrained, maximize_likelihood, observed_information,
)
from ..fit.batched import maximize_likelihood_batched
from ..fit.bayes import half_cauchy_variance_prior, log_prior_from, posterior_summary, sample_posterior
from . import em as _em
from .inference import filter as kalman_filter
from .inference import log_likelihood as kalman_log_likelihood
from .inference import sample as kalman_sample
from .inference import smooth as kalman_smooth
from .model import LGSSM, approximate_diffuse, check_covariance, diffuse_rank

__all__ = ["LinearGaussianForecaster", "KalmanFilter"]

_INITIALIZATIONS = ("exact_diffuse", "approximate_diffuse")


class LinearGaussianForecaster(BaseForecaster):
    """Base for estimators whose model is an :class:`LGSSM` built from a parameter vector.

    Subclasses define ``_param_names(m)``, ``_start_params(values)`` (natural parameters),
    ``_to_unconstrained`` / ``_to_natural`` (bijections between natural parameters and
    :math:`\\mathbb R^k`), ``_build(params, aux)`` (an LGSSM, possibly with an exact diffuse
    prior) and ``_state_names()``. ``aux`` is a pytree of fixed arrays for a stretch of time
    (``_aux(exog, start, steps)``: exogenous values, the position of the first step and the
    number of steps), so the same
    ``_build`` gives the model over the data and over a forecast period.

    Fitted attributes: ``params_`` (Series of natural parameters), ``loglik_``, ``aic_``, ``bic_``,
    ``nobs_``, ``bse_`` (standard errors from the observed information), ``converged_``.
    """

    approximate_diffuse_variance = 1e6

    # -- hooks ----------------------------------------------------------------------------
    def _aux(self, exog, start, steps):
        """Fixed arrays ``_build`` needs for the ``steps`` time steps ``start, start+1, ...``
        (positions counted from the first observation) with exogenous values ``exog``
        ``(steps, k)`` (``None`` without regressors)."""
        return ()

    def _data_aux(self):
        return self._aux(self._X, 0, self._y.num_timesteps)

    def _state_names(self) -> list[str]:
        raise NotImplementedError

    # -- model building ---------------------------------------------------------------------
    def _structure(self):
        """Hashable description of everything but the parameter values that ``_build`` uses."""
        return (self.initialization,)

    def _model(self, params, aux=None, burn=None) -> tuple[LGSSM, int]:
        """The model with the chosen initialisation and its log-likelihood burn."""
        model = _builder(self)(jnp.asarray(params), self._data_aux() if aux is None else aux)
        if self.initialization == "approximate_diffuse":
            burn = self._burn if burn is None else burn
            return approximate_diffuse(model, self.approximate_diffuse_variance), burn
        return model, 0

    def _check_initialization(self):
        if self.initialization not in _INITIALIZATIONS:
            raise ValueError(
                f"initialization must be one of {_INITIALIZATIONS}, got {self.initialization!r}"
            )

    def _set_burn(self, params):
        with jax.enable_x64(True):
            model = _builder(self)(jnp.asarray(params), self._data_aux())
            self._diffuse_states = diffuse_rank(model)
            self._burn = self._diffuse_states if self.initialization == "approximate_diffuse" else 0

    # -- fitting ------------------------------------------------------------------------------
    def _prepare(self, data):
        """Validate hyper-parameters against the data before fitting (a hook)."""

    def fit(self, y, X=None, *, params=None, method=None, priors=None, num_warmup=500,
            num_samples=500, num_chains=2, random_state=None):
        """Fit to ``y`` (and exogenous ``X`` for models with regressors); returns ``self``.

        Parameters
        ----------
        y, X
            Data (see the estimator contract).
        params : mapping, Series or array, optional
            Known parameter values (by name, or in the order of ``params_``) used instead of
            estimates (statsmodels' ``model.smooth(params)``).
        method : {None, "mle", "nuts"}
            ``None``/``"mle"``: maximum likelihood (``KalmanFilter`` follows its own ``method``).
            ``"nuts"``: Bayesian fit with NumPyro's NUTS, started at the MLE; ``posterior_``
            holds the draws, ``posterior_summary_`` means, quantiles, ``r_hat`` and ESS, and
            ``params_`` the posterior means. Forecasts, intervals, samples and ``score`` then
            integrate over the posterior (a mixture over up to 200 draws).
        priors : dict, optional
            ``name -> prior`` on natural parameters (a NumPyro distribution or a log-density
            callable), overriding the defaults: half-Cauchy on standard deviations with the scale
            of :math:`\\Delta y`; flat on bounded parameters (AR/MA coefficients, cycle
            frequency and damping); :math:`N(0, (10 s)^2)` on location parameters, ``s`` the
            scale of ``y`` over that of the regressor.
        num_warmup, num_samples, num_chains, random_state
            NUTS settings (``random_state``: int seed).
        """
        if method not in (None, "mle", "nuts"):
            raise ValueError(f"method must be None, 'mle' or 'nuts', got {method!r}")
        if method != "nuts" and priors is not None:
            raise ValueError("priors are used only with method='nuts'")
        self._panel = None
        if self._univariate and _data.is_panel(y, univariate=True):
            if X is not None or params is not None or method == "nuts":
                raise ValueError("panel fits take no X, params or method='nuts'; fit series one by one for those")
            return self._fit_panel(_data.as_panel_data(y))
        self._fit_options = dict(
            params=params, method=method, priors=priors, num_warmup=int(num_warmup),
            num_samples=int(num_samples), num_chains=int(num_chains),
            seed=0 if random_state is None else int(random_state),
        )
        try:
            return super().fit(y, X)
        finally:
            self._fit_options = None

    def _fit(self, data):
        self._check_initialization()
        self._prepare(data)
        start = np.asarray(self._start_params(data.values), dtype=np.float64)
        self._set_burn(start)
        opts = getattr(self, "_fit_options", None) or {"params": None, "method": None}
        if opts["params"] is not None:
            params = self._given_params(opts["params"], data)
            self.converged_ = True
        else:
            params = self._estimate(data, start)
        self._draws = None
        if opts["method"] == "nuts":
            params = self._sample_posterior(data, params, opts)
        self._finish_fit(data, params)

    # -- many series at once -----------------------------------------------------------------
    _univariate = False  # univariate models read a DataFrame of several columns as a panel

    def _fit_panel(self, panel):
        """One batched, compiled L-BFGS over all series (:func:`~probssm.fit.batched.maximize_likelihood_batched`),
        then one batched filter at the estimates; a fitted copy of the estimator per series."""
        if getattr(self, "simple_differencing", False):
            raise ValueError("simple_differencing=True is not available for panel fits; fit series one by one")
        ests, starts, datas = [], [], []
        hyper = self.get_params()
        self._check_initialization()
        for i in range(len(panel.ids)):
            est = type(self)(**hyper)
            data = panel.series_data(i, min_observed=est._min_observed())
            est._y, est._X, est._exog_columns, est._draws = data, None, None, None
            try:
                est._prepare(data)
                starts.append(np.asarray(est._start_params(data.values), dtype=np.float64))
            except ValueError as err:  # name the series at fault
                raise ValueError(f"fitting series {panel.ids[i]!r}: {err}") from err
            ests.append(est)
            datas.append(data)
        template = ests[0]
        template._set_burn(starts[0])  # the burn depends on the structure only
        burn, aux = template._burn, template._data_aux()
        Y = np.asarray(panel.values[:, :, None], dtype=np.float64)
        with jax.enable_x64(True):
            to_unconstrained, to_natural = _panel_maps(template)
            theta0 = to_unconstrained(np.stack(starts))
            # L-BFGS in units of each series' starting values: its first steps are then of the
            # right size for every parameter (about 13 % fewer evaluations on structural models)
            units = np.where(np.abs(theta0) > 1e-8, np.abs(theta0), 1.0)
            res = maximize_likelihood_batched(_in_units(_objective(template, burn)), theta0 / units, Y, aux,
                                              units, in_axes=(0, None, 0))
            params = to_natural(np.asarray(res.theta) * units)
            loglik, next_mean, next_cov = _panel_filter(template, burn)(params, Y, aux)
            params, loglik, next_mean, next_cov, converged = map(
                np.asarray, (params, loglik, next_mean, next_cov, res.converged))
        for i, est in enumerate(ests):
            est._burn, est._diffuse_states = burn, template._diffuse_states
            est._store_fit(datas[i], params[i], loglik[i], (next_mean[i], next_cov[i]), burn)
            est.converged_ = bool(converged[i])
            est.cutoff_, est.is_fitted_ = datas[i].index[-1], True
        self._panel = panel
        self.estimators_ = dict(zip(panel.ids, ests))
        self.params_ = pd.DataFrame(params, index=pd.Index(panel.ids, name="series_id"),
                                    columns=template.params_.index)
        for attr in ("loglik_", "aic_", "bic_", "hqic_", "nobs_", "converged_"):
            setattr(self, attr, pd.Series({k: getattr(e, attr) for k, e in self.estimators_.items()}, name=attr))
        self.cutoff_ = panel.index[-1]
        self.is_fitted_ = True
        return self

    def _panel_concat(self, name, *args, **kwargs):
        """``name(*args)`` of every series' estimator, stacked under a ``series_id`` index level."""
        parts = [getattr(est, name)(*args, **kwargs) for est in self.estimators_.values()]
        return pd.concat(parts, keys=list(self.estimators_), names=["series_id"])

    def _is_panel(self) -> bool:
        return getattr(self, "_panel", None) is not None

    def _single_series_only(self, name):
        if self._is_panel():
            raise ValueError(
                f"{name}() works on one series; this estimator was fitted on a panel: call it on "
                "estimators_[series_id]"
            )

    def predict(self, fh, X=None):
        """Point forecasts; for a panel fit a Series indexed by ``(series_id, time)``."""
        if self._is_panel():
            return self._panel_concat("predict", fh, X=X)
        return super().predict(fh, X)

    def predict_interval(self, fh, X=None, coverage=0.9):
        """Prediction intervals; for a panel fit rows indexed by ``(series_id, time)``."""
        if self._is_panel():
            return self._panel_concat("predict_interval", fh, X=X, coverage=coverage)
        return super().predict_interval(fh, X, coverage)

    def predict_quantiles(self, fh, X=None, alpha=(0.05, 0.5, 0.95)):
        """Predictive quantiles; for a panel fit rows indexed by ``(series_id, time)``."""
        if self._is_panel():
            return self._panel_concat("predict_quantiles", fh, X=X, alpha=alpha)
        return super().predict_quantiles(fh, X, alpha)

    def predict_var(self, fh, X=None):
        """Predictive variances; for a panel fit rows indexed by ``(series_id, time)``."""
        if self._is_panel():
            return self._panel_concat("predict_var", fh, X=X)
        return super().predict_var(fh, X)

    def sample(self, fh, n_samples: int = 100, random_state=None, X=None):
        """Sample paths; for a panel fit rows indexed by ``(series_id, sample, time)``."""
        if self._is_panel():
            rng = _data.random_generator(random_state)
            parts = [est.sample(fh, n_samples, random_state=rng, X=X) for est in self.estimators_.values()]
            return pd.concat(parts, keys=list(self.estimators_), names=["series_id"])
        return super().sample(fh, n_samples, random_state, X)

    def update(self, y_new, X_new=None):
        self._single_series_only("update")
        return super().update(y_new, X_new)

    def score(self, y, X=None):
        self._single_series_only("score")
        return super().score(y, X)

    def filter(self):
        """Filtered states; for a panel fit a dict ``series_id -> StateEstimates``."""
        if self._is_panel():
            return {k: est.filter() for k, est in self.estimators_.items()}
        return super().filter()

    def smooth(self):
        """Smoothed states; for a panel fit a dict ``series_id -> StateEstimates``."""
        if self._is_panel():
            return {k: est.smooth() for k, est in self.estimators_.items()}
        return super().smooth()

    def save(self, path):
        self._single_series_only("save")
        return super().save(path)

    def plot(self, *args, **kwargs):
        self._single_series_only("plot")
        return super().plot(*args, **kwargs)

    # -- Bayesian fitting --------------------------------------------------------------------
    def _param_kind(self, name: str) -> str:
        """``"variance"``, ``"bounded"`` (flat prior) or ``"location"``, for default priors."""
        return "variance" if name.startswith("sigma2") else "location"

    def _log_priors(self, data, given) -> list:
        names = self._param_names(data.values.shape[1])
        given = dict(given or {})
        unknown = sorted(set(given) - set(names))
        if unknown:
            raise ValueError(f"priors: unknown parameters {unknown}; the model has {names}")
        y = data.values[:, 0]
        y = y[~np.isnan(y)]
        dy = np.diff(y) if len(y) > 2 else y
        scale_dy = max(float(np.std(dy)), 1e-8 * max(abs(float(np.mean(y))), 1.0))
        scale_y = max(float(np.std(y)) + abs(float(np.mean(y))), 1e-8)
        exog_sd = dict(zip(self._exog_columns or (), np.std(self._X, axis=0))) if self._X is not None else {}
        out = []
        for name in names:
            if name in given:
                out.append(log_prior_from(given[name]))
                continue
            kind = self._param_kind(name)
            if kind == "variance":
                out.append(half_cauchy_variance_prior(scale_dy))
            elif kind == "bounded":
                out.append(lambda v: jnp.zeros_like(v))
            else:
                column = name.split(".", 1)[-1]
                sd = 10 * scale_y / max(float(exog_sd.get(column, 1.0)), 1e-12)
                out.append(lambda v, sd=sd: -0.5 * (v / sd) ** 2 - jnp.log(sd * np.sqrt(2 * np.pi)))
        return out

    def _sample_posterior(self, data, mle, opts) -> np.ndarray:
        names = self._param_names(data.values.shape[1])
        with jax.enable_x64(True):
            theta0 = np.asarray(self._to_unconstrained(jnp.asarray(mle)))
            draws, divergences = sample_posterior(
                _objective(self, self._burn, natural=True), self._to_natural,
                self._log_priors(data, opts["priors"]), theta0, jnp.asarray(data.values), self._data_aux(),
                num_warmup=opts["num_warmup"], num_samples=opts["num_samples"],
                num_chains=opts["num_chains"], seed=opts["seed"],
            )
        self._set_posterior(draws, names)
        self.divergences_ = divergences
        mean = self.posterior_.mean().to_numpy()
        try:
            return self._given_params(mean, data)
        except ValueError:  # the mean left the admissible region: the draw nearest to it
            flat = self.posterior_.to_numpy()
            return flat[np.argmin(np.sum((flat - mean) ** 2, axis=1))]

    def _set_posterior(self, draws, names):
        self._draws = np.asarray(draws)
        self.posterior_ = pd.DataFrame(self._draws.reshape(-1, len(names)), columns=names)
        self.posterior_summary_ = posterior_summary(self._draws, names)
        self._draw_cache = None

    def _predictive_draws(self) -> np.ndarray:
        """Up to 200 posterior draws, evenly thinned, for predictive mixtures ``(S, k)``."""
        flat = self._draws.reshape(-1, self._draws.shape[-1])
        return flat[np.unique(np.linspace(0, len(flat) - 1, min(len(flat), 200)).astype(int))]

    def _draw_states(self):
        """Per-draw prediction of the state after the data, :math:`p(x_T \\mid y, \\theta_s)`."""
        key = self._y.num_timesteps
        if self._draw_cache is None or self._draw_cache[0] != key:
            y, aux = jnp.asarray(self._y.values), self._data_aux()

            def one(p):
                model, _ = self._model(p, aux)
                res = kalman_filter(model, y, method="sequential")
                return res.next_mean, res.next_cov

            with jax.enable_x64(True):
                draws = jnp.asarray(self._predictive_draws())
                mean, cov = jax.jit(jax.vmap(one))(draws)
            self._draw_cache = (key, draws, mean, cov)
        return self._draw_cache[1:]

    def _future_models(self, exog, steps):
        """The forecast-period model of every predictive draw (a batched LGSSM)."""
        draws, mean, cov = self._draw_states()
        aux = self._aux(exog, self._y.num_timesteps, steps)

        def one(p, m, P):
            model = self._build(p, aux)
            return model.replace(initial_mean=m, initial_cov=P, initial_diffuse_cov=None)

        return jax.vmap(one)(draws, mean, cov)

    def _posterior_forecast(self, horizon, exog):
        """Per-draw predictive moments ``(S, h, m)`` and ``(S, h, m, m)``."""
        nan = jnp.full((horizon, self._y.values.shape[1]), jnp.nan)
        with jax.enable_x64(True):
            models = self._future_models(exog, horizon)
            res = jax.vmap(lambda m: kalman_filter(m, nan, method="sequential"))(models)
            return np.asarray(res.observation_mean), np.asarray(res.observation_cov)

    def _given_params(self, given, data) -> np.ndarray:
        names = self._param_names(data.values.shape[1])
        if isinstance(given, (dict, pd.Series)):
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
        """Maximum likelihood over the unconstrained parameters."""
        objective = _objective(self, self._burn)
        with jax.enable_x64(True):
            theta0 = np.asarray(self._to_unconstrained(jnp.asarray(start)))
            res = maximize_likelihood(objective, theta0, jnp.asarray(data.values), self._data_aux())
            self.converged_ = res.converged
            return np.asarray(self._to_natural(jnp.asarray(res.theta)))

    def _finish_fit(self, data, params):
        params = np.asarray(params, dtype=np.float64)
        self._params = params
        with jax.enable_x64(True):
            model, burn = self._model(params)
            result = kalman_filter(model, data.values, burn=burn)
        self._store_fit(data, params, float(result.log_likelihood),
                        (np.asarray(result.next_mean), np.asarray(result.next_cov)), burn)

    def _store_fit(self, data, params, loglik, next_state, burn):
        """Set the fitted attributes from the estimates, their log-likelihood and the prediction
        ``(mean, cov)`` of the state after the data."""
        params = np.asarray(params, dtype=np.float64)
        self._params, self.loglik_, self._next = params, float(loglik), next_state
        self._y = data
        names = self._param_names(data.values.shape[1])
        self.params_ = pd.Series(params, index=names, name="estimate")
        self._bse, self._fit_steps = None, data.num_timesteps
        # statsmodels' conventions: exact diffuse states count as estimated parameters, and the
        # burned (approximate diffuse) terms do not count as observations.
        k = len(params) + (self._diffuse_states if self.initialization == "exact_diffuse" else 0)
        self.nobs_ = int(np.sum(~np.all(np.isnan(data.values), axis=1)))
        nobs_eff = self.nobs_ - burn
        self.aic_ = -2 * self.loglik_ + 2 * k
        self.bic_ = -2 * self.loglik_ + k * np.log(nobs_eff)
        self.hqic_ = -2 * self.loglik_ + 2 * k * np.log(np.log(nobs_eff))

    @property
    def bse_(self) -> pd.Series:
        """Standard errors: square roots of the diagonal of the inverse observed information
        :math:`-\\nabla^2 \\log L(\\hat\\theta)` in the natural parameters (``jax.hessian``),
        computed on first use (the Hessian's compilation is the slowest part of a fit); NaN where
        the information is not positive definite (estimates on a boundary)."""
        self._check_is_fitted()
        if self._bse is None:
            steps = self._fit_steps  # the data of the fit, not what update() added since
            X = None if self._X is None else self._X[:steps]
            with jax.enable_x64(True):
                info = observed_information(
                    _objective(self, self._burn, natural=True), self._params,
                    jnp.asarray(self._y.values[:steps]), self._aux(X, 0, steps),
                ) if len(self._params) else np.zeros((0, 0))
            with np.errstate(invalid="ignore"):
                try:
                    var = np.diag(np.linalg.inv(info))
                    bse = np.sqrt(np.where(var > 0, var, np.nan))
                except np.linalg.LinAlgError:
                    bse = np.full(len(self._params), np.nan)
            self._bse = pd.Series(bse, index=self.params_.index, name="std err")
        return self._bse

    def _model_after_data(self, exog, steps: int) -> LGSSM:
        """The model over the ``steps`` time steps past the data, its prior the prediction of
        the first of them given all the data (:math:`p(x_T \\mid y_{0:T-1})`)."""
        model = _builder(self)(jnp.asarray(self._params), self._aux(exog, self._y.num_timesteps, steps))
        if model.num_timesteps is not None and model.num_timesteps != steps:
            raise ValueError(f"expected a model of {steps} steps, got {model.num_timesteps}")
        mean, cov = map(jnp.asarray, self._next)
        return model.replace(
            initial_mean=mean, initial_cov=cov, initial_diffuse_cov=None,
        )

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
        idx = np.asarray(steps) - 1
        if self._draws is not None:  # moments of the posterior mixture
            mean, cov = self._posterior_forecast(int(np.max(steps)), exog)
            var = np.diagonal(cov, axis1=-2, axis2=-1)
            return mean.mean(0)[idx], (var.mean(0) + mean.var(0))[idx]
        mean, cov = self._forecast(int(np.max(steps)), exog)
        return mean[idx], np.diagonal(cov[idx], axis1=-2, axis2=-1).copy()

    def _predict_quantiles(self, steps, alphas, exog=None):
        if self._draws is None:
            return super()._predict_quantiles(steps, alphas, exog)
        mean, cov = self._posterior_forecast(int(np.max(steps)), exog)
        idx = np.asarray(steps) - 1
        sd = np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))[:, idx]
        return _mixture_quantiles(mean[:, idx], sd, np.asarray(alphas))

    def _sample(self, steps, n_samples, rng, exog=None):
        horizon = int(np.max(steps))
        with jax.enable_x64(True):
            key = jax.random.PRNGKey(int(rng.integers(0, 2**31 - 1)))
            if self._draws is None:
                model = self._model_after_data(exog, horizon)
                _, obs = kalman_sample(model, key, horizon, sample_shape=(n_samples,))
            else:  # each path from its own posterior draw
                models = self._future_models(exog, horizon)
                pick = jnp.asarray(rng.integers(0, models.initial_mean.shape[0], n_samples))
                keys = jax.random.split(key, n_samples)

                def one(i, k):
                    return kalman_sample(jax.tree_util.tree_map(lambda a: a[i], models), k, horizon)[1]

                obs = jax.vmap(one)(pick, keys)
        return np.asarray(obs)[:, np.asarray(steps) - 1, :]

    def _log_predictive(self, new, exog=None) -> float:
        with jax.enable_x64(True):
            if self._draws is None:
                model = self._model_after_data(exog, new.num_timesteps)
                return float(kalman_filter(model, new.values).log_likelihood)
            models = self._future_models(exog, new.num_timesteps)
            ll = jax.vmap(lambda m: kalman_filter(m, new.values, method="sequential").log_likelihood)(models)
            return float(jax.scipy.special.logsumexp(ll) - np.log(ll.shape[0]))

    # -- latent states --------------------------------------------------------------------------
    def _estimates(self, mean, cov, loglik) -> StateEstimates:
        names = self._state_names()
        mean, cov = np.asarray(mean), np.asarray(cov)
        std = np.sqrt(np.clip(np.diagonal(cov, axis1=-2, axis2=-1), 0, None))
        return StateEstimates(
            mean=pd.DataFrame(mean, index=self._y.index, columns=names),
            std=pd.DataFrame(std, index=self._y.index, columns=names),
            cov=cov,
            log_likelihood=float(loglik),
        )

    def _filter(self) -> StateEstimates:
        with jax.enable_x64(True):
            model, burn = self._model(self._params)
            res = kalman_filter(model, self._y.values, burn=burn)
            return self._estimates(res.mean, res.cov, res.log_likelihood)

    def _smooth(self) -> StateEstimates:
        with jax.enable_x64(True):
            model, burn = self._model(self._params)
            res = kalman_smooth(model, self._y.values)
            loglik = jnp.sum(res.filtered.log_likelihood_terms[burn:])
            return self._estimates(res.mean, res.cov, loglik)

    def smoothed_signal(self) -> pd.DataFrame:
        """Smoothed mean of the noise-free signal :math:`H_t x_t + d_t`, one column per variable,
        and its standard deviation (columns ``(variable, "mean"|"std")``)."""
        self._check_is_fitted()
        with jax.enable_x64(True):
            model, _ = self._model(self._params)
            res = kalman_smooth(model, self._y.values)
            H, d = model.observation_matrix, model.observation_offset
            mean = np.asarray(jnp.einsum("...ij,tj->ti", H, res.mean) + d)
            var = np.asarray(jnp.einsum("...ij,tjk,...lk->til", H, res.cov, H))
        std = np.sqrt(np.clip(np.diagonal(var, axis1=-2, axis2=-1), 0, None))
        cols = {}
        for j, v in enumerate(self._y.columns):
            cols[(v, "mean")] = mean[:, j]
            cols[(v, "std")] = std[:, j]
        return pd.DataFrame(cols, index=self._y.index)

    # -- residual diagnostics ------------------------------------------------------------------------
    def standardized_residuals(self) -> pd.DataFrame:
        """One-step forecast errors standardised by their predictive covariance,
        :math:`L_t^{-1}(y_t - \\hat y_{t|t-1})` with :math:`L_t L_t^T = F_t`, one column per
        variable, NaN where ``y`` is missing. The first ``max(burn, diffuse steps)`` rows are left
        out, as statsmodels does for its residual tests."""
        self._check_is_fitted()
        if self._is_panel():
            return self._panel_concat("standardized_residuals")
        with jax.enable_x64(True):
            model, burn = self._model(self._params)
            res = kalman_filter(model, self._y.values, burn=burn)
        skip = max(burn, diagnostics.nobs_diffuse(res))
        resid = diagnostics.standardized_residuals(
            self._y.values, np.asarray(res.observation_mean), np.asarray(res.observation_cov), skip=skip,
        )
        return pd.DataFrame(resid, index=self._y.index[skip:], columns=self._y.columns)

    def diagnostics(self, lags: int = 1) -> pd.DataFrame:
        """Ljung-Box :math:`Q` at lag ``lags``, Jarque-Bera, skew, kurtosis and the
        heteroskedasticity :math:`H` test of :meth:`standardized_residuals`, with p-values (the
        numbers of statsmodels' results summary); one row per variable."""
        self._check_is_fitted()
        if self._is_panel():
            return self._panel_concat("diagnostics", lags=lags).droplevel(-1)
        return diagnostics.diagnostics_table(self.standardized_residuals(), lags=lags)

    def plot_diagnostics(self, variable=0, lags: int = 10, fig=None):
        """statsmodels' four residual panels: standardised residuals, histogram with a KDE and
        :math:`N(0,1)`, normal Q-Q plot, correlogram. Returns the matplotlib Figure."""
        self._single_series_only("plot_diagnostics")
        resid = self.standardized_residuals()
        return diagnostics.plot_diagnostics(resid, index=resid.index, variable=variable, lags=lags, fig=fig)

    # -- reporting -------------------------------------------------------------------------------
    def summary(self) -> str:
        """A text table of the estimates (with standard errors, z, p-values and 95 % intervals),
        the log-likelihood and information criteria."""
        self._check_is_fitted()
        self._single_series_only("summary")
        z = self.params_ / self.bse_
        p = 2 * stats.norm.sf(np.abs(z))
        table = pd.DataFrame({
            "coef": self.params_, "std err": self.bse_, "z": z, "P>|z|": p,
            "[0.025": self.params_ - 1.959964 * self.bse_, "0.975]": self.params_ + 1.959964 * self.bse_,
        })
        head = [
            f"{type(self).__name__} results",
            f"  observations: {self.nobs_}    initialization: {self.initialization}",
            f"  log-likelihood: {self.loglik_:.5f}    AIC: {self.aic_:.4f}    BIC: {self.bic_:.4f}"
            f"    HQIC: {self.hqic_:.4f}",
            f"  converged: {self.converged_}",
            "",
        ]
        tests = self.diagnostics().iloc[0]
        foot = [
            "",
            f"  Ljung-Box (L1) Q: {tests['ljung_box']:.3f} (p {tests['ljung_box_pvalue']:.3f})"
            f"    Jarque-Bera: {tests['jarque_bera']:.3f} (p {tests['jarque_bera_pvalue']:.3f})"
            f"    Heteroskedasticity H: {tests['heteroskedasticity']:.3f} (p {tests['heteroskedasticity_pvalue']:.3f})",
        ]
        return "\n".join(head) + table.to_string(float_format=lambda v: f"{v:.6g}") + "\n".join(foot)

    # -- persistence --------------------------------------------------------------------------------
    def _fitted_state(self):
        meta = {
            "loglik_": self.loglik_, "aic_": self.aic_, "bic_": self.bic_, "hqic_": self.hqic_,
            "nobs_": self.nobs_, "converged_": bool(self.converged_), "burn": self._burn,
            "diffuse_states": self._diffuse_states, "fit_steps": self._fit_steps,
            "param_names": list(self.params_.index),
        }
        arrays = {
            "params": self._params,
            "next_mean": self._next[0], "next_cov": self._next[1],
        }
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
        self._bse, self._fit_steps = None, meta["fit_steps"]
        self._draws = None
        if "posterior_draws" in arrays:
            self._set_posterior(arrays["posterior_draws"], meta["param_names"])
            self.divergences_ = meta["divergences_"]


def _mixture_quantiles(mean, sd, alphas, iterations=80):
    """Quantiles of the equal-weight Gaussian mixture over axis 0 of ``mean``/``sd`` ``(S, ...)``,
    by bisection on its CDF; returns ``(..., len(alphas))``."""
    from scipy import stats

    lo = (mean - 10 * sd).min(0)[..., None] * np.ones(len(alphas))
    hi = (mean + 10 * sd).max(0)[..., None] * np.ones(len(alphas))
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        cdf = stats.norm.cdf((mid[None] - mean[..., None]) / sd[..., None]).mean(0)
        below = cdf < alphas
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return 0.5 * (lo + hi)


def _log_likelihood(theta, y, aux, *, template, natural, burn):
    params = theta if natural else template._to_natural(theta)
    model, _ = template._model(params, aux, burn=burn)
    return kalman_log_likelihood(model, y, burn=burn)


_OBJECTIVES: dict = {}


def _objective(est, burn, natural=False):
    """log L over unconstrained (or natural) parameters, as ``f(theta, y, aux)``.

    One function object per model structure (class and ``_structure()``), so the compiled
    gradient is reused across fits of models of the same shape.
    """
    key = (type(est), est._structure(), burn, natural)
    if key not in _OBJECTIVES:
        _OBJECTIVES[key] = partial(_log_likelihood, template=est, natural=natural, burn=burn)
    return _OBJECTIVES[key]


def _objective_in_units(u, y, aux, units, *, objective):
    return objective(u * units, y, aux)


def _in_units(objective):
    """``objective`` of ``theta = u * units`` as a function of ``u`` (cached per objective)."""
    key = ("in units", objective)
    if key not in _OBJECTIVES:
        _OBJECTIVES[key] = partial(_objective_in_units, objective=objective)
    return _OBJECTIVES[key]


_COMPILED: dict = {}


def _builder(est):
    """``est._build`` jitted, once per model structure (``_build`` reads the estimator only
    through ``_structure()``; data and fixed matrices come in ``aux``). Building a model op by op
    dispatches ~70 operations (7 ms for a structural model, every forecast of every series; the
    first time each compiles); one program compiles once. Plain ``jax.jit`` (no compiler
    options): it is also called inside traced objectives."""
    key = ("build", type(est), est._structure())
    if key not in _COMPILED:
        _COMPILED[key] = jax.jit(est._build)
    return _COMPILED[key]


def _panel_maps(est):
    """Batched ``(to_unconstrained, to_natural)`` parameter maps returning NumPy arrays ``(B, k)``,
    jitted once per model structure."""
    key = ("maps", type(est), est._structure())
    if key not in _COMPILED:
        maps = [jit(jax.vmap(f)) for f in (est._to_unconstrained, est._to_natural)]
        _COMPILED[key] = tuple(lambda x, f=f: np.asarray(f(jnp.asarray(x))) for f in maps)
    return _COMPILED[key]


def _filter_at(params, y, aux, *, template, burn):
    model, _ = template._model(params, aux, burn=burn)
    res = kalman_filter(model, y, method="sequential", burn=burn)
    return res.log_likelihood, res.next_mean, res.next_cov


def _panel_filter(est, burn):
    """``(params (B, k), Y (B, T, 1), aux) -> (log-likelihoods, next means, next covariances)``
    for a panel, jitted once per model structure (as :func:`_objective`)."""
    key = ("panel filter", type(est), est._structure(), burn)
    if key not in _COMPILED:
        one = partial(_filter_at, template=est, burn=burn)
        _COMPILED[key] = jit(jax.vmap(one, in_axes=(0, 0, None)))
    return _COMPILED[key]


_MATRICES = ("transition_matrix", "transition_cov", "observation_matrix", "observation_cov", "initial_mean")
_COVS = ("transition_cov", "observation_cov")


class KalmanFilter(LinearGaussianForecaster):
    """A linear-Gaussian state-space model whose matrices you give; ``fit`` estimates the ones
    named in ``estimate`` by maximum likelihood (``method="mle"``) or EM (``method="em"``).

    .. math::

        x_0 \\sim N(\\mu_0, P_0),\\quad y_t = H x_t + \\varepsilon_t,\\ \\varepsilon_t \\sim N(0, R),
        \\quad x_{t+1} = F x_t + \\eta_t,\\ \\eta_t \\sim N(0, Q)

    Parameters
    ----------
    transition_matrix : array of shape (n, n)
        :math:`F`.
    transition_cov : array of shape (n, n)
        :math:`Q`, positive semi-definite.
    observation_matrix : array of shape (m, n)
        :math:`H`.
    observation_cov : array of shape (m, m)
        :math:`R`, positive semi-definite.
    initial_mean : array of shape (n,), optional
        :math:`\\mu_0` (zeros by default).
    initial_cov : array of shape (n, n), optional
        :math:`P_0`. If omitted the prior is diffuse (exact, or approximate per
        ``initialization``).
    estimate : tuple of str
        Which of ``transition_matrix``, ``transition_cov``, ``observation_matrix``,
        ``observation_cov``, ``initial_mean`` to estimate (starting from the given values).
        Empty: ``fit`` only filters with the given matrices.
    method : {"mle", "em"}
        MLE: L-BFGS with exact gradients; covariances parameterised by log-Cholesky factors.
        EM: closed-form M-steps (Shumway & Stoffer 1982); needs a proper prior (``initial_cov``)
        and, when estimating ``observation_*``, rows that are either fully observed or fully missing.
    initialization : {"exact_diffuse", "approximate_diffuse"}
        Used when ``initial_cov`` is omitted.
    max_iter : int
        Maximum L-BFGS or EM iterations.
    tol : float
        EM stops when the log-likelihood improves by less than ``tol`` (relative).
    """

    def __init__(
        self,
        transition_matrix=None,
        transition_cov=None,
        observation_matrix=None,
        observation_cov=None,
        initial_mean=None,
        initial_cov=None,
        estimate=(),
        method="mle",
        initialization="exact_diffuse",
        max_iter=500,
        tol=1e-8,
    ):
        self.transition_matrix = transition_matrix
        self.transition_cov = transition_cov
        self.observation_matrix = observation_matrix
        self.observation_cov = observation_cov
        self.initial_mean = initial_mean
        self.initial_cov = initial_cov
        self.estimate = estimate
        self.method = method
        self.initialization = initialization
        self.max_iter = max_iter
        self.tol = tol

    # -- validation of the user's matrices ---------------------------------------------------
    def _matrices(self, m_data: int) -> dict:
        given = {k: getattr(self, k) for k in ("transition_matrix", "transition_cov", "observation_matrix", "observation_cov")}
        missing = [k for k, v in given.items() if v is None]
        if missing:
            raise ValueError(f"KalmanFilter needs {missing}; pass them to the constructor")
        mats = {k: np.array(v, dtype=np.float64, ndmin=2) for k, v in given.items()}
        n = mats["transition_matrix"].shape[-1]
        expect = {
            "transition_matrix": (n, n), "transition_cov": (n, n),
            "observation_matrix": (m_data, n), "observation_cov": (m_data, m_data),
        }
        for k, shape in expect.items():
            if mats[k].shape != shape:
                raise ValueError(
                    f"{k}: expected shape {shape} (n={n} states from transition_matrix, m={m_data} "
                    f"variables in y), got {mats[k].shape}"
                )
        mats["initial_mean"] = (
            np.zeros(n) if self.initial_mean is None else np.array(self.initial_mean, dtype=np.float64).reshape(-1)
        )
        if mats["initial_mean"].shape != (n,):
            raise ValueError(f"initial_mean: expected shape ({n},), got {mats['initial_mean'].shape}")
        if self.initial_cov is not None:
            mats["initial_cov"] = np.array(self.initial_cov, dtype=np.float64, ndmin=2)
            if mats["initial_cov"].shape != (n, n):
                raise ValueError(f"initial_cov: expected shape ({n}, {n}), got {mats['initial_cov'].shape}")
        for k in ("transition_cov", "observation_cov", "initial_cov"):
            if k in mats:
                check_covariance(mats[k], k)
        return mats

    def _check_hyper(self, m_data):
        est = tuple(self.estimate) if not isinstance(self.estimate, str) else (self.estimate,)
        bad = [e for e in est if e not in _MATRICES]
        if bad:
            raise ValueError(f"estimate: unknown names {bad}; choose among {_MATRICES}")
        if self.method not in ("mle", "em"):
            raise ValueError(f"method must be 'mle' or 'em', got {self.method!r}")
        self._estimated = est
        self._base = self._matrices(m_data)

    # -- parameterisation: natural params are the flattened estimated matrices -----------------
    def _param_names(self, m):
        names = []
        for k in self._estimated:
            shape = self._base[k].shape
            names += [f"{k}[{','.join(map(str, ix))}]" for ix in np.ndindex(*shape)]
        return names

    def _aux(self, exog, start, steps):
        return {k: jnp.asarray(v) for k, v in self._base.items()}

    def _unpack(self, params, aux):
        mats = dict(aux)
        offset = 0
        for k in self._estimated:
            size = int(np.prod(self._base[k].shape))
            mats[k] = jnp.reshape(params[offset:offset + size], self._base[k].shape)
            offset += size
        return mats

    def _start_params(self, values):
        return np.concatenate([self._base[k].reshape(-1) for k in self._estimated]) if self._estimated else np.zeros(0)

    def _to_unconstrained(self, params):
        parts, offset = [], 0
        for k in self._estimated:
            size = int(np.prod(self._base[k].shape))
            block = params[offset:offset + size]
            if k in _COVS:
                d = self._base[k].shape[0]
                cov = jnp.reshape(block, (d, d))
                cov = cov + 1e-9 * jnp.trace(cov) / d * jnp.eye(d)
                block = cov_to_unconstrained(cov)
            parts.append(block)
            offset += size
        return jnp.concatenate(parts) if parts else jnp.zeros(0)

    def _to_natural(self, theta):
        parts, offset = [], 0
        for k in self._estimated:
            if k in _COVS:
                d = self._base[k].shape[0]
                size = d * (d + 1) // 2
                parts.append(cov_from_unconstrained(theta[offset:offset + size], d).reshape(-1))
            else:
                size = int(np.prod(self._base[k].shape))
                parts.append(theta[offset:offset + size])
            offset += size
        return jnp.concatenate(parts) if parts else jnp.zeros(0)

    def _build(self, params, aux):
        mats = self._unpack(params, aux)
        n = mats["transition_matrix"].shape[-1]
        if "initial_cov" in mats:
            p0, p_inf = mats["initial_cov"], jnp.zeros((n, n))
        else:
            p0, p_inf = jnp.zeros((n, n)), jnp.eye(n)
        return LGSSM(
            mats["transition_matrix"], mats["transition_cov"], mats["observation_matrix"],
            mats["observation_cov"], mats["initial_mean"], p0, initial_diffuse_cov=p_inf,
        )

    def _state_names(self):
        return [f"state_{i}" for i in range(self._base["transition_matrix"].shape[0])]

    def _structure(self):
        shapes = tuple((k, self._base[k].shape) for k in sorted(self._base))
        return (self.initialization, self._estimated, shapes)

    # -- fitting ---------------------------------------------------------------------------------
    def _prepare(self, data):
        self._check_hyper(data.values.shape[1])

    def _estimate(self, data, start):
        if not self._estimated:
            self.converged_ = True
            return start
        if self.method == "em":
            return self._em(data)
        return super()._estimate(data, start)

    def _em(self, data) -> np.ndarray:
        if "initial_cov" not in self._base:
            raise ValueError("method='em' needs a proper prior: pass initial_cov")
        partial_rows = np.any(np.isnan(data.values), axis=1) & ~np.all(np.isnan(data.values), axis=1)
        if partial_rows.any() and {"observation_matrix", "observation_cov"} & set(self._estimated):
            raise ValueError(
                "method='em' estimates observation_matrix/observation_cov only from rows that are "
                f"fully observed or fully missing; row {int(np.argmax(partial_rows))} is partly "
                "missing. Use method='mle'."
            )
        with jax.enable_x64(True):
            model = self._build(jnp.asarray(self._start_params(data.values)), self._data_aux())
            model, history = _em.fit_em(
                model, jnp.asarray(data.values), self._estimated, max_iter=self.max_iter, tol=self.tol
            )
            self.em_log_likelihoods_ = np.asarray(history)
            self.converged_ = len(history) < self.max_iter
            return np.concatenate([np.asarray(getattr(model, k)).reshape(-1) for k in self._estimated])

    def _restore_fitted_state(self, meta, arrays):
        self._check_hyper(self._y.values.shape[1])
        super()._restore_fitted_state(meta, arrays)
