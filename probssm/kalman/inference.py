"""Functional inference for linear-Gaussian state-space models: filter, smooth, likelihood,
sampling and forecasting.

All functions work under ``jit``, ``vmap`` and ``grad``, follow the dtype of their inputs, and
broadcast leading batch axes of the model and the observations. Observations have shape
``(*batch, T, m)``; NaN marks a missing entry (a whole row or single entries).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ._linalg import psd_sqrt, symmetrize
from .batching import batch_shape_for, vmap_batch
from .model import LGSSM
from . import parallel, sequential, sharding
from .ops import filter_kernel
from .ops.states import FilterStates, SmootherStates

__all__ = [
    "METHODS", "GaussianState", "FilterResult", "SmoothResult", "ForecastResult",
    "filter", "smooth", "log_likelihood", "sample", "forecast",
]

METHODS = ("sequential", "parallel", "kernel")
r"""Inference methods.

``"sequential"``: one step after another (``lax.scan``), :math:`O(T)` work and depth; handles exact
diffuse priors. ``"parallel"``: square-root associative scan, :math:`O(T)` work and
:math:`O(\log T)` depth, for long series on accelerators; a model with a diffuse prior
(``initial_diffuse_cov != 0``) is filtered sequentially instead, with the same results.
``"kernel"``: the fused chunked filter and smoother of :mod:`probssm.kalman.ops.filter_kernel`
(Pallas; Triton
on a GPU, the Pallas interpreter on a CPU, which is slow and meant for tests), for time-invariant
and time-varying models (e.g. a GP on irregular times, the passes of the iterated nonlinear
smoothers); models it does not support (batched parameters, ``n > 8`` or ``m > 8``: static
conditions) use ``"parallel"``, a diffuse prior the sequential recursions, with the same
results. The prior is
settled before compiling where the model is concrete or built without a diffuse part
(``LGSSM.proper_prior``); only a traced diffuse part leaves the program holding the kernel and
the sequential filter, chosen by ``lax.cond``.
``"auto"`` picks ``"kernel"`` on a GPU, ``"parallel"`` on a TPU for series of at least 256 steps,
and ``"sequential"`` otherwise (always on a CPU).
"""
_AUTO_PARALLEL_MIN_T = 256

# Float32 matrix products at full precision: on GPUs JAX's default float32 ``dot`` may run in TF32
# (about 10 mantissa bits), which put errors of ~1e-3 into filtered means on an H100; the filters'
# small products cost little either way.
_FULL_PRECISION = jax.default_matmul_precision("highest")


class GaussianState(NamedTuple):
    """A Gaussian over the state: ``mean`` ``(*batch, n)``, ``cov`` ``(*batch, n, n)``."""

    mean: jax.Array
    cov: jax.Array


class FilterResult(NamedTuple):
    """Output of :func:`filter`. Shapes for ``T`` steps, state dim ``n``, observation dim ``m``.

    Attributes
    ----------
    mean, cov : ``(*batch, T, n)``, ``(*batch, T, n, n)``
        Filtered moments of :math:`p(x_t \\mid y_{0:t})`. During an exact diffuse period ``cov``
        is the finite part :math:`P_{*,t|t}` (as in statsmodels).
    predicted_mean, predicted_cov : ``(*batch, T, n)``, ``(*batch, T, n, n)``
        One-step predictions :math:`p(x_t \\mid y_{0:t-1})`; index 0 is the prior.
    predicted_diffuse_cov : ``(*batch, T, n, n)``
        :math:`P_{\\infty,t}`, the diffuse part of the predicted covariance (zero once proper).
    observation_mean, observation_cov : ``(*batch, T, m)``, ``(*batch, T, m, m)``
        One-step predictive moments of :math:`y_t` (:math:`H_t a_t + d_t`,
        :math:`H_t P_t H_t^T + R_t`), computed also where :math:`y_t` is missing.
        These five fields are ``None`` when :func:`filter` ran with ``predictions=False``.
    log_likelihood_terms : ``(*batch, T)``
        :math:`\\log p(y_t \\mid y_{0:t-1})` over the observed entries; 0 for a missing row.
        In an exact diffuse period the term is the diffuse likelihood
        :math:`-\\tfrac12(\\log 2\\pi + \\log F_\\infty)` of Koopman (1997).
    log_likelihood : ``(*batch,)``
        Sum of ``log_likelihood_terms[burn:]``.
    next_mean, next_cov : ``(*batch, n)``, ``(*batch, n, n)``
        Prediction of the state one step past the data, :math:`p(x_T \\mid y_{0:T-1})`.
    """

    mean: jax.Array
    cov: jax.Array
    predicted_mean: jax.Array
    predicted_cov: jax.Array
    predicted_diffuse_cov: jax.Array
    observation_mean: jax.Array
    observation_cov: jax.Array
    log_likelihood_terms: jax.Array
    log_likelihood: jax.Array
    next_mean: jax.Array
    next_cov: jax.Array

    @property
    def final_state(self) -> GaussianState:
        """The filtered state at the last time step, the starting point of :func:`forecast`."""
        return GaussianState(self.mean[..., -1, :], self.cov[..., -1, :, :])


class SmoothResult(NamedTuple):
    """Output of :func:`smooth`.

    Attributes
    ----------
    mean, cov : ``(*batch, T, n)``, ``(*batch, T, n, n)``
        Smoothed moments of :math:`p(x_t \\mid y_{0:T-1})`.
    lag_one_cov : ``(*batch, T-1, n, n)``
        :math:`\\mathrm{Cov}(x_{t+1}, x_t \\mid y_{0:T-1})` (needed by EM); defined once the prior
        is proper, i.e. after any exact diffuse period.
    filtered : FilterResult
        The forward pass.
    """

    mean: jax.Array
    cov: jax.Array
    lag_one_cov: jax.Array
    filtered: FilterResult

    @property
    def log_likelihood(self):
        """Same as ``filtered.log_likelihood``."""
        return self.filtered.log_likelihood


class ForecastResult(NamedTuple):
    """Output of :func:`forecast` for ``h`` steps.

    Attributes
    ----------
    state_mean, state_cov : ``(*batch, h, n)``, ``(*batch, h, n, n)``
    observation_mean, observation_cov : ``(*batch, h, m)``, ``(*batch, h, m, m)``
    """

    state_mean: jax.Array
    state_cov: jax.Array
    observation_mean: jax.Array
    observation_cov: jax.Array


def _resolve_method(method: str, num_timesteps: int) -> str:
    if method == "auto":
        backend = jax.default_backend()
        if backend in ("gpu", "cuda"):
            return "kernel"
        return "parallel" if backend == "tpu" and num_timesteps >= _AUTO_PARALLEL_MIN_T else "sequential"
    if method not in METHODS:
        raise ValueError(f"method must be 'auto' or one of {METHODS}, got {method!r}")
    return method


@dataclass(frozen=True)
class Route:
    """Where a call computes: ``method``, one of :data:`METHODS`, and whether the value condition
    of the kernel and the parallel scan (a proper prior) was ``checked`` before compiling, so
    that the program holds only that path (unchecked, it decides by ``lax.cond``, with the
    sequential filter as the other branch). Hashable: a static argument of the jitted
    functions."""

    method: str
    checked: bool = False

    @property
    def kernel(self) -> bool:
        return self.method == "kernel"


def _route(method: str, model: LGSSM, y) -> Route:
    """Decide the value-dependent fallback now where the model's values are concrete.

    The kernel and the parallel scan need a proper prior (``initial_diffuse_cov == 0``); a
    diffuse one goes to the sequential filter. A model built without a diffuse part
    (``LGSSM.proper_prior``, static, so also when traced, e.g. in an MLE objective under ``jit``)
    or a concrete model (also inside an outer ``jit``, e.g. ``jax.jit(lambda y: filter(model,
    y))``) is settled here and the compiled program holds only the path taken
    (``Route(method, checked=True)``). Otherwise (a traced diffuse part) it is decided inside
    the program by ``lax.cond``, whose other branch is the sequential filter.
    """
    if method == "sequential":
        return Route(method)
    if getattr(model, "proper_prior", False):  # static: built without a diffuse part
        proper = True
    elif any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(model)):
        return Route(method)
    else:
        with jax.ensure_compile_time_eval():  # concrete values, also inside an outer jit
            proper = not bool(jnp.any(model.initial_diffuse_cov != 0))
    if not proper:
        return Route("sequential")
    if method == "kernel" and filter_kernel.supported(model, y):
        return Route("kernel", checked=True)
    return Route("parallel", checked=True)


def _single(route: Route, smooth: bool):
    """The one-series function of a route, returning a dict of outputs. Per series the kernel is
    the parallel scan; the scan defers diffuse priors to the sequential recursion, by
    ``lax.cond`` unless already checked."""
    seq = sequential.smooth_single if smooth else sequential.filter_single
    if route.method == "sequential":
        return seq
    par = parallel.smooth_single if smooth else parallel.filter_single

    def par_clean(model, y):
        out = par(model, y)
        out.pop("cov_sqrt")
        return out

    if route.checked:
        return par_clean
    return lambda model, y: jax.lax.cond(
        jnp.any(model.initial_diffuse_cov != 0), seq, par_clean, model, y
    )


def _check_observations(model: LGSSM, y):
    y = jnp.asarray(y) if not isinstance(y, jax.core.Tracer) else y
    if y.ndim < 2:
        raise ValueError(
            f"y: expected shape (*batch, T, m) with m={model.observation_dim}, got {y.shape}; "
            "reshape a single univariate series with y[:, None]"
        )
    if y.shape[-1] != model.observation_dim:
        raise ValueError(
            f"y: expected last axis m={model.observation_dim} (the model's observation dimension), "
            f"got shape {y.shape}"
        )
    T = model.num_timesteps
    if T is not None and T != y.shape[-2]:
        raise ValueError(
            f"y has {y.shape[-2]} time steps but the model's time-varying fields "
            f"{sorted(model.time_varying)} have {T}"
        )
    # Reduce on the device first, so that device-resident data is not copied to the host; evaluate
    # now even inside an outer jit, where y may be a concrete constant.
    if not isinstance(y, jax.core.Tracer):
        with jax.ensure_compile_time_eval():
            has_inf = bool(jnp.any(jnp.isinf(y)))
        if has_inf:
            pos = tuple(int(i) for i in np.argwhere(np.isinf(np.asarray(y)))[0])
            raise ValueError(f"y contains an infinite value at index {pos}; use NaN for missing values")
    if not jnp.issubdtype(y.dtype, jnp.floating):
        y = y.astype(model.initial_cov.dtype)
    return y


def _results_dtype(model: LGSSM, y):
    dtype = jnp.result_type(*jax.tree_util.tree_leaves(model), y)
    return jax.tree_util.tree_map(lambda x: x.astype(dtype), model), y.astype(dtype)


def _filter_result(states: FilterStates, burn) -> FilterResult:
    terms = states.log_likelihood_terms
    return FilterResult(**states._asdict(), log_likelihood=jnp.sum(terms[..., burn:], axis=-1))


@partial(jax.jit, static_argnames=("burn", "route", "predictions"))
@_FULL_PRECISION
def _filter_jit(model, y, burn, route, predictions=True):
    model, y = _results_dtype(model, y)
    if route.kernel and filter_kernel.supported(model, y):
        return _filter_result(_kernel_outputs(model, y, False, route.checked, predictions), burn)
    single = _single(route, smooth=False)
    return vmap_batch(
        lambda m_, y_: _filter_result(FilterStates.from_mapping(single(m_, y_), predictions),
                                      burn),
        model, [y], [2])


def _kernel_outputs(model, y, smooth, checked, predictions=True):
    """The kernel on all series at once (``y`` ``(*batch, T, m)``): its
    :class:`~probssm.kalman.ops.states.SmootherStates` or
    :class:`~probssm.kalman.ops.states.FilterStates` (without the one-step predictions unless
    ``predictions``) with the batch axes restored. Unless the values were ``checked`` already,
    it falls back to the sequential recursion for values it does not support (by
    ``lax.cond``)."""
    batch, (T, m) = y.shape[:-2], y.shape[-2:]
    flat = y.reshape((-1, T, m))
    if smooth:
        fast = filter_kernel.smooth_states
    else:
        fast = partial(filter_kernel.filter_states, predictions=predictions)
    if checked:
        run = fast
    else:
        seq = sequential.smooth_single if smooth else sequential.filter_single

        def slow(m_, y_):
            out = jax.vmap(lambda yy: seq(m_, yy))(y_)
            if smooth:
                return SmootherStates.from_mapping(out)
            return FilterStates.from_mapping(out, predictions)

        def run(m_, y_):
            return jax.lax.cond(filter_kernel.runtime_supported(m_, y_), fast, slow, m_, y_)
    # the series spread over the local devices where there are several (the model is shared)
    out = sharding.map_series(run, (model, flat), (None, 0), flat.shape[0])
    return jax.tree_util.tree_map(lambda a: a.reshape(batch + a.shape[1:]), out)


@partial(jax.jit, static_argnames=("burn", "route"))
@_FULL_PRECISION
def _log_likelihood_jit(model, y, burn, route):
    model, y = _results_dtype(model, y)
    if route.kernel and burn == 0 and filter_kernel.supported(model, y):
        batch, (T, m) = y.shape[:-2], y.shape[-2:]
        flat = y.reshape((-1, T, m))
        if route.checked:
            run = filter_kernel.log_likelihood_sums
        else:
            def slow(m_, y_):
                return jax.vmap(lambda yy: sequential.filter_single(m_, yy)["log_likelihood_terms"].sum())(y_)

            def run(m_, y_):
                return jax.lax.cond(filter_kernel.runtime_supported(m_, y_),
                                    filter_kernel.log_likelihood_sums, slow, m_, y_)
        return sharding.map_series(run, (model, flat), (None, 0), flat.shape[0]).reshape(batch)
    return _filter_jit(model, y, burn, route, False).log_likelihood


@partial(jax.jit, static_argnames=("route",))
@_FULL_PRECISION
def _smooth_jit(model, y, route):
    model, y = _results_dtype(model, y)

    def result(states: SmootherStates):
        return SmoothResult(states.smoothed_mean, states.smoothed_cov, states.lag_one_cov,
                            _filter_result(states.filtered, 0))

    if route.kernel and filter_kernel.supported(model, y):
        return result(_kernel_outputs(model, y, True, checked=route.checked))
    single = _single(route, smooth=True)
    return vmap_batch(lambda m_, y_: result(SmootherStates.from_mapping(single(m_, y_))), model,
                      [y], [2])


def filter(model: LGSSM, y, *, method: str = "auto", burn: int = 0,
           predictions: bool = True) -> FilterResult:
    """Kalman filter.

    Parameters
    ----------
    model : LGSSM
    y : array, shape ``(*batch, T, m)``; NaN entries are missing.
    method : ``"auto"``, ``"sequential"``, ``"parallel"`` or ``"kernel"`` (see :data:`METHODS`)
    burn : int
        Number of leading log-likelihood terms left out of ``log_likelihood`` (statsmodels'
        ``loglikelihood_burn``; use the diffuse rank with an approximate diffuse prior).
    predictions : bool
        Return the one-step predictions (``predicted_mean``, ``predicted_cov``,
        ``predicted_diffuse_cov``, ``observation_mean``, ``observation_cov``). ``False`` leaves
        them ``None``: the result then holds about half the memory (``T n (n + 1)`` floats
        fewer at ``m <= n``), and with ``method="kernel"`` they are never written (statsmodels'
        ``conserve_memory`` with ``MEMORY_NO_PREDICTED | MEMORY_NO_FORECAST``). Filtered
        moments and log-likelihood are the same either way.

    Returns
    -------
    FilterResult
        For each step the prediction :math:`a_t = E[x_t | y_{<t}]` and the update
        :math:`E[x_t | y_{\\le t}]`, with covariances, and
        :math:`\\log p(y) = \\sum_t \\log N(y_t; H_t a_t + d_t, H_t P_t H_t^T + R_t)`.
    """
    y = _check_observations(model, y)
    route = _route(_resolve_method(method, y.shape[-2]), model, y)
    if not 0 <= burn <= y.shape[-2]:
        raise ValueError(f"burn must be in [0, T={y.shape[-2]}], got {burn}")
    return _filter_jit(model, y, int(burn), route, bool(predictions))


def smooth(model: LGSSM, y, *, method: str = "auto") -> SmoothResult:
    """Rauch-Tung-Striebel smoother (computed by the equivalent backward (r, N) recursion).

    Parameters
    ----------
    model : LGSSM
    y : array, shape ``(*batch, T, m)``; NaN entries are missing.
    method : ``"auto"``, ``"sequential"``, ``"parallel"`` or ``"kernel"`` (see :data:`METHODS`)

    Returns
    -------
    SmoothResult
        :math:`E[x_t \\mid y_{0:T-1}]`, :math:`\\mathrm{Cov}[x_t \\mid y_{0:T-1}]`, the lag-one
        cross-covariances and the filter's result. Exact diffuse priors are smoothed exactly.
    """
    y = _check_observations(model, y)
    return _smooth_jit(model, y, _route(_resolve_method(method, y.shape[-2]), model, y))


def log_likelihood(model: LGSSM, y, *, method: str = "auto", burn: int = 0):
    """:math:`\\log p(y_{burn:T} \\mid y_{0:burn})` under ``model``; shape ``(*batch,)``.

    Differentiable in the model's fields and in ``y`` (use it as an MLE objective). With
    ``method="kernel"`` it writes no per-step states, and its gradient is the exact score from
    the kernel filter's moments (:func:`probssm.kalman.ops.adjoint.log_likelihood_vjp`).
    """
    y = _check_observations(model, y)
    route = _route(_resolve_method(method, y.shape[-2]), model, y)
    if not 0 <= burn <= y.shape[-2]:
        raise ValueError(f"burn must be in [0, T={y.shape[-2]}], got {burn}")
    return _log_likelihood_jit(model, y, int(burn), route)


@partial(jax.jit, static_argnames=("num_timesteps", "sample_shape"))
@_FULL_PRECISION
def _sample_jit(model, key, num_timesteps, sample_shape):
    def one(m_, key_):
        n, m = m_.state_dim, m_.observation_dim
        k0, k_state, k_obs = jax.random.split(key_, 3)
        dtype = m_.initial_cov.dtype
        x0 = m_.initial_mean + psd_sqrt(m_.initial_cov) @ jax.random.normal(k0, (n,), dtype)
        eta = jax.random.normal(k_state, (num_timesteps, n), dtype)
        eps = jax.random.normal(k_obs, (num_timesteps, m), dtype)
        varying = {k: getattr(m_, k) for k in m_.time_varying}

        def p(name, t_in):
            return t_in[name] if name in t_in else getattr(m_, name)

        def step(x, inputs):
            eta_t, eps_t, t_in = inputs
            y = p("observation_matrix", t_in) @ x + p("observation_offset", t_in) \
                + psd_sqrt(p("observation_cov", t_in)) @ eps_t
            x_next = p("transition_matrix", t_in) @ x + p("transition_offset", t_in) \
                + psd_sqrt(p("transition_cov", t_in)) @ eta_t
            return x_next, (x, y)

        _, (states, obs) = jax.lax.scan(step, x0, (eta, eps, varying))
        return states, obs

    keys = jax.random.split(key, int(np.prod(sample_shape, dtype=int)) or 1)
    draws = jax.vmap(lambda k: vmap_batch(lambda m_, k_: one(m_, k_), model, [k], [1]))(
        _batch_keys(keys, model.batch_shape)
    )
    return jax.tree_util.tree_map(lambda a: a.reshape(sample_shape + a.shape[1:]), draws)


def _batch_keys(keys, batch_shape):
    """One key per (sample, batch element): ``(S, *batch, 2)`` raw keys."""
    size = int(np.prod(batch_shape, dtype=int))
    split = jax.vmap(lambda k: jax.random.split(k, size))(keys)
    return split.reshape((keys.shape[0], *batch_shape, *split.shape[2:]))


def sample(model: LGSSM, key, num_timesteps: int, *, sample_shape: tuple[int, ...] = ()):
    """Draw joint samples of states and observations.

    Parameters
    ----------
    model : LGSSM
        Must have a proper prior (``initial_diffuse_cov == 0``); time-varying fields need
        ``num_timesteps`` steps.
    key : a JAX PRNG key (``jax.random.key`` or ``PRNGKey``)
    num_timesteps : int, ``T``
    sample_shape : tuple of int

    Returns
    -------
    states : ``(*sample_shape, *batch, T, n)``
    observations : ``(*sample_shape, *batch, T, m)``
    """
    if model.num_timesteps is not None and model.num_timesteps != num_timesteps:
        raise ValueError(
            f"num_timesteps={num_timesteps} but the model's time-varying fields have "
            f"{model.num_timesteps} steps"
        )
    if not isinstance(model.initial_diffuse_cov, jax.core.Tracer) and np.any(
        np.asarray(model.initial_diffuse_cov) != 0
    ):
        raise ValueError("cannot sample from a model with a diffuse prior (initial_diffuse_cov != 0)")
    if jnp.issubdtype(jnp.asarray(key).dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return _sample_jit(model, key, int(num_timesteps), tuple(int(s) for s in sample_shape))


@partial(jax.jit, static_argnames=("horizon",))
@_FULL_PRECISION
def _forecast_jit(model, mean, cov, horizon):
    def one(m_, mean_, cov_):
        varying = {k: getattr(m_, k) for k in m_.time_varying}

        def p(name, t_in):
            return t_in[name] if name in t_in else getattr(m_, name)

        def step(carry, t_in):
            a, P = carry
            a = p("transition_matrix", t_in) @ a + p("transition_offset", t_in)
            F = p("transition_matrix", t_in)
            P = symmetrize(F @ P @ F.T + p("transition_cov", t_in))
            H = p("observation_matrix", t_in)
            y_mean = H @ a + p("observation_offset", t_in)
            y_cov = symmetrize(H @ P @ H.T + p("observation_cov", t_in))
            return (a, P), (a, P, y_mean, y_cov)

        _, out = jax.lax.scan(step, (mean_, cov_), varying, length=horizon)
        return ForecastResult(*out)

    return vmap_batch(one, model, [mean, cov], [1, 2])


def forecast(model: LGSSM, filtered_state, horizon: int) -> ForecastResult:
    """Forecast ``horizon`` steps ahead from a filtered state.

    Starting from :math:`x_{T-1} \\sim N(m, P)` (the last filtered state), step ``k = 0..h-1``
    gives :math:`x_{T+k} = F x_{T+k-1} + b + \\eta`, :math:`y_{T+k} = H x_{T+k} + d + \\varepsilon`.

    Parameters
    ----------
    model : LGSSM
        The dynamics of the forecast period. Its time-varying fields, if any, have ``horizon``
        steps, index ``k`` holding the transition into forecast step ``k`` and the observation
        model at step ``k``.
    filtered_state : GaussianState or FilterResult
        ``mean`` ``(*batch, n)`` and ``cov`` ``(*batch, n, n)``; a FilterResult uses its last step.
    horizon : int, ``h >= 1``

    Returns
    -------
    ForecastResult
        State and observation means ``(*batch, h, n|m)`` and covariances ``(*batch, h, ., .)``.
    """
    if isinstance(filtered_state, FilterResult):
        filtered_state = filtered_state.final_state
    mean, cov = filtered_state
    if int(horizon) < 1:
        raise ValueError(f"horizon must be a positive integer, got {horizon}")
    if model.num_timesteps is not None and model.num_timesteps != horizon:
        raise ValueError(
            f"horizon={horizon} but the model's time-varying fields have {model.num_timesteps} steps"
        )
    n = model.state_dim
    if jnp.shape(mean)[-1:] != (n,) or jnp.shape(cov)[-2:] != (n, n):
        raise ValueError(
            f"filtered_state: expected mean (..., {n}) and cov (..., {n}, {n}), got "
            f"{jnp.shape(mean)} and {jnp.shape(cov)}"
        )
    batch_shape_for(model, [mean, cov], [1, 2])
    return _forecast_jit(model, mean, cov, int(horizon))
