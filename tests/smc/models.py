"""Shared test models: a two-state linear-Gaussian model (whose filter and smoother are exact in
probssm.kalman) and its data."""

import jax
import jax.numpy as jnp
import numpy as np

from probssm import kalman
from probssm.ssm import AdditiveGaussianSSM

F = np.array([[0.9, 0.2], [0.0, 0.7]])
H = np.array([[1.0, 0.5]])
Q = np.array([[0.3, 0.05], [0.05, 0.2]])
R = np.array([[0.4]])
M0 = np.zeros(2)
P0 = np.eye(2)


def _f(x, t, p):
    return p["scale"] * (jnp.asarray(F) @ x)


def _h(x, t, p):
    return jnp.asarray(H) @ x


def linear_model(scale=1.0):
    """``x_{t+1} = scale * F x_t + q``, ``y_t = H x_t + r``, as an AdditiveGaussianSSM (module-level
    functions, so that every instance shares compiled programs)."""
    return AdditiveGaussianSSM(_f, _h, Q, R, M0, P0, params={"scale": jnp.asarray(scale, dtype=float)})


def reference(scale=1.0):
    """The same model as a probssm.kalman.LGSSM."""
    return kalman.LGSSM(scale * F, Q, H, R, M0, P0)


def linear_data(T=40, seed=0, missing=(5, 17)):
    """Observations ``(T, 1)`` simulated from the model, with NaN rows at ``missing``."""
    with jax.enable_x64(True):
        _, y = linear_model().sample(jax.random.PRNGKey(seed), T)
    y = np.array(y)
    y[list(missing)] = np.nan
    return y


def exact_log_likelihoods(scales, y):
    """Kalman log-likelihoods of the model at each transition scale, one vmapped program."""
    F_ = jax.numpy.asarray(F)

    def one(s):
        return kalman.filter(kalman.LGSSM(s * F_, Q, H, R, M0, P0), y).log_likelihood

    with jax.enable_x64(True):
        return np.asarray(jax.jit(jax.vmap(one))(jax.numpy.asarray(scales, dtype=float)))
