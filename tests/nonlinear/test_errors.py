"""Bad input raises, naming what is wrong and where; never a silent NaN."""

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest

from probssm import nonlinear
from probssm.ssm import AdditiveGaussianSSM, StateSpaceModel

from .models import PENDULUM, pendulum_f, pendulum_h, pendulum_ssm

Q, R, M0, P0 = (PENDULUM[k] for k in ("Q", "R", "m0", "P0"))
PARAMS = {"g": 9.81}
T = 40  # the filter tests' length: the pendulum's programs are shared


def _y():
    y = np.full((T, 2), 0.5)
    y[3] = np.nan
    return y


# ---------------------------------------------------------------------------------------------
# the model's functions


def test_wrong_output_shapes_name_the_function_and_the_shapes():
    with pytest.raises(ValueError, match=r"f\(x, t, params\) returned shape \(3,\), expected \(2,\)"):
        AdditiveGaussianSSM(lambda x, t, p: jnp.zeros(3), pendulum_h, Q, R, M0, P0, params=PARAMS)
    with pytest.raises(ValueError, match=r"h\(x, t\) returned shape \(\), expected \(2,\)"):
        AdditiveGaussianSSM(lambda x, t: x, lambda x, t: x[0], Q, R, M0, P0)
    with pytest.raises(ValueError, match=r"h\(x, t\) returned shape \(2, 1\), expected \(2,\)"):
        AdditiveGaussianSSM(lambda x, t: x, lambda x, t: x[:, None], Q, R, M0, P0)
    with pytest.raises(TypeError, match=r"f\(x, t\) must return an array"):
        AdditiveGaussianSSM(lambda x, t: [x[0], x[1]], lambda x, t: x, Q, R, M0, P0)


def test_wrong_parameter_pytrees_name_the_function():
    with pytest.raises(KeyError, match=r"f\(x, t, params\) raised KeyError"):
        AdditiveGaussianSSM(pendulum_f, pendulum_h, Q, R, M0, P0, params={"gravity": 9.81})
    with pytest.raises(TypeError, match=r"f\(x, t\) raised TypeError.*params"):
        AdditiveGaussianSSM(pendulum_f, pendulum_h, Q, R, M0, P0)  # params forgotten
    model = pendulum_ssm()
    with pytest.raises(ValueError, match="params.*structure"):
        model.replace({"g": 1.0, "extra": 2.0})
    with pytest.raises(ValueError, match="params.*shape"):
        model.replace({"g": jnp.ones(3)})
    assert float(model.replace({"g": 1.0}).params["g"]) == 1.0


def test_generic_models_are_checked_too():
    def initial():
        return dist.MultivariateNormal(jnp.zeros(2), jnp.eye(2))

    def transition(x, t):
        return dist.MultivariateNormal(jnp.zeros(3), jnp.eye(3))

    def emission(x, t):
        return dist.Normal(x, 1.0).to_event(1)

    with pytest.raises(ValueError, match=r"transition\(x, t\).*\(3,\).*expected \(2,\)"):
        StateSpaceModel(initial, transition, emission)
    with pytest.raises(ValueError, match=r"initial\(\).*vector"):
        StateSpaceModel(lambda: dist.Normal(0.0, 1.0).expand((2, 2)).to_event(2),
                        lambda x, t: dist.MultivariateNormal(x, jnp.eye(2)), emission)


def _f_failing(x, t, p):
    return jnp.where(t == p["bad_f"], jnp.nan, pendulum_f(x, t, p))


def _h_failing(x, t, p):
    return jnp.where(t == p["bad_h"], jnp.inf, pendulum_h(x, t, p))


@pytest.mark.parametrize("where, step", [("f", 5), ("h", 7)])
def test_non_finite_function_values_name_the_function_and_the_time_step(where, step):
    """The first failure is named, not its consequences (a NaN from h at step 7 makes the
    filtered state and then f non-finite at step 7 too, and the smoother at every step)."""
    params = {"g": 9.81, "bad_f": 5 if where == "f" else -1, "bad_h": 7 if where == "h" else -1}
    model = AdditiveGaussianSSM(_f_failing, _h_failing, Q, R, M0, P0, params=params)
    y = np.stack([_y(), _y()])
    message = rf"{where} \(the \w+\) returned a non-finite value at time step {step} of series \(0,\)"
    with pytest.raises(FloatingPointError, match=message + " while filtering") as error:
        nonlinear.filter(model, y, rule="extended")
    assert isinstance(error.value, ValueError)  # as every bad-input error
    with pytest.raises(FloatingPointError, match=message + " while smoothing"):
        nonlinear.smooth(model, y, rule="extended")


def test_non_finite_values_at_sigma_points_only_are_caught():
    """sqrt of a negative argument away from the mean: the extended filter never sees it."""
    def h(x, t, p):
        return jnp.stack([jnp.sqrt(x[0] - 0.9), x[1]])

    model = AdditiveGaussianSSM(pendulum_f, h, Q, R, M0, 0.25 * np.eye(2), params=PARAMS)
    with pytest.raises(FloatingPointError, match=r"h \(the emission\).*time step 0\b"):
        nonlinear.filter(model, _y(), rule="unscented")


def test_non_finite_values_of_a_generic_model_name_the_distribution():
    model = StateSpaceModel(
        initial=lambda: dist.MultivariateNormal(jnp.zeros(1), jnp.eye(1)),
        transition=lambda x, t: dist.MultivariateNormal(x, jnp.where(t == 4, -1.0, 1.0) * jnp.eye(1)),
        emission=lambda x, t: dist.Poisson(jnp.exp(x[0])))
    with pytest.raises(FloatingPointError, match=r"transition.*time step 4\b"):
        nonlinear.filter(model, np.ones((T, 1)), rule="cubature")


# ---------------------------------------------------------------------------------------------
# the model's arrays


@pytest.mark.parametrize("name, value, message", [
    ("Q", -Q, "Q is not positive semi-definite"),
    ("R", np.array([[0.1, 0.05], [0.0, 0.1]]), "R is not symmetric"),
    ("P0", np.array([[1.0, 2.0], [2.0, 1.0]]), "P0 is not positive semi-definite"),
    ("Q", np.array([[np.nan, 0.0], [0.0, 1.0]]), "Q contains non-finite values"),
    ("Q", np.eye(3), r"Q: expected shape \(2, 2\), got \(3, 3\)"),
    ("R", np.ones(2), "R: expected a square matrix"),
    ("m0", np.zeros((2, 1)), r"m0: expected shape \(n,\)"),
])
def test_bad_noise_and_prior_arrays(name, value, message):
    arrays = dict(Q=Q, R=R, m0=M0, P0=P0)
    arrays[name] = value
    with pytest.raises(ValueError, match=message):
        AdditiveGaussianSSM(pendulum_f, pendulum_h, params=PARAMS, **arrays)


def test_a_singular_psd_noise_is_accepted():
    Q_singular = np.array([[0.0, 0.0], [0.0, 0.1]])
    res = nonlinear.filter(pendulum_ssm(Q=Q_singular), _y(), rule="cubature")
    assert np.all(np.isfinite(res.mean)) and np.all(np.isfinite(res.cov))


# ---------------------------------------------------------------------------------------------
# observations and options


@pytest.mark.parametrize("y, message", [
    (np.zeros(T), r"y: expected shape \(\*batch, T, m\) with m=2"),
    (np.zeros((T, 3)), r"y: expected shape \(\*batch, T, m\) with m=2.*got \(40, 3\)"),
    (np.zeros((0, 2)), "at least one time step"),
])
def test_wrong_observation_shapes(y, message):
    model = pendulum_ssm()
    with pytest.raises(ValueError, match=message):
        nonlinear.filter(model, y)
    with pytest.raises(ValueError, match=message):
        nonlinear.smooth(model, y)


def test_infinite_observations_are_refused():
    y = _y()
    y[6, 1] = -np.inf
    with pytest.raises(ValueError, match=r"infinite value at index \(6, 1\); use NaN"):
        nonlinear.filter(pendulum_ssm(), y)
    with pytest.raises(ValueError, match=r"infinite value at index \(1, 6, 1\)"):
        nonlinear.smooth(pendulum_ssm(), np.stack([_y(), y]))


def test_bad_options():
    model, y = pendulum_ssm(), _y()
    with pytest.raises(TypeError, match="StateSpaceModel"):
        nonlinear.filter(object(), y)
    with pytest.raises(ValueError, match="rule must be one of"):
        nonlinear.filter(model, y, rule="ensemble")
    with pytest.raises(ValueError, match="method must be"):
        nonlinear.smooth(model, y, method="associative")
    with pytest.raises(ValueError, match="damping"):
        nonlinear.smooth(model, y, iterated=True, damping=0.0)
    with pytest.raises(ValueError, match="regularization"):
        nonlinear.smooth(model, y, iterated=True, regularization=-1.0)
    with pytest.raises(ValueError, match="max_iter"):
        nonlinear.smooth(model, y, iterated=True, max_iter=0)
