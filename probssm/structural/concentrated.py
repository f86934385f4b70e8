"""The scale concentrated out of the Gaussian likelihood (statsmodels' ``concentrate_scale``).

When every covariance of a model is proportional to one scale :math:`\\sigma^2` (the model at
:math:`\\sigma^2 = 1` has innovations :math:`v_t` with variances :math:`F_t`, and the model at
:math:`\\sigma^2` has :math:`v_t` and :math:`\\sigma^2 F_t`), the log-likelihood is maximised in
:math:`\\sigma^2` by

.. math::

    \\hat\\sigma^2 = \\frac1n \\sum_{t \\in \\mathcal T} \\frac{v_t^2}{F_t},

over the :math:`n` observed steps :math:`\\mathcal T` after the burn and after any exact
diffuse period, and the profile log-likelihood is

.. math::

    \\log L_c = \\sum_{t \\in \\mathcal D} \\ell_t
        - \\frac12 \\sum_{t \\in \\mathcal T}\\left(\\log 2\\pi + \\log F_t\\right)
        - \\frac n2 \\log \\hat\\sigma^2 - \\frac n2,

where :math:`\\ell_t` are the diffuse log-likelihood terms of the steps :math:`\\mathcal D` of an
exact diffuse period that are not burned (they do not depend on :math:`\\sigma^2`). The
parameters that maximise :math:`\\log L_c` maximise the full likelihood, with the same value.
"""

from __future__ import annotations

from functools import partial

import jax.numpy as jnp

from ..kalman import compiled
from ..kalman.inference import filter as kalman_filter

__all__ = ["profile_log_likelihood", "profile_objective"]


def profile_log_likelihood(model, y, burn: int = 0):
    """The concentrated log-likelihood and the scale that maximises it.

    Parameters
    ----------
    model : LGSSM
        The model at :math:`\\sigma^2 = 1`, one observed variable.
    y : array, shape ``(T, 1)``
        NaN marks a missing observation.
    burn : int
        Leading steps left out of both sums (statsmodels' ``loglikelihood_burn``).

    Returns
    -------
    (log_likelihood, scale) : two scalars
        Differentiable and ``jit``-able.
    """
    res = kalman_filter(model, y)
    steps = jnp.arange(y.shape[0])
    observed = ~jnp.isnan(y[:, 0]) & (steps >= burn)
    diffuse = jnp.any(res.predicted_diffuse_cov != 0, axis=(-2, -1))
    used = observed & ~diffuse
    n = jnp.sum(used)
    v = jnp.where(used, y[:, 0] - res.observation_mean[:, 0], 0.0)
    F = jnp.where(used, res.observation_cov[:, 0, 0], 1.0)
    scale = jnp.sum(v * v / F) / n
    log_f = jnp.sum(jnp.where(used, jnp.log(2 * jnp.pi * F), 0.0))
    diffuse_terms = jnp.sum(jnp.where(observed & diffuse, res.log_likelihood_terms, 0.0))
    return diffuse_terms - 0.5 * (log_f + n * jnp.log(scale) + n), scale


def _objective(theta, y, aux, *, template, burn):
    model, _ = template._model(template._to_natural(theta), aux, burn=burn)
    return profile_log_likelihood(model, y, burn)[0]


_OBJECTIVES: dict = {}


def profile_objective(est, burn: int):
    """:math:`\\log L_c` as ``f(theta, y, aux)`` over the unconstrained parameters of the
    estimator ``est`` (whose ``aux`` holds the scale, 1 while estimating); one function object per
    structure, so the gradient compiles once."""
    key = (type(est), est._structure(), burn)
    if key not in _OBJECTIVES:
        _OBJECTIVES[key] = partial(_objective, template=compiled.structure_template(est), burn=burn)
    return _OBJECTIVES[key]
