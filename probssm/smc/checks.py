"""Input checks of the particle filters: the model, the observations, the shapes the user's
functions give a particle, and degenerate weights after a pass. Errors name what is wrong and
where (the parameter, the function and its shapes, the time step and batch element)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..ssm import StateSpaceModel, _vector
from . import proposals as _proposals

__all__ = ["DegenerateWeightsError", "check_functions", "check_model", "check_y", "raise_if_degenerate"]


class DegenerateWeightsError(ValueError):
    """All particle weights are zero (log-weight :math:`-\\infty`), or a weight is NaN or
    :math:`+\\infty`, at some step; the message names the step. Under ``jit``/``vmap`` (where no
    error can be raised) the filter instead returns ``log_likelihood = -inf`` and the step in
    ``degenerate_step``, and continues from equal weights (so no NaN enters the estimates)."""



# ----------------------------------------------------------------------------------------------
def _is_concrete(*trees) -> bool:
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(trees))


def check_model(model) -> None:
    """``TypeError`` for a non-model; on concrete values ``ValueError`` naming a non-finite
    parameter."""
    if not isinstance(model, StateSpaceModel):
        raise TypeError(f"model must be a probssm.ssm.StateSpaceModel or AdditiveGaussianSSM, "
                        f"got {type(model).__name__}")
    named = {"params": model.params}
    if model.additive:
        named.update(Q=model.Q, R=model.R, m0=model.m0, P0=model.P0)
    for path, leaf in jax.tree_util.tree_flatten_with_path(named)[0]:
        if isinstance(leaf, jax.core.Tracer):
            continue
        arr = np.asarray(leaf)
        if arr.dtype.kind in "fc" and not np.all(np.isfinite(arr)):
            name = _path_name(path)
            raise ValueError(f"model parameter {name} is not finite: {arr if arr.size < 10 else 'contains nan/inf'}")


def _path_name(path) -> str:
    """``params['mu']``, ``Q``, ``params[1]`` from a pytree key path."""
    parts = [getattr(k, "key", getattr(k, "idx", getattr(k, "name", k))) for k in path]
    return str(parts[0]) + "".join(f"[{p!r}]" for p in parts[1:])


def _name(fn_name, params):
    return fn_name if params is None else fn_name.replace(")", ", params)")


def _evaluate(label, fn, *args):
    try:
        return jax.eval_shape(fn, *args)
    except (ValueError, TypeError) as error:
        raise type(error)(f"{label} failed: {error}") from error


def check_functions(model, config, y) -> int:
    """Check the shapes the user's functions give a particle; returns the state dimension ``n``.
    Errors name the function and the expected and actual shapes."""
    key = jax.random.PRNGKey(0)
    x0 = _evaluate("sampling the initial distribution", model._sample_initial, key)
    if len(x0.shape) != 1:
        raise ValueError(f"the initial distribution gives particles of shape {x0.shape}; expected (n,)")
    n = x0.shape[0]
    y0 = jax.ShapeDtypeStruct(y.shape[-1:], y.dtype)
    x_spec = jax.ShapeDtypeStruct((n,), x0.dtype)
    x1 = _evaluate("the transition", lambda k, x: model._sample_transition(k, x, 0), key, x_spec)
    if x1.shape != (n,):
        raise ValueError(f"the transition moves a particle of shape ({n},) to shape {x1.shape}; expected "
                         f"({n},) (the state dimension of the initial distribution)")
    lg = _evaluate("the emission log-density", lambda x, yy: model.emission_log_prob(x, yy, 0), x_spec, y0)
    if lg.shape != ():
        raise ValueError(f"the emission log-density of one particle has shape {lg.shape}; expected a scalar")
    prop = config.proposal
    if prop.transition is not None:
        q1 = _evaluate(f"the proposal {_name('proposal(x_prev, y, t)', model.params)}",
                       lambda k, x, yy: _vector(_proposals.transition_proposal(prop, model, x, yy, 1).sample(k)),
                       key, x_spec, y0)
        if q1.shape != (n,):
            raise ValueError(f"the proposal {_name('proposal(x_prev, y, t)', model.params)} samples particles "
                             f"of shape {q1.shape}; expected ({n},)")
    if prop.initial is not None:
        q0 = _evaluate(f"the initial proposal {_name('initial(y0)', model.params)}",
                       lambda k, yy: _vector(_proposals.initial_proposal(prop, model, yy).sample(k)), key, y0)
        if q0.shape != (n,):
            raise ValueError(f"the initial proposal {_name('initial(y0)', model.params)} samples particles "
                             f"of shape {q0.shape}; expected ({n},)")
    if prop.look_ahead is not None:
        la = _evaluate("the look-ahead", lambda x, yy: _proposals.log_look_ahead(prop, model, x, yy, 1),
                       x_spec, y0)
        if la.shape != ():
            raise ValueError(f"the look-ahead log eta(x_prev, y, t) has shape {la.shape}; expected a scalar")
    if config.functions is not None:
        v = _evaluate("functions(x)", config.functions, x_spec)
        if len(getattr(v, "shape", ())) > 1:
            raise ValueError(f"functions(x) must return a scalar or a vector (k,), got shape {v.shape}")
    return n


def check_y(model, y, name="y"):
    """``y`` as a floating array ``(*batch, T, m)`` of the model's dtype (never the caller's
    buffer mutated); ``ValueError`` naming the shape or the position of an infinite value."""
    if isinstance(y, jax.core.Tracer):
        arr = y
    else:
        arr = jnp.asarray(np.asarray(y, dtype=float) if not hasattr(y, "dtype") else y)
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        arr = arr.astype(jnp.result_type(float))
    m = model.observation_dim
    if arr.ndim == 1 and m == 1:
        arr = arr[:, None]
    if arr.ndim < 2 or arr.shape[-1] != m or arr.shape[-2] < 1:
        raise ValueError(f"{name}: expected shape (*batch, T, m) with T >= 1 and m={m} (the emission's "
                         f"dimension), got {tuple(arr.shape)}")
    if not isinstance(arr, jax.core.Tracer) and np.any(np.isinf(np.asarray(arr))):
        pos = tuple(int(i) for i in np.argwhere(np.isinf(np.asarray(arr)))[0])
        raise ValueError(f"{name} contains an infinite value at index {pos}; use NaN for missing values")
    return arr


def raise_if_degenerate(result, y, start=0) -> None:
    """Raise :class:`DegenerateWeightsError` for the first degenerate step (concrete results)."""
    steps = np.asarray(result.degenerate_step)
    if not np.any(steps >= 0):
        return
    where = tuple(int(i) for i in np.argwhere(steps >= 0)[0])
    t = int(steps[where])
    batch = f" (batch index {where})" if where else ""
    y_t = np.asarray(y)[where + (t,)]
    raise DegenerateWeightsError(
        f"particle weights degenerate at step t={start + t}{batch}: every particle's weight is zero "
        f"(or one is NaN/+inf); y[{t}] = {y_t} is impossible under all {result.particles.shape[-2]} "
        "particles. Check the model and parameters at this step, use more particles or a guided "
        "proposal, or pass errors='ignore' to get log_likelihood = -inf and degenerate_step instead")
