"""``GaussianProcess``: a scikit-learn-style temporal GP on the forecasting contract."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from .. import _data, _persistence, kalman
from .._compile import use_persistent_cache
from ..base import BaseForecaster, StateEstimates, per_series, single_series
from . import inference
from .fitting import fit_hyperparameters
from .kernels.base import as_times
from .likelihoods import Gaussian, resolve_likelihood
from .model import check_kernel, state_space_model
from .panel import fit_panel
from .bayes import PosteriorMixin
from .time_axis import TimeAxis

__all__ = ["GaussianProcess"]


class GaussianProcess(PosteriorMixin, BaseForecaster):
    """Gaussian-process regression and forecasting in time, exact at :math:`O(T)` cost.

    .. math::

        f \\sim \\mathcal{GP}(0, k), \\qquad y_i \\mid f \\sim p(y_i \\mid f(t_i)),

    with :math:`p(y_i \\mid f) = N(y_i; f(t_i), r_i)` for ``likelihood="gaussian"``. The kernel's
    state-space form (:mod:`probssm.gp.kernels`) makes the GP a linear-Gaussian state-space model
    over the sorted time stamps; every quantity comes from :mod:`probssm.kalman` passes
    (:mod:`probssm.gp.inference`), so a fit and a prediction cost :math:`O(T n^3)` for a kernel
    with an ``n``-dimensional state, instead of the :math:`O(T^3)` of a dense GP.

    Parameters
    ----------
    kernel : Kernel
        The prior covariance, e.g. ``Matern52(lengthscale=10.0) + QuasiPeriodic(12.0)``; its
        hyperparameters are the starting point of the fit.
    likelihood : str or Likelihood
        ``"gaussian"`` (default), ``"poisson"`` (log link, counts), ``"bernoulli"`` (logit link,
        labels 0/1) or ``"student_t"``; non-Gaussian likelihoods use the Laplace approximation
        (:mod:`probssm.gp.laplace`).
    noise : None, float or array ``(T,)``
        Observation-noise variance :math:`r_i` of the Gaussian likelihood (scikit-learn's
        ``alpha``), kept fixed. ``None``: estimated with the kernel's hyperparameters (started at
        a tenth of the variance of ``y``), unless the kernel has a ``WhiteNoise`` term, which is
        then the noise.
    optimizer : ``"lbfgs"`` or None
        ``None`` keeps the given hyperparameters (scikit-learn's convention).
    method : ``"auto"``, ``"mle"`` or ``"nuts"``
        How hyperparameters are estimated: ``"mle"`` maximises the (approximate) log marginal
        likelihood; ``"nuts"`` then samples their posterior with NUTS from there
        (:mod:`probssm.gp.bayes`), and predictions integrate over it; ``"auto"`` is ``"mle"``
        (no estimation when ``optimizer`` is ``None``).
    priors : dict, optional
        ``{hyperparameter name: numpyro distribution or log-density callable}`` for NUTS, names
        as in ``params_`` (``"lengthscale"``, ``"k1__variance"``, ``"noise"``, ...); others get
        the default log-normal prior of :mod:`probssm.gp.bayes`.
    num_warmup, num_samples, num_chains : int
        NUTS settings.
    n_restarts_optimizer : int
        Further optimiser starts at random log-scale perturbations of the given hyperparameters.
    random_state : None, int or numpy.random.Generator
        Seeds the restarts and NUTS.

    Notes
    -----
    ``set_config(inference=...)`` picks the :mod:`probssm.kalman` method (``"auto"``,
    ``"sequential"``, ``"parallel"``, ``"kernel"``); results do not depend on it.

    Attributes
    ----------
    kernel_ : Kernel
        The fitted kernel (its ``repr`` reads as a formula with the fitted values).
    noise_ : float or ndarray
        The observation-noise variance used.
    log_marginal_likelihood_ : float
        :math:`\\log p(y \\mid \\hat\\theta)` (the Laplace approximation for non-Gaussian
        likelihoods).
    """

    _config_defaults = {**BaseForecaster._config_defaults, "inference": "auto"}  # noqa: RUF012
    _panel_attributes = ("log_marginal_likelihood_",)

    def __init__(self, kernel, likelihood="gaussian", noise=None, optimizer="lbfgs", method="auto",
                 n_restarts_optimizer=0, priors=None, num_warmup=500, num_samples=500, num_chains=2,
                 random_state=None):
        self.kernel = kernel
        self.likelihood = likelihood
        self.noise = noise
        self.optimizer = optimizer
        self.method = method
        self.n_restarts_optimizer = n_restarts_optimizer
        self.priors = priors
        self.num_warmup = num_warmup
        self.num_samples = num_samples
        self.num_chains = num_chains
        self.random_state = random_state

    # -- data -------------------------------------------------------------------------------
    def fit(self, t, y=None):
        """Fit to ``y`` observed at times ``t``, in one of three forms:

        - ``fit(y)``: ``y`` a Series/DataFrame whose index gives the times (see
          :mod:`probssm.gp.time_axis`; a DatetimeIndex with a frequency counts time in steps,
          one without in days), or an array ``(T,)``/``(T, k)`` observed at ``0..T-1``;
        - ``fit(t, y)``: times ``t`` ``(T,)`` (any order, repeats allowed) and values ``y``
          ``(T,)`` or ``(T, k)`` (``k`` independent outputs sharing the kernel);
        - ``fit(panel)``: many series, rows indexed by ``(series_id, time)`` (or a long
          ``unique_id``/``ds``/``y`` frame) on a regular time grid, each with its own
          hyperparameters, all fitted in one compiled program (:mod:`probssm.gp.panel`);
          ``estimators_`` holds one fitted GP per series, and ``predict`` / intervals /
          quantiles / samples / ``smooth`` return them stacked under a ``series_id`` level.

        A DataFrame of several columns is several outputs of one GP (they share the kernel's
        hyperparameters), not a panel.

        NaN values are missing. Returns ``self``.
        """
        self._check_hyperparameters()
        use_persistent_cache()
        if y is None and _data.is_panel(t, univariate=False):
            panel = _data.as_panel_data(t)
            self.estimators_ = fit_panel(self, panel)
            self._panel, self._X, self._exog_columns = panel, None, None
            self._collect_panel_attributes()
            self.cutoff_ = panel.index[-1]
            self.is_fitted_ = True
            return self
        self.__dict__.pop("estimators_", None)
        if y is None:
            data = _data.as_series_data(t, time_index=False)
            axis = TimeAxis.from_index(data.index)
        else:
            times = as_times(t, "t")
            data = _data.as_series_data(_values_only(y), time_index=False)
            if data.values.shape[0] != times.shape[0]:
                raise ValueError(f"t has {times.shape[0]} time stamps but y has {data.values.shape[0]} rows")
            axis = TimeAxis.from_times(times)
            data = _data.SeriesData(data.values, axis.index, data.columns, data.is_series)
        self._panel, self._X, self._exog_columns = None, None, None
        self._y, self._axis = data, axis
        self._likelihood = resolve_likelihood(self.likelihood)
        self._likelihood.check_observations(data.values)
        self._fit_hyperparameters()
        self.cutoff_ = data.index[np.argmax(axis.times())]
        self.is_fitted_ = True
        return self

    def _check_hyperparameters(self):
        check_kernel(self.kernel)
        if self.optimizer not in ("lbfgs", None):
            raise ValueError(f"optimizer must be 'lbfgs' or None, got {self.optimizer!r}")
        if self.method not in ("auto", "mle", "nuts"):
            raise ValueError(f"method must be 'auto', 'mle' or 'nuts', got {self.method!r}")
        if self.method == "nuts" and self.optimizer is None:
            raise ValueError("method='nuts' starts from the maximum likelihood estimate: keep optimizer='lbfgs'")
        _data.check_int(self.n_restarts_optimizer, "n_restarts_optimizer", 0)
        for name in ("num_warmup", "num_samples", "num_chains"):
            _data.check_int(getattr(self, name), name, 1)

    def _observations(self):
        """Times ``(T,)`` and values ``(T,)`` or ``(T, k)`` for the inference functions."""
        values = self._y.values
        return self._axis.times(), values[:, 0] if values.shape[1] == 1 else values

    def _estimates_noise(self, likelihood) -> bool:
        """Whether the noise variance is estimated with the kernel (see ``noise``); raises for
        settings that contradict each other."""
        if not likelihood.uses_noise and self.noise is not None:
            raise ValueError(f"likelihood={likelihood.name!r} has no observation noise; leave noise=None")
        has_white = bool(np.asarray(self.kernel.white_noise_variance) > 0)
        estimate = likelihood.uses_noise and self.noise is None and not has_white
        if estimate and self.optimizer is None:
            raise ValueError("optimizer=None keeps the hyperparameters as given: give noise= "
                             "(or a WhiteNoise term) too")
        return estimate

    def _fit_hyperparameters(self):
        self._draws = None
        self.__dict__.pop("converged_", None)
        t, y = self._observations()
        estimate_noise = self._estimates_noise(self._likelihood)
        with jax.enable_x64(True):
            if self.optimizer is None:
                self.kernel_ = self.kernel
                self.noise_ = self._fixed_noise(t)
            else:
                start = 0.1 * float(np.nanvar(y)) if estimate_noise else None
                if start is not None and not start > 0:
                    start = 1.0
                objective = self._likelihood.marginal_likelihood_function(self._inference_method())
                self.kernel_, self.noise_, _, result = fit_hyperparameters(
                    objective, self.kernel, t, y, noise=start, fixed_noise=self._fixed_noise(t),
                    restarts=int(self.n_restarts_optimizer),
                    rng=_data.random_generator(self.random_state))
                self.converged_ = bool(result.converged)
                if self.method == "nuts":
                    self._sample_hyperparameters(objective, t, y, self._fixed_noise(t), start)
            self.log_marginal_likelihood_ = float(np.sum(self._likelihood.log_marginal_likelihood(
                self.kernel_, t, y, self.noise_, method=self._inference_method())))
        if not np.isfinite(self.log_marginal_likelihood_):
            raise ValueError(f"the log marginal likelihood is not finite at {self.kernel_!r} (for "
                             f"likelihood={self._likelihood.name!r}: the Laplace iteration did not "
                             "converge); try other starting hyperparameters")
        self._set_params_table()

    def _set_params_table(self):
        noise = {"noise": self.noise_} if np.ndim(self.noise_) == 0 and self._likelihood.uses_noise else {}
        self.params_ = pd.Series({k: float(v) for k, v in self.kernel_.hyperparameters.items()} | noise,
                                 name="estimate")

    def _fixed_noise(self, t):
        if self.noise is None:
            return 0.0
        noise = np.asarray(self.noise, dtype=np.float64)
        inference.check_data(self.kernel, t, np.zeros(len(t)), noise)
        return float(noise) if noise.ndim == 0 else noise

    def _inference_method(self) -> str:
        return self.get_config()["inference"]

    # -- predictions ------------------------------------------------------------------------
    def _new_times(self, fh):
        """``(times, labels)``: an array of time stamps gives arrays back (labels ``None``);
        a horizon or an index gives labelled results."""
        if isinstance(fh, (np.ndarray, jax.Array)) and not isinstance(fh, pd.Index):
            return as_times(fh, "t_new"), None
        if self._axis.kind != "steps" and isinstance(fh, (list, tuple)):
            return as_times(np.asarray(fh), "t_new"), None
        return self._axis.horizon(fh)

    def _posterior(self, t_new):
        """Mean and variance of :math:`f` at ``t_new``, ``(T*, k)`` each (of the posterior
        predictive mixture after NUTS)."""
        if self._draws is not None:
            mean, var = self._mixture_moments(t_new)
            return mean.mean(0), var.mean(0) + mean.var(0)
        t, y = self._observations()
        with jax.enable_x64(True):
            post = self._likelihood.posterior(self.kernel_, t, y, t_new, self.noise_,
                                              method=self._inference_method())
            mean, var = np.asarray(post.mean), np.asarray(post.variance)
        return mean.reshape(len(t_new), -1), var.reshape(len(t_new), -1)

    def _noise_at_new_times(self):
        if np.ndim(self.noise_) != 0:
            raise ValueError("include_noise: the noise was given per training point; the noise of "
                             "new points is unknown (predict f with include_noise=False)")
        return float(self.noise_) + float(self.kernel_.white_noise_variance)

    def predict(self, fh, return_std=False, return_cov=False, include_noise=False):
        """Posterior mean of :math:`f` (see :meth:`_predict_single`); on a panel fit, a
        horizon or an index of labels only, stacked by series."""
        if getattr(self, "_panel", None) is not None and (
                return_std or return_cov or isinstance(fh, (np.ndarray, jax.Array))):
            raise ValueError("on a panel fit predict takes a horizon (or an index of labels) and gives "
                             "one Series indexed by (series_id, time); for time stamps or return_std/"
                             "return_cov call estimators_[series_id].predict")
        return self._predict_single(fh, return_std=return_std, return_cov=return_cov,
                                    include_noise=include_noise)

    @per_series
    def _predict_single(self, fh, return_std=False, return_cov=False, include_noise=False):
        """Posterior mean of :math:`f` (``include_noise``: of :math:`y`; the same for a Gaussian
        likelihood, :math:`E[y]` otherwise) at new times.

        ``fh``: an array of time stamps ``(T*,)`` (scikit-learn style: anywhere, inside the data
        or beyond it; results are arrays), or a forecasting horizon / index of labels (results
        are pandas objects indexed by those labels). ``return_std`` also returns the standard
        deviation, ``return_cov`` the joint covariance ``(T*, T*)`` (one output only).
        """
        self._check_is_fitted()
        if return_std and return_cov:
            raise ValueError("at most one of return_std and return_cov may be True (as in scikit-learn)")
        times, labels = self._new_times(fh)
        if return_cov:
            if self._draws is not None:
                raise ValueError("return_cov is not available after method='nuts' (the predictive "
                                 "distribution is a mixture); use sample_y")
            mean, cov = self._joint(times, include_noise)
            return self._shaped(mean, labels), cov
        mean, var = self._posterior(times)
        if include_noise:
            mean, var = self._likelihood.predictive_moments(mean, var, self._noise_at_new_times())
        if not return_std:
            return self._shaped(mean, labels)
        return self._shaped(mean, labels), self._shaped(np.sqrt(var), labels)

    def _joint(self, times, include_noise):
        if self._y.values.shape[1] != 1:
            raise ValueError("return_cov is available for one output only")
        t, y = self._observations()
        with jax.enable_x64(True):
            moments = self._likelihood.joint_posterior(self.kernel_, t, y, times, self.noise_,
                                                          method=self._inference_method())
        mean, cov = (np.asarray(a) for a in moments)
        if include_noise:
            cov = cov + self._noise_at_new_times() * np.eye(len(times))
        return mean[:, None], cov

    def _shaped(self, values, labels):
        if labels is None:
            return values[:, 0] if values.shape[1] == 1 else values
        if self._y.is_series:
            return pd.Series(values[:, 0], index=labels, name=self._y.columns[0])
        return pd.DataFrame(values, index=labels, columns=self._y.columns)

    def _predictive(self, fh):
        times, labels = self._new_times(fh)
        mean, var = self._posterior(times)
        mean, var = self._likelihood.predictive_moments(mean, var, self._noise_at_new_times())
        labels = labels if labels is not None else pd.Index(times, name="t")
        return mean, var, labels

    @per_series
    def predict_var(self, fh) -> pd.DataFrame:
        """Predictive variances of :math:`y`, one column per output."""
        self._check_is_fitted()
        _, var, labels = self._predictive(fh)
        return pd.DataFrame(var, index=labels, columns=self._y.columns)

    @per_series
    def predict_interval(self, fh, coverage=0.9) -> pd.DataFrame:
        """Central predictive intervals of :math:`y`; columns ``(variable, coverage,
        "lower"|"upper")``."""
        self._check_is_fitted()
        coverages = _data.check_coverage(coverage)
        alphas = sorted({a for c in coverages for a in (0.5 - c / 2, 0.5 + c / 2)})
        q, labels = self._quantiles(fh, alphas)
        cols = {}
        for j, var in enumerate(self._y.columns):
            for c in coverages:
                cols[(var, c, "lower")] = q[:, j, alphas.index(0.5 - c / 2)]
                cols[(var, c, "upper")] = q[:, j, alphas.index(0.5 + c / 2)]
        return pd.DataFrame(cols, index=labels)

    @per_series
    def predict_quantiles(self, fh, alpha=(0.05, 0.5, 0.95)) -> pd.DataFrame:
        """Predictive quantiles of :math:`y`; columns ``(variable, alpha)``."""
        self._check_is_fitted()
        alphas = _data.check_alpha(alpha)
        q, labels = self._quantiles(fh, alphas)
        cols = {(var, a): q[:, j, k] for j, var in enumerate(self._y.columns) for k, a in enumerate(alphas)}
        return pd.DataFrame(cols, index=labels)

    def _quantiles(self, fh, alphas):
        times, labels = self._new_times(fh)
        if self._draws is not None:
            q = self._mixture_quantiles(times, alphas)
            return q, labels if labels is not None else pd.Index(times, name="t")
        mean, var = self._posterior(times)
        q = self._likelihood.predictive_quantiles(mean, var, self._noise_at_new_times(), np.asarray(alphas))
        return q, labels if labels is not None else pd.Index(times, name="t")

    @single_series
    def sample_y(self, t_new, n_samples=1, random_state=None) -> np.ndarray:
        """Joint posterior draws of :math:`f` at time stamps ``t_new`` (scikit-learn's
        ``sample_y``): ``(T*, n_samples)``, or ``(T*, k, n_samples)`` for ``k`` outputs."""
        self._check_is_fitted()
        draws = self._draw_f(as_times(t_new, "t_new"), n_samples, random_state)
        return np.moveaxis(draws, 0, -1)

    def _draw_f(self, times, n_samples, random_state):
        n_samples = _data.check_int(n_samples, "n_samples", 1)
        key = jax.random.PRNGKey(int(_data.random_generator(random_state).integers(2**31)))
        if self._draws is not None:
            return self._mixture_draws(times, n_samples, key)
        t, y = self._observations()
        with jax.enable_x64(True):
            draws = self._likelihood.sample_posterior(self.kernel_, t, y, key, n_samples, times,
                                                      self.noise_, method=self._inference_method())
        return np.asarray(draws)

    @per_series
    def sample(self, fh, n_samples: int = 100, random_state=None) -> pd.DataFrame:
        """Joint predictive sample paths of :math:`y` (posterior draws of :math:`f` plus
        observation noise), a long DataFrame indexed by ``(sample, time)``."""
        self._check_is_fitted()
        times, labels = self._new_times(fh)
        rng = _data.random_generator(random_state)
        f = self._draw_f(times, n_samples, rng).reshape(int(n_samples), len(times), -1)
        draws = self._likelihood.observe(f, self._noise_at_new_times(), rng)
        labels = labels if labels is not None else pd.Index(times, name="t")
        index = pd.MultiIndex.from_product([range(int(n_samples)), labels], names=["sample", "time"])
        return pd.DataFrame(draws.reshape(-1, draws.shape[-1]), index=index, columns=self._y.columns)

    # -- latent states, scores, updates -------------------------------------------------------
    def _states(self, smoothed: bool) -> StateEstimates:
        if not isinstance(self._likelihood, Gaussian):
            raise ValueError("filter() and smooth() give the states of the Gaussian model; for "
                             f"likelihood={self.likelihood!r} use predict(t, return_std=True)")
        t, y = self._observations()
        if y.ndim != 1:
            raise ValueError("filter() and smooth() are available for one output only")
        order = np.argsort(t, kind="stable")
        with jax.enable_x64(True):
            model = state_space_model(self.kernel_, jnp.asarray(t[order]),
                                      jnp.broadcast_to(jnp.asarray(self.noise_), t.shape)[order])
            method = self._inference_method()
            res = (kalman.smooth if smoothed else kalman.filter)(model, y[order, None], method=method)
            mean, cov = np.asarray(res.mean), np.asarray(res.cov)
            loglik = float(res.log_likelihood)
        index = self._y.index[order]
        columns = [f"x{j}" for j in range(mean.shape[1])]
        std = np.sqrt(np.maximum(np.diagonal(cov, axis1=1, axis2=2), 0.0))
        return StateEstimates(pd.DataFrame(mean, index=index, columns=columns),
                              pd.DataFrame(std, index=index, columns=columns), cov, loglik)

    @per_series
    def filter(self) -> StateEstimates:
        """Filtered states :math:`p(x_k \\mid y_{0:k})` at the sorted training times."""
        self._check_is_fitted()
        return self._states(smoothed=False)

    @per_series
    def smooth(self) -> StateEstimates:
        """Smoothed states :math:`p(x_k \\mid y)` at the sorted training times."""
        self._check_is_fitted()
        return self._states(smoothed=True)

    def _new_data(self, t, y, name):
        if y is None:
            if self._axis.kind == "values":
                raise ValueError(f"this GP was fitted with fit(t, y): pass {name} as (t, y)")
            new = _data.as_series_data(t, name=name, columns=self._y.columns, min_observed=0,
                                       time_index=False)
            times, labels = self._axis.label_times(new.index), new.index
        else:
            times = as_times(t, "t")
            new = _data.as_series_data(_values_only(y), name=name, min_observed=0, time_index=False)
            if new.values.shape[1] != self._y.values.shape[1]:
                raise ValueError(f"{name}: expected {self._y.values.shape[1]} outputs, got {new.values.shape[1]}")
            if len(times) != new.values.shape[0]:
                raise ValueError(f"t has {len(times)} time stamps but {name} has {new.values.shape[0]} rows")
            labels = pd.Index(times, name="t") if self._axis.kind == "values" else None
        if labels is None:
            raise ValueError(f"this GP was fitted on a time index: pass {name} as a Series/DataFrame indexed by time")
        self._likelihood.check_observations(new.values)
        return times, new.values, labels

    @single_series
    def update(self, t, y=None):
        """Absorb new observations without refitting the hyperparameters (``update(y_new)`` with
        a time-indexed Series continuing the training index, or ``update(t_new, y_new)``).
        Later predictions condition on them; each prediction runs one pass over all the data."""
        self._check_is_fitted()
        if np.ndim(self.noise_) != 0:
            raise ValueError("update: the noise was given per training point; refit with the new points' noise")
        times, values, labels = self._new_data(t, y, "y_new")
        if self._axis.kind == "steps":
            _data.check_continuation(self._y.index, labels)
            index = self._y.index.append(labels)
            index = _data.check_time_index(index)
        else:
            index = self._y.index.append(labels)
        self._y = _data.SeriesData(np.concatenate([self._y.values, values]), index,
                                   self._y.columns, self._y.is_series)
        self._axis = TimeAxis(self._axis.kind, index)
        self.cutoff_ = index[np.argmax(self._axis.times())]
        return self

    @single_series
    def score(self, t, y=None) -> float:
        """Mean log predictive density of held-out observations,
        :math:`\\frac1N \\log p(y_* \\mid y) = \\frac1N [\\log p(y, y_*) - \\log p(y)]` (exact for
        a Gaussian likelihood), :math:`N` the number of observed values in :math:`y_*`."""
        self._check_is_fitted()
        if not isinstance(self._likelihood, Gaussian):
            raise ValueError("score() is exact for the Gaussian likelihood only")
        if np.ndim(self.noise_) != 0:
            raise ValueError("score: the noise was given per training point; the held-out points' noise is unknown")
        times, values, _ = self._new_data(t, y, "y")
        t0, y0 = self._observations()
        both_t = np.concatenate([t0, times])
        both_y = np.concatenate([self._y.values, values])
        both_y = both_y[:, 0] if both_y.shape[1] == 1 else both_y
        with jax.enable_x64(True):
            method = self._inference_method()
            joint = np.sum(np.asarray(inference.log_marginal_likelihood(
                self.kernel_, both_t, both_y, self.noise_, method=method)))
            alone = np.sum(np.asarray(inference.log_marginal_likelihood(
                self.kernel_, t0, y0, self.noise_, method=method)))
        return float((joint - alone) / np.sum(~np.isnan(values)))

    @single_series
    def plot(self, fh=None, coverage=0.95, ax=None):
        """The data, the posterior mean of :math:`f` with a band over and between the data, and
        (for ``fh``) the forecast beyond it. Returns the matplotlib Axes."""
        from .plotting import plot_gp

        self._check_is_fitted()
        return plot_gp(self, fh=fh, coverage=coverage, ax=ax)

    # -- persistence --------------------------------------------------------------------------
    def _fitted_state(self):
        meta = {"kernel_": _persistence.encode(self.kernel_), "axis": self._axis.to_json(),
                "log_marginal_likelihood_": self.log_marginal_likelihood_,
                "converged_": getattr(self, "converged_", None)}
        arrays = {"noise_": np.asarray(self.noise_, dtype=np.float64)}
        if self._draws is not None:
            arrays["posterior_draws"] = self._draws
            meta.update(posterior_names=list(self.posterior_.columns), divergences_=self.divergences_)
        return meta, arrays

    def _restore_fitted_state(self, meta, arrays):
        self.kernel_ = _persistence.decode(meta["kernel_"])
        self._axis = TimeAxis.from_json(meta["axis"])
        self._y = _data.SeriesData(self._y.values, self._axis.index, self._y.columns, self._y.is_series)
        noise = arrays["noise_"]
        self.noise_ = float(noise) if noise.ndim == 0 else noise
        self.log_marginal_likelihood_ = meta["log_marginal_likelihood_"]
        if meta["converged_"] is not None:
            self.converged_ = meta["converged_"]
        self._likelihood = resolve_likelihood(self.likelihood)
        self._set_params_table()
        self._draws = None
        if "posterior_draws" in arrays:
            self._set_posterior(arrays["posterior_draws"], meta["posterior_names"])
            self.divergences_ = meta["divergences_"]

    def _restore_cutoff(self):
        self.cutoff_ = self._y.index[np.argmax(self._axis.times())]


def _values_only(y):
    """The values of ``y`` without its index (``fit(t, y)`` takes the times from ``t``)."""
    if isinstance(y, (pd.Series, pd.DataFrame)):
        return y.reset_index(drop=True)
    return y
