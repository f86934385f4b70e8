"""Programs compiled once per model structure, and the time buckets that let them be reused.

An estimator on the linear-Gaussian engine turns a parameter vector into an :class:`LGSSM` with
``_build(params, aux)``, which reads the estimator only through its structure (hyper-parameters
and what they resolve to; :meth:`~probssm.kalman.forecaster.LinearGaussianForecaster._structure`)
and takes data and fixed matrices in ``aux``. So the log-likelihood, the builder and the panel
programs are compiled once per structure and shared by every fit of that shape.

The caches below hold a *structure template* (:func:`structure_template`), an unfitted copy
that carries no data and no fitted state, never the estimator that was fitted first: caching
that one would keep its data alive for the life of the process.

Series of a new length would still re-trace and re-compile every program. :func:`bucket_length`
rounds lengths up to a small set, and the estimators pad the data to it with missing
observations, which add nothing to the log-likelihood (a missing step's term is 0) and leave the
filtered and smoothed states of the observed steps unchanged.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from .._compile import jit
from . import sharding
from .inference import filter as kalman_filter
from .inference import log_likelihood as kalman_log_likelihood

__all__ = [
    "bucket_length", "pad_time", "structure_template", "objective", "in_units", "builder",
    "panel_maps", "panel_filter", "state_after",
]

# Series up to this many steps all share one program: a filter over at most 128 steps costs a
# few milliseconds an evaluation even for a seasonal ARIMA's 14 states, while tracing and
# compiling a new length costs a second.
_MIN_BUCKET = 128
# Longer series are padded to the next multiple of 1/4 of their octave (at most 25 % more steps,
# 4 programs an octave).
_STEPS_PER_OCTAVE = 4


def bucket_length(num_timesteps: int) -> int:
    """The padded length of a series of ``num_timesteps = T`` steps: 128 up to 128 steps,
    beyond that the next multiple of :math:`2^{\\lfloor\\log_2 T\\rfloor - 2}` (at most 25 %
    more steps)."""
    T = int(num_timesteps)
    if T <= _MIN_BUCKET:
        return _MIN_BUCKET
    step = 1 << (T.bit_length() - 1 - int(np.log2(_STEPS_PER_OCTAVE)))
    return -(-T // step) * step


def pad_time(values: np.ndarray | None, length: int, fill: float):
    """``values`` ``(T, ...)`` extended along time to ``length`` rows of ``fill`` (``None``
    stays ``None``). A copy; the input is never changed."""
    if values is None:
        return None
    values = np.asarray(values)
    extra = length - values.shape[0]
    if extra < 0:
        raise ValueError(f"cannot pad {values.shape[0]} time steps to {length}")
    pad = np.full((extra,) + values.shape[1:], fill, dtype=values.dtype)
    return np.concatenate([values, pad])


_STRUCTURE_TEMPLATES: dict = {}
_PROGRAMS: dict = {}


def _key(est):
    return type(est), est._structure()


def structure_template(est):
    """An unfitted estimator of ``est``'s class and structure: its hyper-parameters and the
    attributes named in ``_structure_attributes`` (what ``_build`` and the parameter maps read),
    none of its data or fitted state. One per structure."""
    key = _key(est)
    if key not in _STRUCTURE_TEMPLATES:
        template = type(est)(**est.get_params(deep=False))
        for name in est._structure_attributes:
            setattr(template, name, getattr(est, name))
        _STRUCTURE_TEMPLATES[key] = template
    return _STRUCTURE_TEMPLATES[key]


def _cached(name, est, make, *extra):
    key = (name, *_key(est), *extra)
    if key not in _PROGRAMS:
        _PROGRAMS[key] = make(structure_template(est))
    return _PROGRAMS[key]


def _log_likelihood(theta, y, aux, *, template, natural, burn):
    params = theta if natural else template._to_natural(theta)
    model, _ = template._model(params, aux, burn=burn)
    return kalman_log_likelihood(model, y, burn=burn)


def objective(est, burn: int, natural: bool = False):
    """:math:`\\log L` as ``f(theta, y, aux)`` over unconstrained parameters ``theta`` ``(k,)``
    (natural ones with ``natural=True``), ``y`` ``(T, m)``; one function object per structure,
    so :mod:`probssm.fit` compiles its gradient once."""
    return _cached("objective", est, lambda t: partial(_log_likelihood, template=t, natural=natural, burn=burn),
                   burn, natural)


def _objective_in_units(u, y, aux, units, *, objective):
    return objective(u * units, y, aux)


def in_units(fn):
    """``fn(theta, y, aux)`` as a function of ``u = theta / units``, ``g(u, y, aux, units)``
    (one function object per ``fn``)."""
    key = ("in units", fn)
    if key not in _PROGRAMS:
        _PROGRAMS[key] = partial(_objective_in_units, objective=fn)
    return _PROGRAMS[key]


def builder(est):
    """``_build(params, aux) -> LGSSM`` jitted once per structure. Building a model op by op
    dispatches dozens of small operations, each forecast of each series; one program compiles
    once. Plain ``jax.jit`` (no compiler options): it is also called inside traced objectives."""
    return _cached("build", est, lambda t: jax.jit(t._build))


def panel_maps(est):
    """Batched ``(to_unconstrained, to_natural)`` maps ``(B, k) -> (B, k)`` returning NumPy
    arrays, jitted once per structure."""
    def make(template):
        maps = [jit(jax.vmap(f)) for f in (template._to_unconstrained, template._to_natural)]
        return tuple(lambda x, f=f: np.asarray(f(jnp.asarray(x))) for f in maps)

    return _cached("maps", est, make)


def state_after(result, num_timesteps):
    """The prediction :math:`p(x_T \\mid y_{0:T-1})` of the state after the first
    ``num_timesteps = T`` steps of a filter ``result`` over ``T`` or more (padded) steps:
    ``(mean (*batch, n), cov (*batch, n, n))``. ``num_timesteps`` may be traced."""
    length = result.predicted_mean.shape[-2]
    inside = num_timesteps < length  # padded: the filter's one-step prediction at step T
    step = jnp.minimum(num_timesteps, length - 1)
    mean = jnp.where(inside, jnp.take(result.predicted_mean, step, axis=-2), result.next_mean)
    cov = jnp.where(inside, jnp.take(result.predicted_cov, step, axis=-3), result.next_cov)
    return mean, cov


def _filter_at(params, y, aux, num_timesteps, *, template, burn):
    model, _ = template._model(params, aux, burn=burn)
    res = kalman_filter(model, y, method="sequential", burn=burn)
    return (res.log_likelihood, *state_after(res, num_timesteps))


def panel_filter(est, burn: int):
    """``(params (B, k), Y (B, T', 1), aux, T) -> (log L (B,), mean (B, n), cov (B, n, n))``:
    the log-likelihoods and the predictions of the state after the first ``T`` of the ``T'``
    (padded) steps, jitted once per structure; with several devices the series are spread over
    them (:mod:`probssm.kalman.sharding`)."""
    def make(template):
        one = jax.vmap(partial(_filter_at, template=template, burn=burn), in_axes=(0, 0, None, None))
        return jit(lambda params, Y, aux, T: sharding.map_series(
            one, (params, Y, aux, T), (0, 0, None, None), params.shape[0]))

    return _cached("panel filter", est, make, burn)
