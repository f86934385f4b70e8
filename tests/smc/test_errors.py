"""Bad input: degenerate weights (an error naming the step, or -inf with the step under jit),
wrong particle shapes from user functions, non-finite parameters, n_particles < 2, bad
observations and settings."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest

from probssm import smc
from probssm.ssm import StateSpaceModel

from .models import linear_data, linear_model


def _initial(p):
    return dist.Normal(jnp.zeros(1), 1.0)


def _transition(x, t, p):
    return dist.Normal(p["rho"] * x, 0.3)


def _emission(x, t, p):
    return dist.Poisson(jnp.where(t == 7, 0.0, jnp.exp(x)))


def _poisson_model():
    """Counts whose rate is exactly zero at step 7, so a positive count there is impossible
    under every particle."""
    return StateSpaceModel(_initial, _transition, _emission, params={"rho": jnp.asarray(0.8)})


def test_all_weights_zero_names_the_step():
    y = np.ones((12, 1))
    with pytest.raises(smc.DegenerateWeightsError, match=r"step t=7.*y\[7\] = \[1\.\]"):
        smc.filter(_poisson_model(), y, jax.random.PRNGKey(0), 100)
    # a zero count at that step is possible: no error
    y[7] = 0.0
    res = smc.filter(_poisson_model(), y, jax.random.PRNGKey(0), 100)
    assert np.isfinite(float(res.log_likelihood))


def test_degenerate_step_under_jit_is_minus_inf_not_nan():
    y = np.ones((12, 1))
    res = jax.jit(lambda k: smc.filter(_poisson_model(), y, k, 100))(jax.random.PRNGKey(0))   # traced: no error
    assert float(res.log_likelihood) == -np.inf
    assert int(res.degenerate_step) == 7
    assert np.all(np.isfinite(np.asarray(res.mean)))          # no NaN in the estimates
    ignored = smc.filter(_poisson_model(), y, jax.random.PRNGKey(0), 100, errors="ignore")
    assert int(ignored.degenerate_step) == 7 and float(ignored.log_likelihood) == -np.inf
    batched = smc.filter(_poisson_model(), np.stack([y, np.zeros_like(y)]), jax.random.PRNGKey(0), 100,
                         errors="ignore")
    np.testing.assert_array_equal(batched.degenerate_step, [7, -1])
    with pytest.raises(smc.DegenerateWeightsError, match=r"step t=7 \(batch index \(0,\)\)"):
        smc.filter(_poisson_model(), np.stack([y, np.zeros_like(y)]), jax.random.PRNGKey(0), 100)


def test_wrong_particle_shapes_from_user_functions():
    y = np.ones((5, 1))

    def initial(p):
        return dist.Normal(jnp.zeros(1), 1.0)

    def transition(x, t, p):   # returns two components for a one-dimensional state
        return dist.Normal(jnp.zeros(2) + x, 1.0)

    def emission(x, t, p):
        return dist.Normal(x, 1.0)

    # the specification checks its own functions; one that skipped the checks (rebuilt from its
    # pytree leaves) meets the filter's
    with pytest.raises(ValueError, match=r"shape \(2,\), expected \(1,\)"):
        StateSpaceModel(initial, transition, emission, params={})
    bad = StateSpaceModel.tree_unflatten((initial, transition, emission), ({},))
    with pytest.raises(ValueError, match=r"transition moves a particle of shape \(1,\) to shape \(2,\); expected \(1,\)"):
        smc.filter(bad, y, jax.random.PRNGKey(0), 10)

    def proposal(x_prev, y_t, t, p):
        return dist.Normal(jnp.zeros(3), 1.0)

    good = StateSpaceModel(initial, lambda x, t, p: dist.Normal(x, 1.0), emission, params={})
    with pytest.raises(ValueError, match=r"proposal\(x_prev, y, t, params\) samples particles of shape \(3,\); expected \(1,\)"):
        smc.filter(good, y, jax.random.PRNGKey(0), 10, proposal=proposal)

    def failing(x, t, p):
        raise TypeError("boom")

    broken = StateSpaceModel.tree_unflatten((initial, failing, emission), ({},))
    with pytest.raises(TypeError, match="the transition failed: boom"):
        smc.filter(broken, y, jax.random.PRNGKey(0), 10)
    with pytest.raises(ValueError, match=r"functions\(x\) must return a scalar or a vector"):
        smc.filter(good, y, jax.random.PRNGKey(0), 10, functions=lambda x: jnp.eye(2))


def test_non_finite_parameters_are_named():
    model = smc.stochastic_volatility(mu=np.nan)
    with pytest.raises(ValueError, match=r"model parameter params\['mu'\] is not finite"):
        smc.filter(model, np.ones((4, 1)), jax.random.PRNGKey(0), 10)
    lin = linear_model()
    lin = type(lin).tree_unflatten(lin.tree_flatten()[1], ({"scale": jnp.asarray(np.inf)},) + lin.tree_flatten()[0][1:])
    with pytest.raises(ValueError, match=r"params\['scale'\] is not finite"):
        smc.filter(lin, linear_data(T=5, missing=(2,)), jax.random.PRNGKey(0), 10)


@pytest.mark.parametrize("n", [1, 0, -3])
def test_too_few_particles(n):
    with pytest.raises(ValueError, match=f"n_particles must be an integer >= 2, got {n}"):
        smc.filter(linear_model(), linear_data(T=5, missing=(2,)), jax.random.PRNGKey(0), n)


def test_bad_settings_and_observations():
    model, y, key = linear_model(), linear_data(T=5, missing=(2,)), jax.random.PRNGKey(0)
    with pytest.raises(TypeError, match="n_particles must be an integer"):
        smc.filter(model, y, key, 10.5)
    with pytest.raises(ValueError, match="resampling must be one of"):
        smc.filter(model, y, key, 10, resampling="optimal")
    with pytest.raises(ValueError, match=r"ess_threshold must be in \[0, 1\]"):
        smc.filter(model, y, key, 10, ess_threshold=1.5)
    with pytest.raises(ValueError, match="proposal must be 'bootstrap', 'auxiliary'"):
        smc.filter(model, y, key, 10, proposal="optimal")
    with pytest.raises(ValueError, match=r"y: expected shape \(\*batch, T, m\) with T >= 1 and m=1 .*got \(5, 2\)"):
        smc.filter(model, np.ones((5, 2)), key, 10)
    bad = y.copy()
    bad[3, 0] = np.inf
    with pytest.raises(ValueError, match=r"infinite value at index \(3, 0\); use NaN"):
        smc.filter(model, bad, key, 10)
    with pytest.raises(TypeError, match="model must be a probssm.ssm.StateSpaceModel"):
        smc.filter("model", y, key, 10)
    with pytest.raises(ValueError, match="errors must be 'raise' or 'ignore'"):
        smc.filter(model, y, key, 10, errors="warn")
