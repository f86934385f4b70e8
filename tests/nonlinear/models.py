"""Models shared by the nonlinear tests, with NumPy twins for the independent references.

The model functions are module-level (not rebuilt per test), so every model of one shape reuses
one compiled filter: the functions are static parts of the model pytree, its values are leaves.
"""

import jax.numpy as jnp
import numpy as np

from probssm import kalman
from probssm.ssm import AdditiveGaussianSSM

# ---------------------------------------------------------------------------------------------
# A time-varying linear-Gaussian model written as an AdditiveGaussianSSM (f, h read F_t, H_t
# from params), and the same model as a kalman.LGSSM.


def linear_f(x, t, p):
    return p["F"][t] @ x + p["b"][t]


def linear_h(x, t, p):
    return p["H"][t] @ x + p["d"][t]


def _cov(rng, k, scale=1.0):
    a = rng.normal(size=(k, k))
    return scale * (a @ a.T / k + 0.3 * np.eye(k))


def random_linear(rng, n, m, T):
    """Fields of a random stable time-varying linear-Gaussian model (NumPy float64)."""
    F = 0.8 * rng.normal(size=(T, n, n)) / np.sqrt(n)
    # keep each F_t a contraction so that the state stays O(1)
    F = F / np.maximum(1.0, np.linalg.norm(F, 2, axis=(1, 2)) / 0.95)[:, None, None]
    return dict(F=F, b=rng.normal(size=(T, n)), H=rng.normal(size=(T, m, n)),
                d=rng.normal(size=(T, m)), Q=_cov(rng, n, 0.5), R=_cov(rng, m, 0.5),
                m0=rng.normal(size=n), P0=_cov(rng, n))


def linear_ssm(fields):
    p = {k: jnp.asarray(fields[k]) for k in ("F", "b", "H", "d")}
    return AdditiveGaussianSSM(linear_f, linear_h, fields["Q"], fields["R"], fields["m0"],
                               fields["P0"], params=p)


def linear_lgssm(fields):
    T = fields["F"].shape[0]
    return kalman.LGSSM(fields["F"], np.broadcast_to(fields["Q"], (T,) + fields["Q"].shape),
                        fields["H"], fields["R"], fields["m0"], fields["P0"],
                        transition_offset=fields["b"], observation_offset=fields["d"],
                        time_varying=("transition_matrix", "transition_cov",
                                      "observation_matrix", "transition_offset",
                                      "observation_offset"))


def with_missing(rng, y, row_rate=0.15, entry_rate=0.15):
    """NaN whole rows and single entries (at least one of each, away from t = 0)."""
    y = np.array(y, dtype=float)
    rows = rng.uniform(size=y.shape[:-1]) < row_rate
    rows[..., 3] = True
    y[rows] = np.nan
    entries = rng.uniform(size=y.shape) < entry_rate
    entries[..., 5, 0] = True
    entries[..., 5, 1:] = False
    y[entries] = np.nan
    return y


# ---------------------------------------------------------------------------------------------
# A pendulum (Särkkä 2013, example 5.1) with a time-varying second observation.

DT = 0.1


def pendulum_f(x, t, p):
    return jnp.stack([x[0] + DT * x[1], x[1] - p["g"] * DT * jnp.sin(x[0])])


def pendulum_h(x, t, p):
    return jnp.stack([jnp.sin(x[0]), (1.0 + 0.5 * jnp.cos(0.3 * t)) * x[1] ** 2 / 4.0])


def pendulum_f_np(x, t, g):
    return np.array([x[0] + DT * x[1], x[1] - g * DT * np.sin(x[0])])


def pendulum_h_np(x, t):
    return np.array([np.sin(x[0]), (1.0 + 0.5 * np.cos(0.3 * t)) * x[1] ** 2 / 4.0])


def pendulum_F_np(x, t, g):
    return np.array([[1.0, DT], [-g * DT * np.cos(x[0]), 1.0]])


def pendulum_H_np(x, t):
    return np.array([[np.cos(x[0]), 0.0], [0.0, (1.0 + 0.5 * np.cos(0.3 * t)) * x[1] / 2.0]])


PENDULUM = dict(
    Q=0.4 * np.array([[DT ** 3 / 3, DT ** 2 / 2], [DT ** 2 / 2, DT]]),
    R=np.array([[0.1 ** 2, 0.002], [0.002, 0.15 ** 2]]),
    m0=np.array([1.2, 0.3]),
    P0=np.array([[0.05, 0.01], [0.01, 0.1]]),
    g=9.81,
)


def pendulum_ssm(g=PENDULUM["g"], Q=PENDULUM["Q"], R=PENDULUM["R"]):
    return AdditiveGaussianSSM(pendulum_f, pendulum_h, Q, R, PENDULUM["m0"], PENDULUM["P0"],
                               params={"g": jnp.asarray(g, jnp.result_type(float))})


def pendulum_data(seed, T):
    """A simulated path and its observations (NumPy, float64)."""
    rng = np.random.default_rng(seed)
    x = rng.multivariate_normal(PENDULUM["m0"], PENDULUM["P0"])
    xs, ys = [], []
    for t in range(T):
        xs.append(x)
        ys.append(rng.multivariate_normal(pendulum_h_np(x, t), PENDULUM["R"]))
        x = rng.multivariate_normal(pendulum_f_np(x, t, PENDULUM["g"]), PENDULUM["Q"])
    return np.array(xs), np.array(ys)


def rel(a, b):
    """Largest absolute difference relative to the largest entry of ``b``."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))
