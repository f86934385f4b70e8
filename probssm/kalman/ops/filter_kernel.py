r"""Fused, work-efficient Kalman filter and smoother kernels (Pallas: Triton on GPU,
``interpret=True`` on CPU): the JAX-facing entry points.

The series is cut into chunks of ``L`` steps (:func:`default_chunk`), every chunk of every
series one *lane*; the Pallas programs (:mod:`.filter_programs`) summarise each chunk as a
filtering element, a chunk scan (:mod:`.chunk_scan`) gives the state entering every chunk, and
a fix-up reruns each chunk from it, writing every step's moments once; the smoother adds a
backward summary, a reverse chunk scan and a backward pass. XLA transposes the lane-minor
outputs to ``(B, T, ...)`` once at the end (:class:`~.states.FilterStates`,
:class:`~.states.SmootherStates`). Work is :math:`O(T n^3)`, like the sequential filter; the
depth is :math:`O(L + G \log_G(T/L))` for chunk-scan groups of ``G``.

Supported (otherwise :func:`probssm.kalman.filter` uses ``"parallel"`` with the same results):
a model without batch axes, time-invariant or with time-varying fields of the series' length
(:math:`F_t, Q_t, b_t, H_t, R_t, d_t`, read per step from one time-major row; step ``t``
updates with :math:`H_t, R_t, d_t` and predicts :math:`x_{t+1}` with :math:`F_t, Q_t, b_t`),
``n <= 8``, ``m <= 8``, float32/float64 (all static conditions, :func:`supported`), and a
proper prior (a value, :func:`runtime_supported`). The programs of a time-invariant model are
those without the time-varying reads (a static flag,
:func:`probssm.kalman.ops.filter_programs.varying_keys`).
Gradients: the reverse mode of the filter and the smoother (and so the exact score of the
log-likelihood) computed from the kernels' own outputs by backward scans of small matrix
products (:mod:`.adjoint`: quick to compile, no recomputation).
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp

from . import adjoint, launch, tiles
from . import filter_programs as programs
from . import lane_algebra as ka
from . import scan_elements as elements
from .chunk_scan import DEFAULT_GROUP, chunk_scan
from .states import FilterStates, SmootherStates
from .._linalg import matmul, matvec, symmetrize, unfolded
from ..model import LGSSM

MAX_STATE_DIM = 8
MAX_OBS_DIM = 8
DEFAULT_BLOCK = 32
# Chunk length by series length: short chunks give more lanes and a shorter sequential pass
# through each chunk, long ones fewer chunk elements for the chunk scan; long series run
# fastest with the longer chunks (benchmarks/README.md).
SHORT_CHUNK, LONG_CHUNK, LONG_SERIES = 32, 64, 32 * 4096


def default_chunk(T: int) -> int:
    """Chunk length for series of ``T`` steps: 32, or 64 above :math:`2^{17}` steps."""
    return LONG_CHUNK if T > LONG_SERIES else SHORT_CHUNK


def supported(model: LGSSM, y) -> bool:
    """Static (shape and dtype) conditions for the kernel: a model without batch axes
    (time-invariant, or with time-varying fields of the series' length ``T``), ``n <= 8``,
    ``m <= 8``, float32/float64 observations (which may carry batch axes)."""
    return (
        model.num_timesteps in (None, y.shape[-2])
        and model.batch_shape == ()
        and 1 <= model.state_dim <= MAX_STATE_DIM
        and 1 <= model.observation_dim <= MAX_OBS_DIM
        and jnp.dtype(y.dtype) in (jnp.dtype(jnp.float32), jnp.dtype(jnp.float64))
    )


def runtime_supported(model: LGSSM, y=None):
    """Value condition (traced): a proper prior (``initial_diffuse_cov == 0``). ``y`` is not
    needed (partly missing rows are decorrelated step by step inside the kernels); it is accepted
    for compatibility."""
    del y
    return jnp.all(model.initial_diffuse_cov == 0)


# -- drivers ------------------------------------------------------------------------------------
def _geometry(T, B, chunk, block):
    chunk = max(1, min(default_chunk(T) if chunk is None else chunk, T))
    chunks = -(-T // chunk)
    lanes = B * chunks
    return chunk, chunks, lanes, launch.padded(lanes, block)


def _from_lane_minor(x, B, T, chunks, shape):
    """``(L, R, lanes)`` (``R >= r = prod(shape)`` rows) -> ``(B, T, *shape)``."""
    L, r = x.shape[0], math.prod(shape)
    x = jnp.transpose(x[:, :r, :B * chunks], (2, 0, 1)).reshape(B, chunks * L, r)
    return x[:, :T].reshape((B, T) + shape)


_STATE_FIELDS = ("mean", "cov", "predicted_mean", "predicted_cov", "observation_mean",
                 "observation_cov", "log_likelihood_terms")


_FILTERED_FIELDS = ("mean", "cov", "log_likelihood_terms")


def _state_shapes(n, m):
    return dict(zip(_STATE_FIELDS, ((n,), (n, n), (n,), (n, n), (m,), (m, m), ())))


def _written(n, predictions=True):
    """The fields the fix-up kernel writes: all of them, or the filtered moments and
    log-likelihood terms only, without ``predictions`` or for ``n >``
    :data:`probssm.kalman.ops.lane_algebra.LOOP_ROWS` (the predicted and observation moments then
    come from them in XLA, :func:`predictions_from_filtered`): every store adds to Triton's
    compile time, which at ``n = 8`` the fix-up sets."""
    if n > ka.LOOP_ROWS or not predictions:
        return _FILTERED_FIELDS
    return _STATE_FIELDS


def _forward(model, y, written, chunk, block, group, top, interpret):
    """Summary, chunk scan and fix-up writing the fields ``written`` (lane-minor), or only the
    chunks' log-likelihoods if there are none."""
    y = unfolded(y)
    B, T, m = y.shape
    n = model.state_dim
    dtype = y.dtype
    chunk, chunks, lanes, padded_lanes = _geometry(T, B, chunk, block)
    varying = programs.varying_keys(model)
    params = _parameter_inputs(model, varying)
    y = y.reshape(B * T, m)
    alg = elements.filter_algebra(n)
    (chunk_elements,) = launch.call(
        programs.summary_kernel(n, m, T, B, chunk, chunks, block, dtype, varying), params + [y],
        [jax.ShapeDtypeStruct((tiles.pow2(tiles.rows(alg.element_shapes)), padded_lanes), dtype)],
        lanes, block, interpret)
    states = chunk_scan(alg, chunk_elements, B, chunks, group=group, top=top,
                        interpret=interpret)
    if written:
        shapes = _state_shapes(n, m)
        outs = [jax.ShapeDtypeStruct((chunk, tiles.pow2(math.prod(shapes[f])), padded_lanes), dtype)
                for f in written]
    else:
        outs = [jax.ShapeDtypeStruct((1, padded_lanes), dtype)]
    result = launch.call(
        programs.fixup_kernel(n, m, T, B, chunk, chunks, block, dtype, written, varying),
        params + [states, y], outs, lanes, block, interpret)
    return result, (chunk, chunks, lanes, padded_lanes, params)


def _parameter_inputs(model, varying):
    """The kernels' parameter inputs: the flat vector of the time-invariant fields, and with
    time-varying fields ``varying`` their time-major rows ``(T, width)``
    (:func:`probssm.kalman.ops.filter_programs.pack_varying`)."""
    params = [programs.pack_parameters(model)]
    if varying:
        params.append(programs.pack_varying(model, varying))
    return params


def transition_at(model: LGSSM, steps):
    """:math:`F, Q, b` of the time steps ``steps`` (an index or slice of the time axis) where
    they vary, else the time-invariant fields."""
    return tuple(getattr(model, k)[steps] if k in model.time_varying else getattr(model, k)
                 for k in ("transition_matrix", "transition_cov", "transition_offset"))


def _predicted_moments(F, Q, b, mean, cov):
    """:math:`F m + b`, :math:`F P F^T + Q` over leading axes."""
    return matvec(F, mean) + b, matmul(matmul(F, cov), F.mT) + Q


def predictions_from_filtered(model: LGSSM, mean, cov):
    """The one-step predictions from the filtered moments ``mean`` ``(B, T, n)``, ``cov``
    ``(B, T, n, n)`` of a model with a proper prior (time-invariant, or time-varying without
    batch axes): ``predicted_mean`` :math:`a_t = F_{t-1} m_{t-1} + b_{t-1}`, ``predicted_cov``
    :math:`P_t = F_{t-1} P_{t-1|t-1} F_{t-1}^T + Q_{t-1}` (the prior at ``t = 0``),
    ``observation_mean`` :math:`H_t a_t + d_t` ``(B, T, m)`` and ``observation_cov``
    :math:`H_t P_t H_t^T + R_t` ``(B, T, m, m)``."""
    B, n = mean.shape[0], model.state_dim
    H = model.observation_matrix
    prior_mean = jnp.broadcast_to(model.initial_mean, (B, 1, n)).astype(mean.dtype)
    prior_cov = jnp.broadcast_to(model.initial_cov, (B, 1, n, n)).astype(cov.dtype)
    a, P = _predicted_moments(*transition_at(model, slice(None, -1)), mean[:, :-1], cov[:, :-1])
    a = jnp.concatenate([prior_mean, a], axis=1)
    P = symmetrize(jnp.concatenate([prior_cov, P], axis=1))
    return dict(predicted_mean=a, predicted_cov=P,
                observation_mean=matvec(H, a) + model.observation_offset,
                observation_cov=symmetrize(matmul(matmul(H, P), H.mT) + model.observation_cov))


def _states_result(model, outs, B, T, chunks, written, predictions) -> FilterStates:
    """The filter's fields from the fix-up's outputs ``written`` (:func:`_written`); with
    ``predictions``, those the kernel did not write from the filtered moments
    (:func:`predictions_from_filtered`) and a zero ``predicted_diffuse_cov``."""
    shapes = _state_shapes(model.state_dim, model.observation_dim)
    fields = {k: _from_lane_minor(x, B, T, chunks, shapes[k]) for k, x in zip(written, outs)}
    if predictions and "predicted_mean" not in fields:
        fields.update(predictions_from_filtered(model, fields["mean"], fields["cov"]))
    if predictions:
        fields["predicted_diffuse_cov"] = jnp.zeros_like(fields["predicted_cov"])
    next_mean, next_cov = _predicted_moments(*transition_at(model, -1), fields["mean"][:, -1],
                                             fields["cov"][:, -1])
    return FilterStates(**fields, next_mean=next_mean, next_cov=next_cov)


def _interpret(interpret):
    """The Pallas interpreter unless asked otherwise: by default on a CPU backend only."""
    return jax.default_backend() == "cpu" if interpret is None else interpret


@partial(jax.jit, static_argnames=("predictions", "chunk", "block", "group", "top", "interpret"))
def filter_batch(model: LGSSM, y, *, predictions=True, chunk=None, block=DEFAULT_BLOCK,
                 group=DEFAULT_GROUP, top=None, interpret=None) -> FilterStates:
    """Kernel filter of ``y`` ``(B, T, m)`` under one model (no batch axes; time-varying fields
    ``(T, ...)``): every field of
    :class:`~.states.FilterStates` (without ``predictions`` the five prediction fields are
    ``None`` and the kernel does not write them).

    ``chunk`` steps a lane (default :func:`default_chunk`), ``block`` lanes a program, ``group``
    elements a group at every level of the chunk scan
    (:func:`probssm.kalman.ops.chunk_scan.levels`), ``top`` the largest level a series that the
    chunk scan scans in one launch (:func:`probssm.kalman.ops.chunk_scan.chunk_scan`; 0: folds
    up to one group a series; ``None``: :func:`probssm.kalman.ops.chunk_scan.default_top`).
    """
    B, T, _ = y.shape
    written = _written(model.state_dim, predictions)
    outs, (_, chunks, _, _, _) = _forward(model, y, written, chunk, block, group, top,
                                          _interpret(interpret))
    return _states_result(model, outs, B, T, chunks, written, predictions)


@partial(jax.jit, static_argnames=("chunk", "block", "group", "top", "interpret"))
def log_likelihood_batch(model: LGSSM, y, *, chunk=None, block=DEFAULT_BLOCK,
                         group=DEFAULT_GROUP, top=None, interpret=None):
    """Kernel log-likelihood of each series of ``y`` ``(B, T, m)``: ``(B,)``. The fix-up writes
    no per-step states, only each chunk's log-likelihood. Keywords as :func:`filter_batch`."""
    B = y.shape[0]
    outs, (_, chunks, lanes, _, _) = _forward(model, y, (), chunk, block, group, top,
                                              _interpret(interpret))
    return outs[0][0, :lanes].reshape(B, chunks).sum(axis=1)


@partial(jax.jit, static_argnames=("chunk", "block", "group", "top", "interpret"))
def smooth_batch(model: LGSSM, y, *, chunk=None, block=DEFAULT_BLOCK,
                 group=DEFAULT_GROUP, top=None, interpret=None) -> SmootherStates:
    """Kernel smoother of ``y`` ``(B, T, m)`` under one model (no batch axes; time-varying
    fields ``(T, ...)``): the filter's
    fields (:func:`filter_batch`) and the smoothed ones of :class:`~.states.SmootherStates`.
    Keywords as :func:`filter_batch`.
    """
    interpret = _interpret(interpret)
    B, T, m = y.shape
    n = model.state_dim
    dtype = y.dtype
    written = _written(n)
    fixup, (chunk, chunks, lanes, padded_lanes, params) = _forward(
        model, y, written, chunk, block, group, top, interpret)
    varying = programs.varying_keys(model)
    backward_algebra = elements.backward_algebra(n)
    (backward,) = launch.call(
        programs.backward_summary_kernel(n, m, T, chunk, chunks, block, dtype, varying),
        params + [fixup[0], fixup[1]],
        [jax.ShapeDtypeStruct((tiles.pow2(tiles.rows(backward_algebra.element_shapes)),
                               padded_lanes), dtype)],
        lanes, block, interpret)
    right = chunk_scan(backward_algebra, backward, B, chunks, reverse=True, group=group, top=top,
                       interpret=interpret)
    s_mean, s_cov, *lag = launch.call(
        programs.smoother_kernel(n, m, T, chunk, chunks, block, dtype, varying),
        params + [right, fixup[0], fixup[1]],
        [jax.ShapeDtypeStruct((chunk, tiles.pow2(r), padded_lanes), dtype)
         for r in programs.smoother_outputs(n)],
        lanes, block, interpret)
    lag = lag[0] if lag else s_cov[:, n * n:]
    return SmootherStates(
        filtered=_states_result(model, fixup, B, T, chunks, written, True),
        smoothed_mean=_from_lane_minor(s_mean, B, T, chunks, (n,)),
        smoothed_cov=_from_lane_minor(s_cov, B, T, chunks, (n, n)),
        lag_one_cov=_from_lane_minor(lag, B, T, chunks, (n, n))[:, :T - 1])


# -- differentiable entry points ----------------------------------------------------------------
def _with_reverse_mode(vjp):
    """The identity on a kernel's outputs ``states``, whose gradient with respect to ``model``
    and ``y`` is ``vjp(model, y, states, cotangents)``.

    The kernels run outside it, on inputs with stopped gradients, so they are traced once: as a
    ``custom_vjp`` around the kernels, a program differentiated through an inner ``jit`` traced
    them twice, for the primal function and for its forward pass."""
    @jax.custom_vjp
    def attach(model, y, states):
        del model, y
        return states

    def forward(model, y, states):
        return states, (model, y, states)

    def backward(residuals, cotangents):
        model, y, states = residuals
        g_model, g_y = vjp(model, y, states, cotangents)
        return g_model, g_y, jax.tree_util.tree_map(jnp.zeros_like, states)

    attach.defvjp(forward, backward)
    return attach


def _filtered_vjp(model, y, states, cotangents):
    """:func:`probssm.kalman.ops.adjoint.filter_vjp` of a filter written without predictions (their
    cotangents are zero)."""
    predictions = predictions_from_filtered(model, states.mean, states.cov)
    return adjoint.filter_vjp(model, y, states._replace(**predictions), cotangents)


_filter_reverse_mode = _with_reverse_mode(adjoint.filter_vjp)


_filtered_reverse_mode = _with_reverse_mode(_filtered_vjp)


_smoother_reverse_mode = _with_reverse_mode(adjoint.smoother_vjp)


def filter_states(model: LGSSM, y, predictions=True):
    """Differentiable kernel filter of ``y`` ``(B, T, m)``: the outputs of :func:`filter_batch`
    (without the ``predicted_*`` and ``observation_*`` fields unless ``predictions``).
    The gradient is the filter's reverse mode computed from these outputs
    (:func:`probssm.kalman.ops.adjoint.filter_vjp`: one backward scan, no recomputation)."""
    states = filter_batch(*jax.lax.stop_gradient((model, y)), predictions=predictions)
    if predictions:
        return _filter_reverse_mode(model, y, states)
    return _filtered_reverse_mode(model, y, states)


def smooth_states(model: LGSSM, y):
    """Differentiable kernel smoother of ``y`` ``(B, T, m)``: the outputs of
    :func:`smooth_batch`. The gradient is the smoother's reverse mode from these outputs
    (:func:`probssm.kalman.ops.adjoint.smoother_vjp`: the RTS pass's adjoint, then the filter's; no
    recomputation)."""
    states = smooth_batch(*jax.lax.stop_gradient((model, y)))
    return _smoother_reverse_mode(model, y, states)


@jax.custom_vjp
def log_likelihood_sums(model: LGSSM, y):
    """Differentiable kernel log-likelihood of each series of ``y`` ``(B, T, m)``: ``(B,)``.
    Writes no per-step states (reads ``y`` and a few chunk summaries only). The gradient is the
    exact score from the filtered moments
    (:func:`probssm.kalman.ops.adjoint.log_likelihood_vjp`)."""
    return log_likelihood_batch(model, y)


def _log_likelihood_fwd(model, y):
    states = filter_batch(model, y)
    return states.log_likelihood_terms.sum(axis=-1), (model, y, states)


def _log_likelihood_bwd(residuals, cotangent):
    return adjoint.log_likelihood_vjp(*residuals, cotangent)


log_likelihood_sums.defvjp(_log_likelihood_fwd, _log_likelihood_bwd)
