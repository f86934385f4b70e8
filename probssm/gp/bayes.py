"""Bayesian hyperparameters for :class:`~probssm.gp.GaussianProcess` (``method="nuts"``).

NumPyro's NUTS (:func:`probssm.fit.bayes.sample_posterior`) samples

.. math::

    p(\\psi \\mid y) \\propto p(y \\mid \\psi) \\prod_i \\pi_i(\\psi_i)

over the positive hyperparameters :math:`\\psi` (kernel leaves and an estimated noise variance) on
the log scale, started at the type-II maximum likelihood estimate; :math:`p(y \\mid \\psi)` is the
exact (Gaussian) or Laplace (other likelihoods) marginal likelihood. The default prior of each
hyperparameter is log-normal, centred on the value the kernel was given with a standard deviation
of 2 on the log scale (a factor of about 7 either way per standard deviation): the kernel's
starting values state the scales the user has in mind. Predictions then integrate over the
posterior by the equal-weight mixture over :math:`S \\le 100` evenly thinned draws.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from ..fit.bayes import log_prior_from, posterior_summary, sample_posterior
from ..kalman.posterior import mixture_quantiles, nuts_seed
from .fitting import Hyperparameters, objective_for

__all__ = ["PosteriorMixin", "DEFAULT_PRIOR_LOG_SD"]

DEFAULT_PRIOR_LOG_SD = 2.0
"""Standard deviation, on the log scale, of the default log-normal prior of a hyperparameter."""
_PREDICTIVE_DRAWS = 100
_QUANTILE_DRAWS = 4000


class PosteriorMixin:
    """Fitted attributes after ``method="nuts"``: ``posterior_`` (draws, a DataFrame ``(chains *
    samples, k)``), ``posterior_summary_`` (mean, sd, 5 % and 95 % quantiles, split-:math:`\\hat
    R`, ESS) and ``divergences_``; ``kernel_`` and ``noise_`` are the posterior medians."""

    def _log_priors(self, names, centres) -> list:
        given = dict(self.priors or {})
        unknown = sorted(set(given) - set(names))
        if unknown:
            raise ValueError(f"priors: unknown hyperparameters {unknown}; the model has {names}")
        out = []
        for name, centre in zip(names, centres):
            if name in given:
                out.append(log_prior_from(given[name]))
            else:
                out.append(lambda v, mu=float(np.log(centre)): (
                    -0.5 * ((jnp.log(v) - mu) / DEFAULT_PRIOR_LOG_SD) ** 2 - jnp.log(v)
                    - jnp.log(DEFAULT_PRIOR_LOG_SD * np.sqrt(2 * np.pi))))
        return out

    def _sample_hyperparameters(self, marginal_likelihood, t, y, fixed_noise, start_noise):
        """NUTS from the MLE (``kernel_``, ``noise_``); sets the posterior attributes and the
        posterior medians as ``kernel_`` / ``noise_``."""
        mle = Hyperparameters(self.kernel_, self.noise_ if start_noise is not None else None)
        given = Hyperparameters(self.kernel, start_noise)
        names = mle.names
        objective = objective_for(mle, marginal_likelihood)
        with jax.enable_x64(True):
            draws, divergences = sample_posterior(
                lambda psi, *args: objective(jnp.log(psi), *args), jnp.exp,
                self._log_priors(names, np.exp(given.theta0)), mle.theta0, jnp.asarray(t),
                jnp.asarray(y), fixed_noise,
                num_warmup=int(self.num_warmup), num_samples=int(self.num_samples),
                num_chains=int(self.num_chains), seed=nuts_seed(self.random_state),
                progress_bar=self._show_progress())
            median = np.log(np.median(draws.reshape(-1, len(names)), axis=0))
            self.kernel_ = jax.tree_util.tree_map(float, mle.kernel(jnp.asarray(median)))
            if mle.fit_noise:
                self.noise_ = float(np.exp(median[-1]))
        self._set_posterior(draws, names)
        self.divergences_ = divergences

    def _set_posterior(self, draws, names):
        self._draws = np.asarray(draws)
        self.posterior_ = pd.DataFrame(self._draws.reshape(-1, len(names)), columns=names)
        self.posterior_summary_ = posterior_summary(self._draws, names)

    def _posterior_draws(self):
        """Thinned draws as one batched kernel and noise ``(S,)``."""
        flat = self._draws.reshape(-1, self._draws.shape[-1])
        keep = np.unique(np.linspace(0, len(flat) - 1, min(len(flat), _PREDICTIVE_DRAWS)).astype(int))
        space = Hyperparameters(self.kernel_, self.noise_ if "noise" in self.posterior_ else None)
        theta = jnp.log(jnp.asarray(flat[keep]))
        kernels = jax.vmap(space.kernel)(theta)
        noises = jax.vmap(lambda th: space.noise(th, jnp.asarray(self.noise_)))(theta)
        return kernels, noises

    def _mixture(self, fn):
        """``fn(kernel, noise)`` for every thinned draw (vmapped)."""
        kernels, noises = self._posterior_draws()
        return jax.vmap(fn)(kernels, noises)

    def _mixture_moments(self, t_new):
        """Mixture mean and variance of :math:`f` at ``t_new``, each ``(T*, k)``."""
        t, y = self._observations()
        method = self._inference_method()
        with jax.enable_x64(True):
            post = self._mixture(lambda k, nz: self._likelihood.posterior(k, t, y, t_new, nz, method=method))
            mean, var = np.asarray(post.mean), np.asarray(post.variance)
        mean, var = mean.reshape(mean.shape[0], len(t_new), -1), var.reshape(var.shape[0], len(t_new), -1)
        return mean, var

    def _mixture_quantiles(self, t_new, alphas):
        mean, var = self._mixture_moments(t_new)
        noise = np.asarray(self._mixture(lambda k, nz: nz + k.white_noise_variance))[:, None, None]
        if self._likelihood.name == "gaussian":
            return mixture_quantiles(mean, np.sqrt(var + noise), np.asarray(alphas))
        # Simulation from the mixture: the same number of draws of f from every component.
        rng = np.random.default_rng(0)
        per_component = max(1, _QUANTILE_DRAWS // mean.shape[0])
        f = mean[:, None] + np.sqrt(var)[:, None] * rng.standard_normal((mean.shape[0], per_component) + mean.shape[1:])
        y = self._likelihood.observe(f, noise[:, None], rng).reshape((-1,) + mean.shape[1:])
        return np.moveaxis(np.quantile(y, alphas, axis=0), 0, -1)

    def _mixture_draws(self, t_new, n_samples, key):
        """Joint draws of :math:`f` ``(n_samples, T*[, k])``, each from a random posterior draw."""
        t, y = self._observations()
        method = self._inference_method()
        kernels, noises = self._posterior_draws()
        pick = jax.random.randint(jax.random.fold_in(key, 1), (n_samples,), 0, noises.shape[0])
        keys = jax.random.split(key, n_samples)
        with jax.enable_x64(True):
            def one(i, k):
                kernel = jax.tree_util.tree_map(lambda a: a[i], kernels)
                return self._likelihood.sample_posterior(kernel, t, y, k, 1, t_new, noises[i], method=method)[0]
            return np.asarray(jax.vmap(one)(pick, keys))
