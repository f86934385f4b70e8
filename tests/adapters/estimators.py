"""Fast settings of every JAX-family estimator for the adapter tests.

The model functions live at module level so that sktime's checks can pickle the estimators.
Filters run with given parameters (no fit) where the estimator offers it; the structural models
are fitted by maximum likelihood, as users fit them.
"""

import jax.numpy as jnp
import numpy as np

from probssm import (
    SARIMAX,
    ExtendedKalmanFilter,
    GaussianProcess,
    KalmanFilter,
    LocalLevel,
    ParticleFilter,
    UnobservedComponents,
    UnscentedKalmanFilter,
)
from probssm.gp.kernels import Matern12
from probssm.ssm import AdditiveGaussianSSM


def random_walk(x, t):
    """The transition of a random walk: the state stays where it is."""
    return x


def observe_level(x, t):
    """The observation of the level: the state itself, shape ``(1,)``."""
    return jnp.tanh(x / 100.0) * 100.0


def level_model():
    """A local level model in nonlinear form (the emission is the identity near the data's
    scale), for the nonlinear and particle filters."""
    return AdditiveGaussianSSM(random_walk, observe_level, np.eye(1) * 0.5, np.eye(1), np.array([3.0]),
                               np.eye(1) * 10.0)


def estimators() -> dict:
    """``name -> unfitted estimator`` for every JAX-family estimator."""
    return {
        "LocalLevel": LocalLevel(),
        "SARIMAX": SARIMAX(order=(1, 0, 0)),
        "UnobservedComponents": UnobservedComponents(terms=("local level",)),
        "KalmanFilter": KalmanFilter(transition_matrix=[[1.0]], transition_cov=[[0.5]],
                                     observation_matrix=[[1.0]], observation_cov=[[1.0]]),
        "GaussianProcess": GaussianProcess(Matern12(5.0), noise=0.5, optimizer=None),
        "ExtendedKalmanFilter": ExtendedKalmanFilter(level_model()),
        "UnscentedKalmanFilter": UnscentedKalmanFilter(level_model()),
        "ParticleFilter": ParticleFilter(level_model(), n_particles=200, random_state=0),
    }
