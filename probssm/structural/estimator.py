"""Structural time-series estimators."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from ..kalman.estimator import LinearGaussianForecaster
from ..kalman.model import LGSSM

__all__ = ["LocalLevel"]


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

    def __init__(self, initialization="exact_diffuse"):
        self.initialization = initialization

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
