r"""Many small optimisations at once: a pure-JAX L-BFGS, ``vmap``-ed over a batch and compiled.

:func:`minimize_batched` minimises ``fun(theta, *args)`` for every row of ``theta0`` ``(B, k)``,
each with its own slice of the data. Up to 64 members are optimised side by side, every pass of
a compiled ``lax.while_loop`` evaluating ``fun`` and its gradient for all of them at once; a
member that stops hands its place to the next one waiting (a work queue), so the cost follows the
sum of the members' evaluations rather than the slowest member's.
:func:`maximize_likelihood_batched` is the float64 log-likelihood front end (the batched
counterpart of :func:`probssm.fit.maximize_likelihood`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._compile import jit
from ..kalman import sharding

__all__ = ["BatchedResult", "maximize_likelihood_batched", "minimize_batched"]

# Status codes (``BatchedResult.status``).
_RUNNING, _GTOL, _FTOL, _MAX_ITER, _LINE_SEARCH, _NONFINITE_START = 0, 1, 2, 3, 4, 5
# Internal: a member whose first evaluation (at theta0) is still to come.
_FRESH = -1

# Line-search constants: sufficient decrease c1 and (strong) curvature c2 as in Nocedal & Wright
# (2006, ch. 3) and SciPy; the cubic / quadratic trial must lie this far inside the bracket.
_C1, _C2 = 1e-4, 0.9
_SAFEGUARD = 0.1
# Approximate Wolfe conditions (Hager & Zhang 2005): where a trial's value is within the noise
# level ``sqrt(eps) / 10 * |f(theta)|`` of the current one (1.5e-9 relative in float64), a slope
# in [c2 phi'(0), (2 delta - 1) phi'(0)], delta = 0.1, is accepted. Gradients from AD stay accurate
# where values are at their roundoff (e.g. likelihoods under a large approximate-diffuse prior).
_C1_APPROX = 0.1
_NOISE = 0.1


class BatchedResult(NamedTuple):
    r"""Outcome of :func:`minimize_batched` (a JAX pytree of arrays, batch size ``B``).

    Attributes
    ----------
    theta : array ``(B, k)``
        The minimiser found for each member.
    value : array ``(B,)``
        ``fun(theta[b], *args_b)`` at that point (for :func:`maximize_likelihood_batched`: the
        maximised log-likelihood).
    grad_norm : array ``(B,)``
        :math:`\lVert \nabla f(\theta_b) \rVert_\infty` of the unscaled objective.
    converged : array ``(B,)`` bool
        ``status`` is 1 or 2 (a tolerance was met).
    iterations : array ``(B,)`` int
        L-BFGS iterations the member took (0 for a member that started converged).
    evaluations : array ``(B,)`` int
        Evaluations of ``fun`` and its gradient for the member, the one at ``theta0`` included.
    status : array ``(B,)`` int
        Why the member stopped: 1 gradient tolerance met, 2 relative reduction of the objective
        below ``ftol``, 3 ``max_iter`` reached, 4 no decrease found even along the steepest-descent
        direction (the objective is flat to working precision or not finite around ``theta``),
        5 ``fun`` or its gradient not finite at ``theta0`` (the member is left at ``theta0``).
    """

    theta: jax.Array
    value: jax.Array
    grad_norm: jax.Array
    converged: jax.Array
    iterations: jax.Array
    evaluations: jax.Array
    status: jax.Array


class _State(NamedTuple):
    """One member's optimiser state (objective values and gradients are scaled)."""

    # the iterate
    x: jax.Array
    f: jax.Array
    g: jax.Array
    # L-BFGS memory: (m, k) steps and gradient changes, 1 / s'y (0 in an empty slot)
    s_hist: jax.Array
    y_hist: jax.Array
    rho_hist: jax.Array
    head: jax.Array       # slot the next pair goes to
    npairs: jax.Array
    # the search direction and its line search
    d: jax.Array
    dphi0: jax.Array      # g'd
    steepest: jax.Array   # d = -g
    a: jax.Array          # the next trial step
    a_lo: jax.Array       # lower end of the bracket: slope < 0, value <= f (+ roundoff)
    f_lo: jax.Array
    d_lo: jax.Array
    a_hi: jax.Array       # upper end (once bracketed): slope >= 0, value too high, or not finite
    f_hi: jax.Array
    d_hi: jax.Array
    bracketed: jax.Array
    found: jax.Array      # some trial gave an acceptable decrease
    best_f: jax.Array     # the lowest such trial (or the Wolfe point that ends the search)
    best_x: jax.Array
    best_g: jax.Array
    trials: jax.Array     # evaluations in this line search
    # bookkeeping
    scale: jax.Array      # the objective is divided by max(|f(theta0)|, 1)
    iteration: jax.Array
    evaluations: jax.Array
    status: jax.Array


def _cubic_minimiser(a, fa, da, b, fb, db):
    """Minimiser of the cubic through ``(a, fa, da)`` and ``(b, fb, db)``; NaN if none."""
    d1 = da + db - 3.0 * (fa - fb) / (a - b)
    radicand = d1 * d1 - da * db
    d2 = jnp.sign(b - a) * jnp.sqrt(jnp.where(radicand >= 0, radicand, jnp.nan))
    return b - (b - a) * (db + d2 - d1) / (db - da + 2.0 * d2)


def _quadratic_minimiser(a, fa, da, b, fb):
    """Minimiser of the quadratic through ``(a, fa, da)`` and ``(b, fb)``; NaN if none."""
    denom = 2.0 * (fb - fa - da * (b - a))
    return jnp.where(denom > 0, a - da * (b - a) ** 2 / denom, jnp.nan)


def _secant(a, da, b, db):
    """Zero of the line through the slopes ``(a, da)`` and ``(b, db)``; NaN if it rises not."""
    return jnp.where(db > da, a - da * (b - a) / jnp.where(db > da, db - da, 1.0), jnp.nan)


def _zoom_trial(a_lo, f_lo, d_lo, a_hi, f_hi, d_hi, f_noise):
    """Next trial inside the bracket: safeguarded cubic (when the values differ by more than
    roundoff), else the secant of the slopes, else a quadratic, else bisection."""
    left, right = jnp.minimum(a_lo, a_hi), jnp.maximum(a_lo, a_hi)
    margin = _SAFEGUARD * (right - left)

    def inside(t):
        return jnp.isfinite(t) & (t >= left + margin) & (t <= right - margin)

    resolved = jnp.abs(f_hi - f_lo) > f_noise
    cubic = jnp.where(resolved, _cubic_minimiser(a_lo, f_lo, d_lo, a_hi, f_hi, d_hi), jnp.nan)
    secant = _secant(a_lo, d_lo, a_hi, d_hi)
    quad = jnp.where(resolved, _quadratic_minimiser(a_lo, f_lo, d_lo, a_hi, f_hi), jnp.nan)
    mid = 0.5 * (a_lo + a_hi)
    return jnp.where(inside(cubic), cubic,
                     jnp.where(inside(secant), secant, jnp.where(inside(quad), quad, mid)))


def _two_loop(g, s_hist, y_hist, rho_hist, head, npairs):
    """L-BFGS two-loop recursion: ``-H g`` with the stored pairs (empty slots have rho = 0)."""
    m = s_hist.shape[0]
    newest_first = (head - 1 - jnp.arange(m)) % m

    def first(q, j):
        alpha = rho_hist[j] * jnp.dot(s_hist[j], q)
        return q - alpha * y_hist[j], alpha

    q, alphas = jax.lax.scan(first, g, newest_first)
    newest = newest_first[0]
    yy = jnp.dot(y_hist[newest], y_hist[newest])
    gamma = jnp.where(npairs > 0, jnp.dot(s_hist[newest], y_hist[newest]) / jnp.where(yy > 0, yy, 1.0), 1.0)

    def second(r, inputs):
        j, alpha = inputs
        beta = rho_hist[j] * jnp.dot(y_hist[j], r)
        return r + (alpha - beta) * s_hist[j], None

    r, _ = jax.lax.scan(second, gamma * q, (newest_first[::-1], alphas[::-1]))
    return -r


def _direction(g, s_hist, y_hist, rho_hist, head, npairs):
    """Search direction, its slope, whether it is steepest descent, and the first trial step.

    Steepest descent (first trial step ``1 / |g|``, a step of unit length, as L-BFGS-B) when
    the memory is empty or the L-BFGS direction is not downhill; else the L-BFGS direction with
    first trial step 1.
    """
    d = _two_loop(g, s_hist, y_hist, rho_hist, head, npairs)
    slope = jnp.dot(g, d)
    steepest = (npairs == 0) | ~(slope < 0) | ~jnp.all(jnp.isfinite(d))
    d = jnp.where(steepest, -g, d)
    gnorm = jnp.linalg.norm(g)
    a0 = jnp.where(steepest, 1.0 / jnp.where(gnorm > 0, gnorm, 1.0), 1.0)
    return d, jnp.dot(g, d), steepest, a0.astype(g.dtype)


def _search_start(x, f, g, d, dphi0, steepest, a0):
    """The line-search fields of :class:`_State` for a new search along ``d`` from ``x``."""
    zero = jnp.zeros((), f.dtype)
    return {
        "d": d, "dphi0": dphi0, "steepest": steepest, "a": a0, "a_lo": zero, "f_lo": f,
        "d_lo": dphi0, "a_hi": zero, "f_hi": jnp.asarray(jnp.inf, f.dtype),
        "d_hi": jnp.asarray(jnp.nan, f.dtype), "bracketed": jnp.zeros((), bool),
        "found": jnp.zeros((), bool), "best_f": f, "best_x": x, "best_g": g,
        "trials": jnp.zeros((), jnp.int32),
    }


def _objective_and_grad(fun, args, dtype):
    return jax.value_and_grad(lambda t: fun(t, *args).astype(dtype))


def _empty_memory(history, k, dtype):
    return dict(s_hist=jnp.zeros((history, k), dtype), y_hist=jnp.zeros((history, k), dtype),
                rho_hist=jnp.zeros((history,), dtype), head=jnp.zeros((), jnp.int32),
                npairs=jnp.zeros((), jnp.int32))


def _fresh(theta0, history) -> _State:
    """A member before its first evaluation: the first pass of the loop evaluates ``fun`` at
    ``theta0`` (a trial step of zero) and :func:`_begin` sets the member up from it."""
    dtype = theta0.dtype
    zero = jnp.zeros((), dtype)
    memory = _empty_memory(history, theta0.shape[0], dtype)
    return _State(
        x=theta0, f=zero, g=jnp.zeros_like(theta0), **memory,
        **_search_start(theta0, zero, jnp.zeros_like(theta0), jnp.zeros_like(theta0), zero,
                        jnp.ones((), bool), zero),
        scale=jnp.ones((), dtype), iteration=jnp.zeros((), jnp.int32),
        evaluations=jnp.zeros((), jnp.int32), status=jnp.asarray(_FRESH, jnp.int32),
    )


def _begin(theta0, f0, g0, history, gtol, max_iter) -> _State:
    """The state after the first evaluation ``f0 = fun(theta0)``, ``g0`` its gradient: fix the
    scale, test the start (not finite: status 5; already converged: status 1) and search along
    steepest descent."""
    start_ok = jnp.isfinite(f0) & jnp.all(jnp.isfinite(g0))
    scale = jnp.where(start_ok, jnp.maximum(jnp.abs(f0), 1.0), 1.0)
    f0, g0 = f0 / scale, g0 / scale
    status = jnp.where(
        ~start_ok, _NONFINITE_START,
        jnp.where(jnp.max(jnp.abs(g0)) <= gtol, _GTOL, jnp.where(max_iter <= 0, _MAX_ITER, _RUNNING)),
    )
    memory = _empty_memory(history, theta0.shape[0], theta0.dtype)
    return _State(
        x=theta0, f=f0, g=g0, **memory,
        **_search_start(theta0, f0, g0, *_direction(g0, *memory.values())),
        scale=scale, iteration=jnp.zeros((), jnp.int32), evaluations=jnp.ones((), jnp.int32),
        status=jnp.asarray(status, jnp.int32),
    )


def _run_one(fun, history, max_ls, state, args, gtol, ftol, max_iter, passes):
    """Advance one member by at most ``passes`` passes (or until it stops).

    One loop whose every pass makes exactly one evaluation: a line-search trial, which may end
    the search and so the L-BFGS iteration (new iterate, memory update, convergence test, new
    direction). Under ``vmap`` a batch thus needs as many passes as its member with the most
    evaluations, whatever the mix of iterations and line-search trials.
    """
    dtype = state.x.dtype
    eps = jnp.finfo(dtype).eps
    tiny = jnp.finfo(dtype).tiny
    raw = _objective_and_grad(fun, args, dtype)

    def body(st: _State) -> _State:
        fresh = st.status == _FRESH
        active = (st.status == _RUNNING) | fresh
        # -- one trial of the line search (for a fresh member: the evaluation at theta0) --------
        f_noise = _NOISE * jnp.sqrt(eps) * jnp.abs(st.f) + tiny
        x_a = st.x + st.a * st.d
        f_raw, g_raw = raw(x_a)
        f_a, g_a = f_raw / st.scale, g_raw / st.scale
        d_a = jnp.dot(g_a, st.d)
        finite = jnp.isfinite(f_a) & jnp.all(jnp.isfinite(g_a))
        armijo = finite & (f_a <= st.f + _C1 * st.a * st.dphi0)
        level = finite & (f_a <= st.f + f_noise)  # no higher than f, up to the noise level
        # level with f, and a slope that (on a quadratic) implies a decrease
        near = level & (d_a <= (1.0 - 2.0 * _C1_APPROX) * -st.dphi0)
        accept = (armijo & (jnp.abs(d_a) <= -_C2 * st.dphi0)) | (near & (d_a >= _C2 * st.dphi0))
        take = accept | ((armijo | near) & (~st.found | (f_a < st.best_f)))
        to_lo = ~accept & finite & (d_a < 0) & (armijo | level)
        to_hi = ~accept & ~to_lo

        a_lo = jnp.where(to_lo, st.a, st.a_lo)
        f_lo = jnp.where(to_lo, f_a, st.f_lo)
        d_lo = jnp.where(to_lo, d_a, st.d_lo)
        a_hi = jnp.where(to_hi, st.a, st.a_hi)
        f_hi = jnp.where(to_hi, jnp.where(finite, f_a, jnp.inf), st.f_hi)
        d_hi = jnp.where(to_hi, jnp.where(finite, d_a, jnp.nan), st.d_hi)
        bracketed = st.bracketed | to_hi
        found = st.found | take
        best_f = jnp.where(take, f_a, st.best_f)
        best_x = jnp.where(take, x_a, st.best_x)
        best_g = jnp.where(take, g_a, st.best_g)
        # next trial: grow until bracketed (cubic extrapolation clipped to [2a, 10a]), then zoom
        grow = _cubic_minimiser(st.a_lo, st.f_lo, st.d_lo, st.a, f_a, d_a)
        grow = jnp.where(jnp.isfinite(grow), jnp.clip(grow, 2.0 * st.a, 10.0 * st.a), 4.0 * st.a)
        a_next = jnp.where(bracketed, _zoom_trial(a_lo, f_lo, d_lo, a_hi, f_hi, d_hi, f_noise), grow)
        trials = st.trials + 1
        collapsed = bracketed & (jnp.abs(a_hi - a_lo) <= 10 * eps * jnp.maximum(a_lo, a_hi))
        search_done = accept | (trials >= max_ls) | collapsed
        searching = st._replace(
            a=a_next, a_lo=a_lo, f_lo=f_lo, d_lo=d_lo, a_hi=a_hi, f_hi=f_hi, d_hi=d_hi,
            bracketed=bracketed, found=found, best_f=best_f, best_x=best_x, best_g=best_g,
            trials=trials,
        )

        # -- the end of an iteration: move, update the memory, test, new direction --------------
        x1 = jnp.where(found, best_x, st.x)
        f1 = jnp.where(found, best_f, st.f)
        g1 = jnp.where(found, best_g, st.g)
        # curvature pair, stored only when s'y > 0 (keeps the approximation positive definite)
        s, y = x1 - st.x, g1 - st.g
        sy, yy = jnp.dot(s, y), jnp.dot(y, y)
        store = found & jnp.isfinite(sy) & (sy > eps * yy) & (yy > 0)
        s_hist = jnp.where(store, st.s_hist.at[st.head].set(s), st.s_hist)
        y_hist = jnp.where(store, st.y_hist.at[st.head].set(y), st.y_hist)
        rho_hist = jnp.where(store, st.rho_hist.at[st.head].set(1.0 / jnp.where(store, sy, 1.0)),
                             st.rho_hist)
        head = jnp.where(store, (st.head + 1) % history, st.head)
        npairs = jnp.where(store, jnp.minimum(st.npairs + 1, history), st.npairs)
        # no decrease along an L-BFGS direction: forget the pairs and retry along -g
        s_hist = jnp.where(found, s_hist, 0.0)
        y_hist = jnp.where(found, y_hist, 0.0)
        rho_hist = jnp.where(found, rho_hist, 0.0)
        npairs = jnp.where(found, npairs, 0)
        iteration = st.iteration + 1
        gtol_met = jnp.max(jnp.abs(g1)) <= gtol
        ftol_met = (ftol > 0) & found & (f1 <= st.f) & (
            st.f - f1 <= ftol * jnp.maximum(jnp.maximum(jnp.abs(st.f), jnp.abs(f1)), 1.0))
        status = jnp.where(
            gtol_met, _GTOL,
            jnp.where(ftol_met, _FTOL,
                      jnp.where(~found & st.steepest, _LINE_SEARCH,
                                jnp.where(iteration >= max_iter, _MAX_ITER, _RUNNING))),
        ).astype(jnp.int32)
        direction = _direction(g1, s_hist, y_hist, rho_hist, head, npairs)
        finished = _State(
            x=x1, f=f1, g=g1, s_hist=s_hist, y_hist=y_hist, rho_hist=rho_hist, head=head,
            npairs=npairs, **_search_start(x1, f1, g1, *direction),
            scale=st.scale, iteration=iteration, evaluations=st.evaluations, status=status,
        )

        new = jax.tree_util.tree_map(lambda a, b: jnp.where(search_done, a, b), finished, searching)
        new = new._replace(evaluations=st.evaluations + 1)
        begun = _begin(st.x, f_raw, g_raw, history, gtol, max_iter)
        new = jax.tree_util.tree_map(lambda b, n: jnp.where(fresh, b, n), begun, new)
        # Members that have stopped keep their state (the batched loop also masks them).
        return jax.tree_util.tree_map(lambda n, o: jnp.where(active, n, o), new, st)

    def running(carry):
        st, done = carry
        return ((st.status == _RUNNING) | (st.status == _FRESH)) & (done < passes)

    count = jnp.zeros((), jnp.int32)
    out, _ = jax.lax.while_loop(running, lambda c: (body(c[0]), c[1] + 1), (state, count))
    return out


def _result(state: _State, xp=jnp) -> BatchedResult:
    """The result from the final states; ``xp=np`` for host arrays (the work queue's final
    states are on the host: NumPy keeps every first fit from compiling a program per operation)."""
    return BatchedResult(
        theta=state.x,
        value=state.f * state.scale,
        grad_norm=xp.max(xp.abs(state.g), axis=-1) * state.scale,
        converged=(state.status == _GTOL) | (state.status == _FTOL),
        iterations=state.iteration,
        evaluations=state.evaluations,
        status=state.status,
    )


# The work queue: at most this many members are optimised at a time, each round advancing them by
# this many passes; a member that stops hands its slot to the next one waiting.
_SLOTS = 64
_ROUND_PASSES = 2
# On a CPU, one queue per core, each of at least this many members.
_MIN_GROUP = 32
_NO_LIMIT = np.iinfo(np.int32).max

_PROGRAMS: dict = {}


def _take(args, in_axes, index, xp=jnp):
    """The members ``index`` of the batched arguments (shared ones unchanged); ``xp=np`` takes
    them on the host from concrete arrays."""
    return tuple(
        arg if ax is None else jax.tree_util.tree_map(lambda a, ax=ax: xp.take(a, index, axis=ax), arg)
        for arg, ax in zip(args, in_axes)
    )


def _programs(fun, in_axes, history, max_ls):
    """Jitted batched programs per (objective, in_axes, history, line-search budget):

    ``fresh(theta0) -> states``, every member before its first evaluation;
    ``advance(states, args, slots, gtol, ftol, max_iter, passes) -> (states, status)`` runs the
    members ``slots`` of ``states`` for up to ``passes`` passes and writes them back;
    ``solve(theta0, args, gtol, ftol, max_iter) -> BatchedResult`` runs the whole batch in
    lock-step (used when the inputs are traced)."""
    key = (fun, in_axes, history, max_ls)
    if key not in _PROGRAMS:
        def run(states, args, gtol, ftol, max_iter, passes):
            one = lambda st, a: _run_one(fun, history, max_ls, st, a, gtol, ftol, max_iter, passes)
            return jax.vmap(one, in_axes=(0, in_axes))(states, args)

        def advance(states, args, slots, gtol, ftol, max_iter, passes):
            part = jax.tree_util.tree_map(lambda a: a[slots], states)
            part = run(part, _take(args, in_axes, slots), gtol, ftol, max_iter, passes)
            states = jax.tree_util.tree_map(lambda a, p: a.at[slots].set(p), states, part)
            return states, part.status

        def solve(theta0, args, gtol, ftol, max_iter):
            states = jax.vmap(lambda t: _fresh(t, history))(theta0)
            return _result(run(states, args, gtol, ftol, max_iter, _NO_LIMIT))

        fresh = jax.vmap(lambda t: _fresh(t, history))
        # fresh and advance run only from the host-side queue (top level: compiler options
        # allowed); solve also runs inside the caller's jit
        _PROGRAMS[key] = (jit(fresh), jit(advance, donate_argnums=0), jax.jit(solve))
    return _PROGRAMS[key]


def _run_queue(programs, theta0, args, gtol, ftol, max_iter):
    """Optimise every member through a work queue of ``min(B, _SLOTS)`` slots.

    Members whose optimisation takes few evaluations leave early and the next ones take their
    slots, so the cost is about the *sum* of the members' evaluations (plus up to
    ``_ROUND_PASSES`` idle passes each), not the batch size times the largest count, as in
    lock-step; every round has the same shapes, so the round program compiles once.
    """
    fresh, advance, _ = programs
    states = fresh(theta0)
    waiting = list(range(theta0.shape[0]))
    n_slots = min(len(waiting), _SLOTS)
    slots = []
    passes = np.int32(_ROUND_PASSES)
    while True:
        free = n_slots - len(slots)
        slots += waiting[:free]
        del waiting[:free]
        if not slots:
            break
        # a full slot array every round: repeat live members (they compute the same) to fill it
        index = np.resize(np.asarray(slots, np.int32), n_slots)
        states, status = advance(states, args, index, gtol, ftol, max_iter, passes)
        status = np.asarray(status)[:len(slots)]
        slots = [m for m, st in zip(slots, status) if st in (_RUNNING, _FRESH)]
    return jax.device_get(states)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _solve_queued(programs, in_axes, theta0, args, *options):
    """Split the batch into one work queue per CPU core (at least ``_MIN_GROUP`` members each),
    or one per device where there are several (:func:`probssm.kalman.sharding.devices`; each
    queue's members and programs placed on its device), and run the queues in threads.

    XLA runs one program of small operations essentially on one core; queues in threads keep
    every core busy (twice the throughput on two cores). The groups are padded to equal size by
    repeating the last member, so all of them share the compiled programs.
    """
    batch = theta0.shape[0]
    devices = sharding.devices()[:batch]
    if len(devices) > 1:  # one queue per device, each on its own device
        workers, places = len(devices), devices
    else:
        workers = max(1, min(_cores(), batch // _MIN_GROUP))
        places = (None,) * workers
    if workers == 1 or (places[0] is None and jax.default_backend() != "cpu"):
        states = _run_queue(programs, theta0, args, *options)
    else:
        size = -(-batch // workers)
        groups = np.minimum(np.arange(workers * size), batch - 1).reshape(workers, size)
        x64 = jax.config.jax_enable_x64  # a thread-local setting: the workers take the caller's
        # members are split on the host (NumPy), so no gather program compiles per argument
        theta0, args = jax.device_get((theta0, args))

        def work(rows, place):
            with jax.enable_x64(x64):
                mine = jax.device_put((theta0[rows], _take(args, in_axes, rows, np)), place)
                return _run_queue(programs, mine[0], mine[1], *options)

        with ThreadPoolExecutor(workers) as pool:
            parts = list(pool.map(work, groups, places))
        states = jax.tree_util.tree_map(lambda *p: np.concatenate(p)[:batch], *parts)
    return jax.tree_util.tree_map(jnp.asarray, _result(states, np))


def _normalise_in_axes(in_axes, nargs):
    if in_axes is None or isinstance(in_axes, int):
        return (in_axes,) * nargs
    in_axes = tuple(in_axes)
    if len(in_axes) != nargs:
        raise ValueError(f"in_axes: expected one entry per extra argument ({nargs}), got {len(in_axes)}")
    for i, ax in enumerate(in_axes):
        if ax is not None and not isinstance(ax, int):
            raise TypeError(f"in_axes[{i}]: expected an int or None, got {ax!r}")
    return in_axes


def minimize_batched(
    fun: Callable,
    theta0,
    *args,
    in_axes=0,
    max_iter: int = 200,
    gtol: float | None = None,
    ftol: float | None = None,
    history: int = 10,
    max_linesearch: int = 20,
) -> BatchedResult:
    r"""Minimise ``fun(theta, *args)`` for every row of ``theta0``, batched and compiled.

    For each member :math:`b = 0, \dots, B-1` this solves
    :math:`\min_{\theta \in \mathbb R^k} f(\theta; \mathrm{args}_b)` by L-BFGS, where
    :math:`\mathrm{args}_b` is the ``b``-th slice (along ``in_axes``) of the batched arguments and
    the whole of the shared ones. The optimiser for one member is a single ``lax.while_loop``
    whose every pass makes exactly one evaluation of ``fun`` and its gradient
    (``jax.value_and_grad``); it is ``vmap``-ed and ``jit``-compiled, so each pass evaluates a
    whole group of members at once, each with its own iteration, line search and convergence
    flag. The group is a work queue of :math:`\min(B, 64)` slots, advanced two passes per
    round; after each round the members that have stopped leave and waiting ones take their
    slots. On a CPU with several cores the batch is split into one queue per core (at least 32
    members each), run in threads; with several devices, into one queue per device
    (:mod:`probssm.kalman.sharding`). When ``theta0`` or ``args`` are traced (inside ``jit``,
    ``vmap`` or ``grad``) the whole batch instead runs in one lock-step loop, a member that has
    stopped keeping its state while the others go on (with several devices, one loop per
    device over its share of the members); the results are the same.

    Parameters
    ----------
    fun : callable
        ``fun(theta, *args) -> scalar``, a JAX function of ``theta`` ``(k,)`` and one member's
        arguments. It is compiled once per ``(fun, in_axes, history, max_linesearch)`` and shape
        of the inputs, and the compiled program is cached: pass data through ``args`` (not by
        closure) and reuse the same ``fun`` object so that refits skip compilation.
    theta0 : array ``(B, k)``
        Starting points. Their floating dtype sets the working precision (float64 needs
        ``jax.enable_x64``); integer input is cast to the default float type.
    *args : arrays or pytrees
        Per-member data with the batch along axis ``in_axes`` (default 0, length ``B``), or
        shared data (``in_axes`` entry ``None``).
    in_axes : int, None or tuple, default 0
        As in ``jax.vmap``, for ``args`` only: one value for all of them, or one entry (an int or
        ``None``) per argument. ``in_axes=(0, None)`` batches the first argument and shares the
        second.
    max_iter : int, default 200
        Most L-BFGS iterations per member.
    gtol : float, optional
        Gradient tolerance on the scaled objective (below); default ``1e-8`` in float64 and
        ``1e-4`` in float32.
    ftol : float, optional
        Relative-reduction tolerance; default ``1e-14`` in float64 and ``1e-6`` in float32; ``0``
        stops on the gradient test only.
    history : int, default 10
        Number :math:`m` of curvature pairs L-BFGS keeps.
    max_linesearch : int, default 20
        Most function evaluations per line search.

    Returns
    -------
    BatchedResult
        ``theta`` ``(B, k)``, ``value`` ``(B,)``, ``grad_norm`` ``(B,)``, ``converged`` ``(B,)``,
        ``iterations`` ``(B,)``, ``evaluations`` ``(B,)`` and ``status`` ``(B,)``, as JAX arrays.

    Notes
    -----
    **Scaling.** Each member minimises :math:`\tilde f = f / s` with
    :math:`s = \max(|f(\theta_0)|, 1)` (as :func:`probssm.fit.maximize_likelihood` does), so the
    tolerances are relative to the size of the objective at the start.

    **Direction.** L-BFGS (Nocedal & Wright 2006, algorithm 7.4): the two-loop recursion applies
    the inverse-Hessian approximation built from the last :math:`m` pairs
    :math:`s_i = \theta_{i+1} - \theta_i`, :math:`y_i = \nabla\tilde f_{i+1} - \nabla\tilde f_i`,
    with initial matrix :math:`\gamma I`, :math:`\gamma = s^\top y / y^\top y` of the newest pair.
    A pair is stored only when :math:`s^\top y > \epsilon\, y^\top y` (machine
    :math:`\epsilon`), which keeps the approximation positive definite; otherwise the update is
    skipped. Without pairs, or if the direction is not downhill, the step is steepest descent
    with first trial step :math:`1/\lVert\nabla\tilde f\rVert_2` (a step of unit length, as in
    L-BFGS-B); otherwise the first trial step is 1.

    **Line search.** Along :math:`\phi(a) = \tilde f(\theta + a d)` it accepts a step satisfying
    the strong Wolfe conditions :math:`\phi(a) \le \phi(0) + c_1 a \phi'(0)`,
    :math:`|\phi'(a)| \le c_2 |\phi'(0)|` (:math:`c_1 = 10^{-4}`, :math:`c_2 = 0.9`) or, where
    :math:`\phi(a) \le \phi(0) + \varepsilon_f` with :math:`\varepsilon_f =
    \tfrac{1}{10}\sqrt{\epsilon}\,|\phi(0)|` (values equal up to their noise), the approximate
    Wolfe conditions :math:`c_2 \phi'(0) \le \phi'(a) \le (2\delta - 1)\phi'(0)`,
    :math:`\delta = 0.1` (Hager & Zhang 2005), which rely on the slope and so keep making
    progress where values have reached their roundoff. The step grows (safeguarded cubic
    extrapolation, :math:`\times 2` to :math:`\times 10` per trial) until a bracket is found, which
    then shrinks by safeguarded cubic interpolation, the secant of the slopes, quadratic
    interpolation or bisection (Nocedal & Wright, algorithms 3.5-3.6), keeping a lower end with
    :math:`\phi' < 0`. A trial where ``fun`` or its gradient is not finite (``inf``, ``nan``)
    becomes the upper end: the step shrinks, and the iterate is never replaced by such a point.
    After ``max_linesearch`` trials without a Wolfe point the best trial with sufficient
    decrease is taken; if there is none, the stored pairs are dropped and the next iteration
    tries steepest descent, and if that finds none either the member stops (status 4).

    **Convergence.** A member stops, converged, after an iteration where
    :math:`\lVert\nabla\tilde f(\theta)\rVert_\infty \le \mathrm{gtol}` (status 1, equivalently
    ``grad_norm <= gtol * s``) or
    :math:`0 \le \tilde f_i - \tilde f_{i+1} \le \mathrm{ftol} \max(|\tilde f_i|, |\tilde f_{i+1}|, 1)`
    (status 2, the rule of L-BFGS-B; ``ftol=0`` turns it off). It stops without converging after
    ``max_iter`` iterations (status 3), on a failed steepest-descent line search (status 4), or
    at once if ``fun`` is not finite at ``theta0`` (status 5).

    **Cost.** About ``sum(evaluations) / min(B, 64)`` batched evaluations of ``fun`` and its
    gradient over 64 members (plus at most one idle pass per member, while its round finishes),
    shared among the cores; in lock-step (traced inputs) ``max(evaluations)`` over all ``B``.
    One round program is compiled per ``fun`` and shapes.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> def f(theta, a):
    ...     return jnp.sum((theta - a) ** 2)
    >>> res = minimize_batched(f, jnp.zeros((3, 2)), jnp.arange(6.0).reshape(3, 2))
    >>> bool(res.converged.all())
    True
    """
    theta0 = theta0 if isinstance(theta0, jax.core.Tracer) else jnp.asarray(theta0)
    if theta0.ndim != 2:
        raise ValueError(f"theta0: expected shape (B, k), got {theta0.shape}")
    if not jnp.issubdtype(theta0.dtype, jnp.floating):
        theta0 = theta0.astype(jnp.result_type(float))
    if history < 1:
        raise ValueError(f"history must be at least 1, got {history}")
    if max_linesearch < 1:
        raise ValueError(f"max_linesearch must be at least 1, got {max_linesearch}")
    args = jax.tree_util.tree_map(
        lambda a: a if isinstance(a, jax.core.Tracer) else jnp.asarray(a), args
    )
    in_axes = _normalise_in_axes(in_axes, len(args))
    batch = theta0.shape[0]
    for i, (arg, ax) in enumerate(zip(args, in_axes)):
        if ax is None:
            continue
        for leaf in jax.tree_util.tree_leaves(arg):
            if jnp.ndim(leaf) <= ax or jnp.shape(leaf)[ax] != batch:
                raise ValueError(
                    f"args[{i}]: expected a batch axis {ax} of length B={batch} (the rows of "
                    f"theta0), got an array of shape {jnp.shape(leaf)}; use in_axes=None for "
                    "shared arguments"
                )
    double = theta0.dtype == jnp.float64
    gtol = (1e-8 if double else 1e-4) if gtol is None else float(gtol)
    ftol = (1e-14 if double else 1e-6) if ftol is None else float(ftol)
    programs = _programs(fun, in_axes, int(history), int(max_linesearch))
    options = (jnp.asarray(gtol, theta0.dtype), jnp.asarray(ftol, theta0.dtype),
               jnp.asarray(max_iter, jnp.int32))
    traced = any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves((theta0, args)))
    if traced:  # inside jit / vmap / grad: no host-side queue, the batch runs in lock-step
        return sharding.map_series(lambda t, *a: programs[2](t, a, *options), (theta0, *args),
                                   (0, *in_axes), theta0.shape[0])
    return _solve_queued(programs, in_axes, theta0, args, *options)


_NEGATED: dict = {}


def _negated(log_likelihood):
    if log_likelihood not in _NEGATED:
        def neg(theta, *args):
            return -log_likelihood(theta, *args)

        _NEGATED[log_likelihood] = neg
    return _NEGATED[log_likelihood]


def maximize_likelihood_batched(log_likelihood: Callable, theta0, *args, **options) -> BatchedResult:
    r"""Maximise ``log_likelihood(theta, *args)`` for every row of ``theta0`` ``(B, k)``, in float64.

    The batched counterpart of :func:`probssm.fit.maximize_likelihood`: minimises
    :math:`-\log L` with :func:`minimize_batched` inside a scoped ``jax.enable_x64(True)``,
    casting ``theta0`` and floating ``args`` to float64. ``options`` are those of
    :func:`minimize_batched` (``in_axes``, ``max_iter``, ``gtol``, ``ftol``, ``history``,
    ``max_linesearch``). The result's ``value`` is the maximised log-likelihood ``(B,)`` and
    ``grad_norm`` that of :math:`\nabla \log L`.

    Examples
    --------
    Local-level models for a panel ``y`` of shape ``(B, T, 1)``, with log-variances
    ``theta = (log R, log Q)``::

        def loglik(theta, y):
            one = jnp.ones((1, 1), theta.dtype)
            model = kalman.LGSSM(one, jnp.exp(theta[1]) * one, one, jnp.exp(theta[0]) * one,
                                 jnp.zeros(1, theta.dtype), 1e6 * one)
            return kalman.log_likelihood(model, y, burn=1)

        res = maximize_likelihood_batched(loglik, jnp.zeros((B, 2)), y)
    """
    with jax.enable_x64(True):
        def to64(a):  # concrete arrays are cast on the host (no conversion program compiles)
            if isinstance(a, jax.core.Tracer) or (isinstance(a, jax.Array) and a.dtype == jnp.float64):
                return a
            a = np.asarray(a)
            return jnp.asarray(a.astype(np.float64) if np.issubdtype(a.dtype, np.floating) else a)

        theta0 = to64(theta0 if isinstance(theta0, jax.core.Tracer) else np.asarray(theta0, dtype=np.float64))
        args = jax.tree_util.tree_map(to64, args)
        res = minimize_batched(_negated(log_likelihood), theta0, *args, **options)
        if isinstance(res.value, jax.core.Tracer):
            return res._replace(value=-res.value)
        return res._replace(value=jnp.asarray(-np.asarray(res.value)))

