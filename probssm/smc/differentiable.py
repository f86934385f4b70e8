"""A particle filter whose log-likelihood estimate has useful gradients, and gradient ascent on it.

Resampling draws discrete ancestor indices, so the plain filter's :math:`\\log \\hat Z(\\theta)`
is piecewise differentiable and ``jax.grad`` of it misses how the weights choose the
ancestors: that gradient is biased even as :math:`N \\to \\infty`. The stop-gradient
resampling of Ścibior & Wood (2021) leaves the forward pass unchanged and gives a resampled
particle the weight

.. math::

    \\bar w^j = \\frac1N \\frac{W^{a^j}}{\\bot(W^{a^j})}

(``⊥`` = ``stop_gradient``; value :math:`1/N`, derivative :math:`\\nabla \\log W^{a^j} / N`),
which restores the score-function term of the resampling step. Then, with reparameterised
moves (NumPyro's ``sample`` for location-scale families; the Gaussian moves of
:class:`~probssm.ssm.AdditiveGaussianSSM`),

.. math::

    \\nabla_\\theta \\log \\hat Z_N(\\theta) \\to \\nabla_\\theta \\log p_\\theta(y_{0:T-1})
    \\quad (N \\to \\infty),

the Fisher identity estimated by the particle system.

**Bias.** The estimate is consistent, not unbiased: :math:`E[\\nabla \\log \\hat Z_N] -
\\nabla \\log Z = O(T/N)` (it is the gradient of :math:`E[\\log \\hat Z_N]`, the
log-likelihood minus about half the variance of :math:`\\log \\hat Z_N`, and the score estimate
of a long series inherits the path degeneracy of the genealogy), and its variance grows with
``T``. Gradient ascent on it therefore converges to a neighbourhood of the maximum-likelihood
estimate whose size shrinks with ``N``; use many particles near the end, or refine with PMMH.
Discrete states (Poisson latent counts, ...) cannot be reparameterised; their moves contribute
no gradient.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .filtering import _compiled, check_functions, check_model, check_y, make_config

__all__ = ["GradientAscentResult", "differentiable_log_likelihood", "gradient_ascent"]


def differentiable_log_likelihood(model, y, key, n_particles=256, proposal="bootstrap",
                                  resampling="systematic", ess_threshold=0.5):
    """:math:`\\log \\hat Z_N` of the stop-gradient particle filter, a scalar (``(*batch,)``
    for batched ``y`` ``(*batch, T, m)``) whose ``jax.grad`` in the model's parameters is a
    consistent estimate of the score (see the module docstring for the bias).

    Same forward value as :func:`probssm.smc.filter` with the same key; differentiate it with
    ``jax.grad(lambda p: differentiable_log_likelihood(model.replace(p), y, key))(params)``.
    Degenerate steps give ``-inf`` (no error is raised: the function is meant to be traced).
    """
    config = make_config(n_particles, proposal, resampling, ess_threshold, differentiable=True)
    check_model(model)
    y = check_y(model, y)
    check_functions(model, config, y)
    return _compiled(model, y, key, config).log_likelihood


class GradientAscentResult(NamedTuple):
    """Outcome of :func:`gradient_ascent`.

    Attributes
    ----------
    theta : ``(k,)``
        The average of the iterates over the last half of the steps (Polyak-Ruppert), which
        averages out the gradient noise.
    trace : ``(num_steps, k)``
        The iterates.
    objective : ``(num_steps,)``
        The objective's estimate at each iterate (noisy).
    """

    theta: np.ndarray
    trace: np.ndarray
    objective: np.ndarray


def gradient_ascent(objective: Callable, theta0, key, num_steps=200, learning_rate=0.05, b1=0.9,
                    b2=0.999, eps=1e-8) -> GradientAscentResult:
    """Maximise a stochastic objective ``objective(theta, key) -> scalar`` with Adam (Kingma &
    Ba 2015), a fresh key each step.

    Parameters
    ----------
    objective : callable
        ``(theta (k,), key) -> scalar``, e.g. a differentiable log-likelihood estimate plus a log
        prior; non-finite values or gradients skip the step.
    theta0 : array ``(k,)``
    key : jax.random key
    num_steps : int
    learning_rate, b1, b2, eps : float
        Adam's settings.
    """
    theta0 = jnp.asarray(theta0)
    if theta0.ndim != 1:
        raise ValueError(f"theta0: expected shape (k,), got {tuple(theta0.shape)}")
    if int(num_steps) < 1:
        raise ValueError(f"num_steps must be a positive integer, got {num_steps}")
    value_and_grad = jax.value_and_grad(objective)

    def step(state, inputs):
        theta, m, v = state
        i, k = inputs
        value, grad = value_and_grad(theta, k)
        ok = jnp.isfinite(value) & jnp.all(jnp.isfinite(grad))
        grad = jnp.where(ok, grad, 0.0)
        m = b1 * m + (1 - b1) * grad
        v = b2 * v + (1 - b2) * grad**2
        m_hat = m / (1 - b1 ** (i + 1.0))
        v_hat = v / (1 - b2 ** (i + 1.0))
        theta = jnp.where(ok, theta + learning_rate * m_hat / (jnp.sqrt(v_hat) + eps), theta)
        return (theta, m, v), (theta, value)

    @jax.jit
    def run(theta0, key):
        zeros = jnp.zeros_like(theta0)
        keys = jax.random.split(key, int(num_steps))
        return jax.lax.scan(step, (theta0, zeros, zeros), (jnp.arange(int(num_steps)), keys))[1]

    trace, values = run(theta0, key)
    trace, values = np.asarray(trace), np.asarray(values)
    half = trace[len(trace) // 2:]
    return GradientAscentResult(half.mean(axis=0), trace, values)
