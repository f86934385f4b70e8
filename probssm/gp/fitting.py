"""Hyperparameters by type-II maximum likelihood: L-BFGS on the log marginal likelihood over
:math:`\\theta = \\log \\psi`, every positive hyperparameter :math:`\\psi` (kernel leaves and, when
estimated, the noise variance) on the log scale.

The objective is one compiled program per kernel structure and likelihood (the pytree's
structure, not its values), reused by every fit, restart and series of that structure.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ..fit.mle import maximize_likelihood
from .kernels.base import Kernel

__all__ = ["Hyperparameters", "fit_hyperparameters", "objective_for"]


class Hyperparameters:
    """The map between a kernel (plus an optional noise variance) and :math:`\\theta \\in
    \\mathbb R^k`: ``theta = log(leaves)``, the noise variance last when it is estimated."""

    def __init__(self, kernel: Kernel, noise=None):
        leaves, self.treedef = jax.tree_util.tree_flatten(kernel)
        self.fit_noise = noise is not None
        values = [float(v) for v in leaves] + ([float(noise)] if self.fit_noise else [])
        self.theta0 = np.log(np.asarray(values, dtype=np.float64))

    @property
    def names(self) -> list[str]:
        return list(self.kernel(self.theta0).hyperparameters) + (["noise"] if self.fit_noise else [])

    def kernel(self, theta) -> Kernel:
        k = self.treedef.num_leaves
        return jax.tree_util.tree_unflatten(self.treedef, list(jnp.exp(theta[:k])))

    def noise(self, theta, fixed):
        return jnp.exp(theta[-1]) if self.fit_noise else fixed


@functools.cache
def _objective(treedef, fit_noise: bool, marginal_likelihood: Callable):
    """``theta, t, y, fixed_noise -> log p(y | theta)``: one function object per structure, so
    :func:`probssm.fit.mle.maximize_likelihood` compiles it once."""
    k = treedef.num_leaves

    def objective(theta, t, y, fixed_noise):
        kernel = jax.tree_util.tree_unflatten(treedef, list(jnp.exp(theta[:k])))
        noise = jnp.exp(theta[-1]) if fit_noise else fixed_noise
        return jnp.sum(marginal_likelihood(kernel, t, y, noise))

    return objective


def objective_for(space: Hyperparameters, marginal_likelihood: Callable) -> Callable:
    """The compiled-once objective ``theta, t, y, fixed_noise -> log p(y | theta)`` of a
    hyperparameter space."""
    return _objective(space.treedef, space.fit_noise, marginal_likelihood)


def fit_hyperparameters(marginal_likelihood: Callable, kernel: Kernel, t, y, *, noise=None,
                        fixed_noise=0.0, restarts: int = 0, rng: np.random.Generator | None = None,
                        max_iter: int = 1000):
    """Maximise ``marginal_likelihood(kernel, t, y, noise)`` over the kernel's hyperparameters
    (and the noise variance, started at ``noise``, when ``noise`` is not ``None``; otherwise
    ``fixed_noise`` is used as given).

    ``marginal_likelihood`` must be a module-level JAX function (it keys the compiled program).
    ``restarts`` further starts at :math:`\\theta_0 + N(0, I)` (drawn from ``rng``) compete with
    the given one; the best wins. Returns ``(kernel, noise, log_likelihood, result)``, ``result``
    the winning :class:`probssm.fit.mle.MLEResult`.
    """
    space = Hyperparameters(kernel, noise)
    objective = objective_for(space, marginal_likelihood)
    starts = [space.theta0]
    if restarts:
        rng = rng if rng is not None else np.random.default_rng()
        starts += [space.theta0 + rng.standard_normal(space.theta0.shape) for _ in range(int(restarts))]
    best = None
    for theta0 in starts:
        try:
            result = maximize_likelihood(objective, theta0, t, y, fixed_noise, max_iter=max_iter)
        except ValueError:
            if theta0 is space.theta0:
                raise
            continue  # a random restart where the likelihood is not finite
        if best is None or result.log_likelihood > best.log_likelihood:
            best = result
    with jax.enable_x64(True):
        theta = jnp.asarray(best.theta)
        fitted_kernel = jax.tree_util.tree_map(float, space.kernel(theta))
        fitted_noise = float(space.noise(theta, fixed_noise)) if space.fit_noise else fixed_noise
    return fitted_kernel, fitted_noise, best.log_likelihood, best
