"""Gaussian filters for nonlinear models: linearise, then one Kalman step.

At each time step ``t`` the filter holds the predicted :math:`N(\\mu_t^-, P_t^-)` of
:math:`x_t` and

1. linearises the emission under it, :math:`y_t \\approx H_t x_t + d_t + N(0, R_t)`, and updates
   (:func:`probssm.kalman.steps.update`), which gives the filtered :math:`N(\\mu_t, P_t)` and the
   log-likelihood term :math:`\\log N(y_t; H_t\\mu_t^- + d_t, H_t P_t^- H_t^T + R_t)`;
2. linearises the transition under the filtered state,
   :math:`x_{t+1} \\approx F_t x_t + b_t + N(0, Q_t)`, and predicts
   (:func:`probssm.kalman.steps.predict`).

:math:`(F_t, b_t, Q_t, H_t, d_t, R_t)` are what a rule (:mod:`.rules`) returns, so this one
recursion is the extended, unscented, cubature and Gauss-Hermite filter. The filter is exactly
the Kalman filter of the linear-Gaussian model those linearisations make; it returns that model
(``linearised``), whose :func:`probssm.kalman.smooth` is the rule's RTS smoother (the extended or
the unscented RTS smoother, Särkkä 2013, chapters 9-10). Covariances are carried as square
factors throughout.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from ..kalman import LGSSM
from ..kalman import steps as kalman_steps
from ..kalman._linalg import chol_psd
from .rules import linearise

__all__ = ["NonlinearFilterResult", "filter_single", "linearised_model"]


class NonlinearFilterResult(NamedTuple):
    """Outcome of :func:`probssm.nonlinear.filter`.

    Attributes
    ----------
    mean : ``(*batch, T, n)``
        Filtered means :math:`E[x_t \\mid y_{0:t}]` (approximate).
    cov : ``(*batch, T, n, n)``
        Filtered covariances.
    log_likelihood : ``(*batch,)``
        :math:`\\sum_t \\log N(y_t; \\hat y_t, S_t)`, the approximate log-likelihood
        (differentiable in the model's parameters).
    predicted_mean : ``(*batch, T, n)``
        :math:`E[x_t \\mid y_{0:t-1}]`.
    predicted_cov : ``(*batch, T, n, n)``
    next_mean, next_cov : ``(*batch, n)``, ``(*batch, n, n)``
        The prediction of :math:`x_T`, one step past the data (where an online update resumes).
    linearised : LGSSM
        The time-varying linear-Gaussian model of the linearisations (fields ``(*batch, T, ...)``);
        :func:`probssm.kalman.filter` of it reproduces this filter.
    """

    mean: jax.Array
    cov: jax.Array
    log_likelihood: jax.Array
    predicted_mean: jax.Array
    predicted_cov: jax.Array
    next_mean: jax.Array
    next_cov: jax.Array
    linearised: LGSSM


def linearised_model(initial_mean, initial_cov, pieces: dict) -> LGSSM:
    """The :class:`~probssm.kalman.LGSSM` with per-step fields ``pieces`` (``F, b, Q, H, d, R``,
    each with a leading time axis) and the given prior."""
    return LGSSM(pieces["F"], pieces["Q"], pieces["H"], pieces["R"], initial_mean, initial_cov,
                 transition_offset=pieces["b"], observation_offset=pieces["d"],
                 time_varying=("transition_matrix", "transition_cov", "observation_matrix",
                               "observation_cov", "transition_offset", "observation_offset"))


STAGES = ("emission", "update", "transition", "prediction")
"""What each column of the filter's ``finite`` flags ``(T, 4)`` checks at a time step, in the
order of evaluation: the emission's values (and covariances) under the prediction, the updated
state, the transition's values under the filtered state, and the predicted state."""


def _all_finite(*arrays):
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(a)) for a in arrays]))


def _transition(model, t):
    return lambda x: model.transition_moments(x, t)


def _emission(model, t):
    return lambda x: model.emission_moments(x, t)


def filter_single(model, y, rule, start=0):
    """Filter one series ``y`` ``(T, m)`` (no batch axes) from the model's initial distribution
    (``start`` the time step of ``y[0]``, for online continuation through
    :func:`filter_from`)."""
    m0, P0 = model.initial_moments()
    return filter_from(model, y, rule, m0, chol_psd(P0), start, (m0, P0))


def filter_from(model, y, rule, mean, chol, start, prior):
    """The filter from a predicted ``N(mean, chol chol^T)`` of ``x_start``; ``prior`` = the
    ``(mean, cov)`` that the returned ``linearised`` model starts from."""
    additive = model.additive

    def step(carry, inputs):
        pred_mean, pred_chol = carry
        t, y_t = inputs
        H, d, R, finite_h = linearise(rule, _emission(model, t), pred_mean, pred_chol, additive)
        mean, chol, loglik = kalman_steps.update(pred_mean, pred_chol, y_t, H, R, d)
        F, b, Q, finite_f = linearise(rule, _transition(model, t), mean, chol, additive)
        next_mean, next_chol = kalman_steps.predict(mean, chol, F, Q, b)
        # in the order of evaluation, so that the first failure is the cause (see STAGES)
        finite = jnp.stack([finite_h, _all_finite(mean, chol, loglik), finite_f,
                            _all_finite(next_mean, next_chol)])
        out = dict(mean=mean, cov=chol @ chol.T, loglik=loglik, predicted_mean=pred_mean,
                   predicted_cov=pred_chol @ pred_chol.T, F=F, b=b, Q=Q, H=H, d=d, R=R,
                   finite=finite)
        return (next_mean, next_chol), out

    steps = start + jnp.arange(y.shape[0])
    (next_mean, next_chol), out = jax.lax.scan(step, (mean, chol), (steps, y))
    return out, next_mean, next_chol @ next_chol.T
