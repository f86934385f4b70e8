"""The functional interface: ``filter`` and ``smooth`` of a nonlinear model.

Both take a :class:`probssm.ssm.StateSpaceModel` (or :class:`~probssm.ssm.AdditiveGaussianSSM`)
and observations ``y`` ``(*batch, T, m)`` (NaN entries missing), follow the dtype of their inputs,
and work under ``jit``, ``vmap`` and ``grad`` (the filter's log-likelihood is the MLE
objective). On concrete inputs they check ``y`` and, after the pass, that every evaluation of
the user's functions was finite, and every Gaussian state after it: otherwise
:class:`NonFiniteError` (a ``FloatingPointError`` and a ``ValueError``) names the first
failure in the order of evaluation (a NaN from ``h`` at step ``t`` is reported as ``h``'s, not
as the filtered state's or ``f``'s that follow from it) and its time step. Under ``jit``/``grad``
tracing nothing can be checked: the log-likelihood is then NaN.
"""

from __future__ import annotations

from functools import partial, wraps
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .. import kalman
from .._compile import jit as compile_jit
from ..kalman._linalg import chol_psd
from ..kalman.iterated import iterated_smoothing
from ..ssm import StateSpaceModel
from .filtering import NonlinearFilterResult, filter_single, linearised_model
from .rules import Extended, linearise, resolve_rule

__all__ = ["NonFiniteError", "NonlinearFilterResult", "NonlinearSmoothResult", "filter", "smooth"]


class NonlinearSmoothResult(NamedTuple):
    """Outcome of :func:`probssm.nonlinear.smooth`.

    Attributes
    ----------
    mean : ``(*batch, T, n)``
        Smoothed means :math:`E[x_t \\mid y_{0:T-1}]` (approximate); for the iterated extended
        smoother the MAP path.
    cov : ``(*batch, T, n, n)``
        Smoothed covariances (of the last linearisation).
    log_likelihood : ``(*batch,)``
        The approximate log-likelihood of the last linearised model.
    iterations : int array ``(*batch,)``
        Smoothing passes of the iteration after the RTS pass it starts from (0 when not
        iterated; 1 on a linear-Gaussian model, where the first one changes nothing).
    converged : bool array ``(*batch,)``
        Whether the iteration met its tolerance (``True`` when not iterated).
    linearised : LGSSM
        The linear-Gaussian model of the last linearisation.
    """

    mean: jax.Array
    cov: jax.Array
    log_likelihood: jax.Array
    iterations: jax.Array
    converged: jax.Array
    linearised: kalman.LGSSM


def _check_model(model):
    if not isinstance(model, StateSpaceModel):
        raise TypeError(f"model must be a probssm.ssm.StateSpaceModel or AdditiveGaussianSSM, "
                        f"got {type(model).__name__}")


def _check_y(model, y):
    if isinstance(y, jax.core.Tracer):
        arr = y
    else:
        arr = jnp.asarray(y)
        if not jnp.issubdtype(arr.dtype, jnp.floating):
            arr = arr.astype(model.initial_moments()[0].dtype)
    m = model.observation_dim
    if arr.ndim < 2 or arr.shape[-1] != m:
        raise ValueError(f"y: expected shape (*batch, T, m) with m={m} (the emission's dimension), "
                         f"got {tuple(arr.shape)}")
    if arr.shape[-2] < 1:
        raise ValueError(f"y: expected at least one time step, got shape {tuple(arr.shape)}")
    if not isinstance(arr, jax.core.Tracer) and bool(jnp.any(jnp.isinf(arr))):
        pos = tuple(int(i) for i in np.argwhere(np.isinf(np.asarray(arr)))[0])
        raise ValueError(f"y contains an infinite value at index {pos}; use NaN for missing values")
    return arr


def _batched(fn, y, *args):
    """``fn(y_single, *args)`` mapped over the leading axes of ``y``."""
    for _ in range(y.ndim - 2):
        fn = jax.vmap(fn, in_axes=(0,) + (None,) * len(args))
    return fn(y, *args)


class NonFiniteError(FloatingPointError, ValueError):
    """A model function (or the Gaussian step it fed) gave a non-finite value; the message names
    the function and the first time step. A ``ValueError`` too, like every other bad-input error
    of the library."""


def _stage_messages(model):
    """What went wrong, for each column of the finiteness flags (:data:`.filtering.STAGES`, then
    the smoother's own state)."""
    if model.additive:
        emission, transition = "h (the emission) returned a non-finite value", \
            "f (the transition) returned a non-finite value"
    else:
        emission = ("emission(x, t) gave a non-finite mean or variance, or a covariance that is not "
                    "positive semi-definite,")
        transition = ("transition(x, t) gave a non-finite mean, or a covariance that is not positive "
                      "semi-definite,")
    return (emission,
            ("the update gave a non-finite state (the linearised emission's covariance is not "
             "positive semi-definite, or the values overflow)"),
            transition,
            ("the prediction gave a non-finite state (the linearised transition's covariance is "
             "not positive semi-definite, or the values overflow)"),
            "the smoother gave a non-finite state")


def _check_finite(flags, messages, context: str):
    """Raise at the first failing check: ``flags`` ``(*batch, T, k)`` (concrete; under tracing
    nothing is checked), checks in order of evaluation within a time step, ``messages[j]`` what
    failing check ``j`` means."""
    if isinstance(flags, jax.core.Tracer):
        return
    ok = np.asarray(flags)
    if ok.all():
        return
    batch, (T, k) = ok.shape[:-2], ok.shape[-2:]
    per_series = (~ok).reshape(-1, T * k)
    series = int(np.argmax(per_series.any(axis=1)))
    t, check = divmod(int(np.argmax(per_series[series])), k)
    where = f"time step {t}"
    if batch:
        where += f" of series {tuple(int(i) for i in np.unravel_index(series, batch))}"
    raise NonFiniteError(f"{messages[check]} at {where} {context}")


def _top_level_jit(fun, **kwargs):
    """``jax.jit(fun, **kwargs)`` compiled with probssm's faster CPU options
    (:func:`probssm._compile.jit`: about half the compile time of these programs) where it is
    called at the top level; JAX takes compiler options only there, so under an outer ``jit``,
    ``grad`` or ``vmap`` (traced arguments, or JAX's refusal) it is the plain ``jax.jit``."""
    plain = jax.jit(fun, **kwargs)
    fast = []

    @wraps(fun)
    def call(*args, **kw):
        if any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves((args, kw))):
            return plain(*args, **kw)
        if not fast:
            fast.append(compile_jit(fun, **kwargs))
        try:
            return fast[0](*args, **kw)
        except ValueError as error:  # a constant argument inside an outer trace
            if "compiler_options" not in str(error):
                raise
            return plain(*args, **kw)

    return call


@partial(_top_level_jit, static_argnames=("rule",))
def _filter_jit(model, y, rule):
    def one(y_):
        out, next_mean, next_cov = filter_single(model, y_, rule)
        m0, P0 = model.initial_moments()
        lin = linearised_model(m0, P0, out)
        result = NonlinearFilterResult(out["mean"], out["cov"], jnp.sum(out["loglik"]),
                                       out["predicted_mean"], out["predicted_cov"], next_mean,
                                       next_cov, lin)
        return result, out["finite"]
    return _batched(one, y)


def filter(model: StateSpaceModel, y, rule="extended") -> NonlinearFilterResult:
    """Gaussian filter of a nonlinear model (extended, unscented, cubature or Gauss-Hermite).

    Parameters
    ----------
    model : StateSpaceModel
    y : array ``(*batch, T, m)``
        NaN entries are missing (whole rows or single entries).
    rule : ``"extended"``, ``"unscented"``, ``"cubature"``, ``"gauss_hermite"`` or an instance
        (``Unscented(alpha, beta, kappa)``, ``GaussHermite(order)``); see
        :mod:`probssm.nonlinear.rules`.

    Returns
    -------
    NonlinearFilterResult
        ``mean (*batch, T, n)``, ``cov (*batch, T, n, n)``, ``log_likelihood (*batch,)``, the
        predictions and the linearised model.
    """
    _check_model(model)
    y = _check_y(model, y)
    result, finite = _filter_jit(model, y, resolve_rule(rule))
    _check_finite(finite, _stage_messages(model), "while filtering")
    return result


def _linearise_path(model, rule, mean, cov):
    """The per-step pieces ``F, b, Q, H, d, R`` (each ``(T, ...)``) of ``model`` linearised along
    the trajectory ``N(mean_t, cov_t)`` (``(T, n)``, ``(T, n, n)``; ``cov`` unused by the
    extended rule), and the finiteness flags ``(T, 2)`` of the emission and the transition."""
    T, n = mean.shape
    chol = jax.vmap(chol_psd)(cov) if not isinstance(rule, Extended) else jnp.zeros((T, n, n), mean.dtype)
    steps = jnp.arange(T)

    def at(t, m_, c_):
        F, b, Q, ok_f = linearise(rule, lambda x: model.transition_moments(x, t), m_, c_, model.additive)
        H, d, R, ok_h = linearise(rule, lambda x: model.emission_moments(x, t), m_, c_, model.additive)
        return dict(F=F, b=b, Q=Q, H=H, d=d, R=R), jnp.stack([ok_h, ok_f])

    return jax.vmap(at)(steps, mean, chol)


def _regularised(pieces, y, mean, regularization):
    """Levenberg-Marquardt: the pseudo-observations ``x_t = mean_t`` with noise covariance
    ``I / regularization`` appended to each step's observations (``mean`` NaN: none)."""
    T, n = mean.shape
    m = pieces["H"].shape[1]
    eye = jnp.broadcast_to(jnp.eye(n, dtype=mean.dtype), (T, n, n))
    R = jnp.zeros((T, m + n, m + n), mean.dtype)
    R = R.at[:, :m, :m].set(pieces["R"]).at[:, m:, m:].set(eye / regularization)
    pieces = dict(pieces, H=jnp.concatenate([pieces["H"], eye], axis=1),
                  d=jnp.concatenate([pieces["d"], jnp.zeros_like(mean)], axis=1), R=R)
    return pieces, jnp.concatenate([y, mean], axis=1)


def _checks(filter_flags, smoothed, path_flags=None):
    """The filter's checks ``(T, 4)`` (:data:`.filtering.STAGES`; the emission and transition
    columns also cover the linearisation along the final trajectory) and the smoother's state."""
    ok = filter_flags
    if path_flags is not None:
        ok = ok.at[:, 0].set(ok[:, 0] & path_flags[:, 0]).at[:, 2].set(ok[:, 2] & path_flags[:, 1])
    state = jnp.all(jnp.isfinite(smoothed.mean), axis=-1) & jnp.all(jnp.isfinite(smoothed.cov), axis=(-2, -1))
    return jnp.concatenate([ok, state[:, None]], axis=1)


@partial(_top_level_jit, static_argnames=("rule", "iterated", "method", "max_iter", "tol", "damping",
                                           "regularization", "start"))
def _smooth_jit(model, y, rule, iterated, method, max_iter, tol, damping, regularization, start):
    m0, P0 = model.initial_moments()

    def one(y_):
        if iterated and start == "prior":
            return _iterated_from_prior(model, y_, rule, method, max_iter, tol, damping,
                                        regularization)
        out, _, _ = filter_single(model, y_, rule)
        filtered = {k: out[k] for k in ("F", "b", "Q", "H", "d", "R")}
        if not iterated:
            lin = linearised_model(m0, P0, filtered)
            first = kalman.smooth(lin, y_, method=method)
            return NonlinearSmoothResult(first.mean, first.cov, first.log_likelihood, jnp.asarray(0),
                                         jnp.asarray(True), lin), _checks(out["finite"], first)

        # One smoothing pass in the program: pass 0 smooths the filter's linearisation (the
        # rule's RTS smoother), every later pass the linearisation along the last trajectory.
        carries_cov = not isinstance(rule, Extended)
        T = out["mean"].shape[0]

        def build(mean, *rest):
            cov, i = rest if carries_cov else (None, rest[0])

            def first_pass():
                return filtered, jnp.ones((T, 2), bool), jnp.full_like(mean, jnp.nan)

            def later_pass():
                pieces, flags = _linearise_path(model, rule, mean, cov)
                return pieces, flags, mean

            pieces, flags, anchor = jax.lax.cond(i == 0, first_pass, later_pass)
            obs = y_
            if regularization:
                pieces, obs = _regularised(pieces, y_, anchor, regularization)
            return linearised_model(m0, P0, pieces), obs, flags

        loop = iterated_smoothing(
            build, out["mean"], initial_cov=out["cov"] if carries_cov else None,
            max_iter=max_iter + 1, tol=tol, damping=damping, method=method, with_index=True,
            keep_last=True, min_iter=2)
        (lin, _, flags), last = loop.last
        if regularization:  # the covariances and likelihood of the model itself, without the pull
            pieces, flags = _linearise_path(model, rule, loop.mean, loop.cov if carries_cov else None)
            lin = linearised_model(m0, P0, pieces)
            last = kalman.smooth(lin, y_, method=method)
        return NonlinearSmoothResult(last.mean, last.cov, last.log_likelihood, loop.iterations - 1,
                                     loop.converged, lin), _checks(out["finite"], last, flags)
    return _batched(one, y)


def _iterated_from_prior(model, y, rule, method, max_iter, tol, damping, regularization):
    """The iterated smoother started from the prior trajectory (every :math:`x_t` at
    :math:`N(m_0, P_0)`) instead of the sequential filter: every pass, the first included, is
    one ``kalman.smooth`` of the model linearised along the last trajectory, so with
    ``method="parallel"`` or ``"kernel"`` nothing runs sequentially over time."""
    m0, P0 = model.initial_moments()
    T = y.shape[0]
    carries_cov = not isinstance(rule, Extended)
    mean0 = jnp.broadcast_to(m0, (T, m0.shape[0]))
    cov0 = jnp.broadcast_to(P0, (T,) + P0.shape)

    def build(mean, *rest):
        cov = rest[0] if carries_cov else None
        pieces, flags = _linearise_path(model, rule, mean, cov)
        obs = y
        if regularization:
            pieces, obs = _regularised(pieces, y, mean, regularization)
        return linearised_model(m0, P0, pieces), obs, flags

    loop = iterated_smoothing(build, mean0, initial_cov=cov0 if carries_cov else None,
                              max_iter=max_iter, tol=tol, damping=damping, method=method,
                              keep_last=True)
    (lin, _, flags), last = loop.last
    if regularization:
        pieces, flags = _linearise_path(model, rule, loop.mean, loop.cov if carries_cov else None)
        lin = linearised_model(m0, P0, pieces)
        last = kalman.smooth(lin, y, method=method)
    no_filter = jnp.ones((T, 4), bool)
    return NonlinearSmoothResult(last.mean, last.cov, last.log_likelihood, loop.iterations,
                                 loop.converged, lin), _checks(no_filter, last, flags)


def smooth(model: StateSpaceModel, y, rule="extended", *, iterated: bool = False,
           method: str = "sequential", max_iter: int = 20, tol: float | None = None,
           damping: float = 1.0, regularization: float = 0.0,
           start: str = "filter") -> NonlinearSmoothResult:
    """Gaussian smoother of a nonlinear model, optionally iterated to a fixed point.

    Parameters
    ----------
    model : StateSpaceModel
    y : array ``(*batch, T, m)``
        NaN entries are missing.
    rule : see :func:`filter`.
    iterated : bool
        ``False``: the rule's RTS smoother (one filter pass, one smoothing pass). ``True``: the
        iterated smoother, started from that (or from the prior, ``start``): linearise the
        whole model along the current smoothed trajectory (the extended rule at the means:
        Gauss-Newton, whose fixed point is the MAP path; a sigma-point rule under the smoothed
        marginals: iterated posterior linearisation), smooth the linear-Gaussian model with
        :func:`probssm.kalman.smooth`, repeat (:func:`probssm.kalman.iterated.iterated_smoothing`).
    method : ``"sequential"``, ``"parallel"`` or ``"kernel"``
        The :mod:`probssm.kalman` method of each smoothing pass: ``"parallel"`` (the
        associative scan) and ``"kernel"`` (the fused GPU kernel; on a CPU its interpreter) run
        in :math:`O(\\log T)` depth.
    max_iter, tol : int, float
        The iteration stops when the largest change of a mean is at most
        ``tol * (1 + max |mean|)``, or after ``max_iter`` passes (after the RTS pass it starts
        from). The result is the last pass's: its smoothed means and covariances, and the
        log-likelihood of its linearised model. ``tol=None``: ``1e-8``, or
        ``100 eps`` of the data's dtype where that is larger (``1.2e-5`` in float32).
    damping : float in (0, 1]
        Step length towards each pass's result (1: the full step).
    regularization : float >= 0
        Levenberg-Marquardt: each pass also observes :math:`x_t` at the current iterate with
        noise covariance :math:`I/\\lambda`, which shortens steps where the linearisation is poor
        and leaves the fixed point unchanged.

    start : ``"filter"`` or ``"prior"``
        Where an iterated smoother starts. ``"filter"``: the rule's RTS smoother, whose filter
        runs sequentially over time; every ``method`` then gives the same result. ``"prior"``:
        every state at the prior :math:`N(m_0, P_0)`, so that with ``"parallel"`` or
        ``"kernel"`` no pass is sequential (the whole smoother in :math:`O(\\log T)` depth).
        From that poorer start the iteration may take more passes and, where the posterior has
        several modes, settle in another one: on the pendulum of ``tests/nonlinear`` the prior
        start reaches a path whose angle is mirrored (:math:`\\sin \\alpha` cannot tell
        :math:`\\alpha` from :math:`\\pi - \\alpha`). Compare its ``log_likelihood`` with
        the filter start's on a shorter stretch before relying on it.

    Returns
    -------
    NonlinearSmoothResult
    """
    _check_model(model)
    y = _check_y(model, y)
    if method not in ("sequential", "parallel", "kernel"):
        raise ValueError(f"method must be 'sequential', 'parallel' or 'kernel', got {method!r}")
    if not 0.0 < damping <= 1.0:
        raise ValueError(f"damping must be in (0, 1], got {damping}")
    if regularization < 0:
        raise ValueError(f"regularization must be >= 0, got {regularization}")
    if tol is None:
        tol = max(1e-8, 100 * float(jnp.finfo(y.dtype).eps))
    if int(max_iter) < 1:
        raise ValueError(f"max_iter must be a positive integer, got {max_iter}")
    if start not in ("filter", "prior"):
        raise ValueError(f"start must be 'filter' or 'prior', got {start!r}")
    result, ok = _smooth_jit(model, y, resolve_rule(rule), bool(iterated), method, int(max_iter),
                             float(tol), float(damping), float(regularization), start)
    messages = _stage_messages(model)
    _check_finite(ok[..., :-1], messages, "while smoothing")  # the causes before their effects
    _check_finite(ok[..., -1:], messages[-1:], "while smoothing")
    return result
