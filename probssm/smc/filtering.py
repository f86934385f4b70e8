"""Sequential importance resampling: the particle filter core.

For :math:`t = 0, \\dots, T-1`, with ``N`` particles :math:`x_t^i` and normalised weights
:math:`W_t^i` (see :mod:`.proposals` for :math:`G_t` and the look-ahead :math:`\\eta_t`):

1. (:math:`t \\ge 1`) selection weights :math:`\\tilde W^i \\propto W_{t-1}^i \\eta_t(x_{t-1}^i)`,
   :math:`c_t = \\sum_i W_{t-1}^i \\eta_t(x_{t-1}^i)`. If
   :math:`\\mathrm{ESS}(\\tilde W) < \\tau N` (``ess_threshold`` :math:`\\tau`), draw ancestors
   :math:`a^j \\sim \\tilde W` (:mod:`.resampling`) and give particle ``j`` the weight
   :math:`\\bar w^j = c_t / (N \\eta_t(x_{t-1}^{a^j}))`; otherwise :math:`a^j = j`,
   :math:`\\bar w^j = W_{t-1}^j`. (Without look-ahead :math:`\\eta \\equiv 1`,
   :math:`\\bar w^j = 1/N`.)
2. Move :math:`x_t^j \\sim q_t(\\cdot \\mid x_{t-1}^{a^j}, y_t)` and weight
   :math:`w_t^j = \\bar w^j G_t(x_{t-1}^{a^j}, x_t^j)`.
3. :math:`\\hat p(y_t \\mid y_{0:t-1}) = \\sum_j w_t^j`, :math:`W_t^j = w_t^j / \\sum_k w_t^k`.

Then :math:`\\hat Z = \\prod_t \\hat p(y_t \\mid y_{0:t-1})` is an unbiased estimate of the
likelihood :math:`p(y_{0:T-1})` (its log, returned, is biased downwards by about half its
variance). Everything is in log-weights. Filtering expectations are
:math:`\\sum_j W_t^j \\varphi(x_t^j)`.

One step holds :math:`O(N)` memory (particles ``(N, n)``, log-weights ``(N,)``); only
``history=True`` keeps the :math:`O(NT)` particle system (for smoothing).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..ssm import _vector
from . import proposals as _proposals
from . import rng as _rng
from .checks import (
    DegenerateWeightsError,
    _is_concrete,
    check_functions,
    check_model,
    check_y,
    raise_if_degenerate,
)
from .resampling import RESAMPLERS, normalize
from .resampling import ess as _ess

__all__ = ["DegenerateWeightsError", "ParticleFilterResult", "ParticleHistory", "filter"]


class ParticleHistory(NamedTuple):
    """The particle system of every step (``history=True``), leading batch axes ``(*batch,)``
    omitted below.

    Attributes
    ----------
    particles : ``(T, N, n)``
        :math:`x_t^j`.
    log_weights : ``(T, N)``
        Normalised :math:`\\log W_t^j`.
    ancestors : int ``(T, N)``
        :math:`a_t^j`: the index of the step-:math:`(t-1)` particle that :math:`x_t^j` moved
        from (the identity at ``t = 0`` and at steps without resampling).
    """

    particles: jax.Array
    log_weights: jax.Array
    ancestors: jax.Array


class ParticleFilterResult(NamedTuple):
    """Outcome of :func:`probssm.smc.filter` (leading batch axes ``(*batch,)`` on every field).

    Attributes
    ----------
    log_likelihood : ``(*batch,)``
        :math:`\\log \\hat Z`, the log of an unbiased likelihood estimate (``-inf`` after a
        degenerate step, see :class:`DegenerateWeightsError`).
    mean : ``(*batch, T, n)``
        Filtering means :math:`\\sum_j W_t^j x_t^j \\approx E[x_t \\mid y_{0:t}]`.
    cov : ``(*batch, T, n, n)``
        Weighted particle covariances :math:`\\approx \\mathrm{Cov}[x_t \\mid y_{0:t}]`.
    log_likelihood_increments : ``(*batch, T)``
        :math:`\\log \\hat p(y_t \\mid y_{0:t-1})`.
    ess : ``(*batch, T)``
        Effective sample size of :math:`W_t`, in :math:`[1, N]`.
    resampled : bool ``(*batch, T)``
        Whether ancestors were resampled before step ``t``.
    particles : ``(*batch, N, n)``
        The particles of the last step.
    log_weights : ``(*batch, N)``
        Their normalised log-weights.
    expectations : ``(*batch, T, k)`` or None
        :math:`\\sum_j W_t^j \\varphi(x_t^j)` of ``functions=`` :math:`\\varphi`.
    quantiles : ``(*batch, T, n, q)`` or None
        Weighted marginal quantiles of each state component (``quantiles=``).
    degenerate_step : int ``(*batch,)``
        The first step whose weights were degenerate, ``-1`` if none.
    history : ParticleHistory or None
        The whole particle system, with ``history=True``.
    """

    log_likelihood: jax.Array
    mean: jax.Array
    cov: jax.Array
    log_likelihood_increments: jax.Array
    ess: jax.Array
    resampled: jax.Array
    particles: jax.Array
    log_weights: jax.Array
    expectations: jax.Array | None
    quantiles: jax.Array | None
    degenerate_step: jax.Array
    history: ParticleHistory | None


@dataclass(frozen=True)
class Config:
    """Static settings of one compiled filter (hashable: a ``jit`` static argument)."""

    n_particles: int
    resampling: str = "systematic"
    ess_threshold: float = 0.5
    proposal: _proposals._Resolved = field(default_factory=_proposals._Resolved)
    functions: Callable | None = None
    quantiles: tuple | None = None
    history: bool = False
    differentiable: bool = False
    summaries: bool = True
    rng: str = "splitmix"


def make_config(n_particles=1000, proposal="bootstrap", resampling="systematic", ess_threshold=0.5,
                functions=None, quantiles=None, history=False, differentiable=False,
                summaries=True, rng="splitmix") -> Config:
    """A checked :class:`Config` (``ValueError``/``TypeError`` naming the bad argument)."""
    if isinstance(n_particles, (bool, np.bool_)) or not isinstance(n_particles, (int, np.integer)):
        raise TypeError(f"n_particles must be an integer >= 2, got {n_particles!r}")
    if n_particles < 2:
        raise ValueError(f"n_particles must be an integer >= 2, got {n_particles}")
    if resampling not in RESAMPLERS:
        raise ValueError(f"resampling must be one of {sorted(RESAMPLERS)}, got {resampling!r}")
    try:
        tau = float(ess_threshold)
    except (TypeError, ValueError):
        raise TypeError(f"ess_threshold must be a number in [0, 1], got {ess_threshold!r}") from None
    if not 0.0 <= tau <= 1.0:
        raise ValueError(f"ess_threshold must be in [0, 1] (0: never resample, 1: always), got {tau}")
    if functions is not None and not callable(functions):
        raise TypeError(f"functions must be a callable x (n,) -> (k,), got {type(functions).__name__}")
    if quantiles is not None:
        quantiles = tuple(float(q) for q in np.atleast_1d(quantiles))
        if not all(0.0 <= q <= 1.0 for q in quantiles):
            raise ValueError(f"quantiles must lie in [0, 1], got {quantiles}")
    if rng not in _rng.RNGS:
        raise ValueError(f"rng must be one of {list(_rng.RNGS)}, got {rng!r}")
    return Config(int(n_particles), resampling, tau, _proposals.resolve(proposal), functions, quantiles,
                  bool(history), bool(differentiable), bool(summaries), rng)


# ----------------------------------------------------------------------------------------------
# moving and weighting particles
# ----------------------------------------------------------------------------------------------
def _log_density(distribution, x):
    """:math:`\\log q(x)` summed over the components of ``x`` ``(n,)``."""
    shape = tuple(distribution.batch_shape) + tuple(distribution.event_shape)
    return jnp.sum(distribution.log_prob(jnp.reshape(x, shape)))


def _emission_log_probs(model, x, y, t):
    """:math:`\\log p(y_t \\mid x_t^j)` ``(N,)`` over the observed entries of ``y``."""
    if not model.additive:
        return jax.vmap(model.emission_log_prob, (0, None, None))(x, y, t)
    # AdditiveGaussianSSM.emission_log_prob for all particles at once: one whitening matmul
    from ..kalman.parallel import _masked_observation
    means = jax.vmap(model.emission_mean, (0, None))(x, t)                  # (N, m)
    m = means.shape[-1]
    observed, _, R, base = _masked_observation(y, jnp.eye(m, dtype=means.dtype), model.R,
                                               jnp.zeros(m, means.dtype))
    resid = jnp.where(observed, base - means, 0.0)
    L = jnp.linalg.cholesky(R)
    L_inv = jax.scipy.linalg.solve_triangular(L, jnp.eye(m, dtype=means.dtype), lower=True)
    white = resid @ L_inv.T
    k = jnp.sum(observed)
    return -0.5 * (k * math.log(2 * math.pi) + 2 * jnp.sum(jnp.log(jnp.diagonal(L)))
                   + jnp.sum(white**2, axis=-1))


def _gaussian_block(key, means, sqrt, rng="splitmix"):
    """``means + noise @ sqrt^T``, ``means`` ``(N, n)``, ``sqrt`` ``(n, n)`` a square root of
    the covariance."""
    noise = _rng.normal(key, means.shape, means.dtype, rng)
    if means.shape[-1] == 1:
        return means + noise * sqrt[0, 0]
    return means + noise @ sqrt.T


def _sample(d, key, sample_shape=(), rng="splitmix"):
    """``d.sample(key, sample_shape)``; normal laws (``Normal``, ``MultivariateNormal``, and
    ``Independent`` of ``Normal``) as location + scale times :func:`.rng.normal` draws, others
    (and ``rng="jax"``) by NumPyro's own sampler."""
    import numpyro.distributions as dist

    if rng != "jax":
        base = d.base_dist if type(d) is dist.Independent else d
        if type(base) is dist.Normal:
            shape = tuple(sample_shape) + tuple(base.batch_shape)
            z = _rng.normal(key, shape, jnp.result_type(base.loc, base.scale), rng)
            return base.loc + base.scale * z
        if type(d) is dist.MultivariateNormal:
            shape = tuple(sample_shape) + tuple(d.batch_shape) + tuple(d.event_shape)
            z = _rng.normal(key, shape, d.loc.dtype, rng)
            return d.loc + jnp.einsum("...ij,...j->...i", d.scale_tril, z)
    return d.sample(_rng.as_key(key), sample_shape)


def _square_roots(model):
    """Square roots of ``P0`` and ``Q`` of an additive model, computed once per pass (any rank)."""
    if not model.additive:
        return None
    from ..kalman._linalg import psd_sqrt
    return {"P0": psd_sqrt(model.P0), "Q": psd_sqrt(model.Q)}


def _batched_sample(make, key, xs, n, rng="splitmix"):
    """Draws ``(N, n)`` from the distributions ``make(x)`` of each row of ``xs`` ``(N, ...)``
    and the distributions themselves, batched: the per-particle distributions are built under
    ``vmap`` and sampled once (NumPyro's ``promote_batch_shape``), which needs one key, not
    ``N``. Distributions that cannot be batched this way are sampled one by one with split
    keys (same law, slower)."""
    from numpyro.distributions.batch_util import promote_batch_shape

    N = xs.shape[0]
    try:
        d = promote_batch_shape(jax.vmap(make)(xs))
        draw = _sample(d, key, (), rng)
        if draw.shape[0] != N or math.prod(draw.shape[1:]) != n:
            raise ValueError("unbatched")
        return jnp.reshape(draw, (N, n)), d
    except (NotImplementedError, ValueError, TypeError, AttributeError):
        draws = jax.vmap(lambda k, x: _vector(_sample(make(x), k, (), rng)))(_rng.split(key, N), xs)
        return draws, None


def _batched_log_density(make, d, xs, draws):
    """:math:`\\log q(x^j)` ``(N,)`` of ``draws`` under the distributions of :func:`_batched_sample`."""
    if d is not None:
        shape = (draws.shape[0],) + tuple(d.batch_shape[1:]) + tuple(d.event_shape)
        lp = d.log_prob(jnp.reshape(draws, shape))
        return jnp.sum(jnp.reshape(lp, (draws.shape[0], -1)), axis=-1)
    return jax.vmap(lambda x, v: _log_density(make(x), v))(xs, draws)


def _initial(model, config: Config, key, y0, t0, roots=None):
    """Particles :math:`x_0^j` ``(N, n)`` and :math:`\\log G_0` ``(N,)``."""
    N, prop = config.n_particles, config.proposal
    if prop.initial is None:
        if model.additive:
            x = _gaussian_block(key, jnp.broadcast_to(model.m0, (N,) + model.m0.shape),
                                _square_roots(model)["P0"] if roots is None else roots["P0"], config.rng)
        else:
            d = model.initial_distribution()
            x = jnp.reshape(_sample(d, key, (N,), config.rng), (N, -1))
        return x, _emission_log_probs(model, x, y0, t0)
    q = _proposals.initial_proposal(prop, model, y0)
    x = jnp.reshape(_sample(q, key, (N,), config.rng), (N, -1))
    log_q = jax.vmap(lambda v: _log_density(q, v))(x)
    log_p0 = jax.vmap(lambda v: _log_density(model.initial_distribution(), v))(x)
    return x, _emission_log_probs(model, x, y0, t0) + log_p0 - log_q


def _move(model, config: Config, key, x_prev, y, t, roots=None):
    """Particles :math:`x_t^j` ``(N, n)`` from ancestors ``x_prev`` ``(N, n)``, and
    :math:`\\log G_t` ``(N,)``."""
    prop = config.proposal
    n = x_prev.shape[-1]
    if prop.transition is None:
        if model.additive:
            means = jax.vmap(model.transition_mean, (0, None))(x_prev, t - 1)
            x = _gaussian_block(key, means, _square_roots(model)["Q"] if roots is None else roots["Q"], config.rng)
        else:
            x, _ = _batched_sample(lambda xp: model.transition_distribution(xp, t - 1), key, x_prev, n, config.rng)
        return x, _emission_log_probs(model, x, y, t)

    def make(xp):
        return _proposals.transition_proposal(prop, model, xp, y, t)

    x, d = _batched_sample(make, key, x_prev, n, config.rng)
    log_q = _batched_log_density(make, d, x_prev, x)
    log_f = jax.vmap(lambda xp, v: _log_density(model.transition_distribution(xp, t - 1), v))(x_prev, x)
    return x, _emission_log_probs(model, x, y, t) + log_f - log_q


def _select(model, config: Config, key, x_prev, lw_prev, y, t, ess_prev=None):
    """Ancestors :math:`x_{t-1}^{a^j}` ``(N, n)`` and their indices ``(N,)``, the weights
    :math:`\\log \\bar w` ``(N,)`` they carry, and whether they were resampled (step 1 of the
    module docstring). ``ess_prev``: the ESS of ``lw_prev`` when known (it decides without look-ahead)."""
    N, prop = config.n_particles, config.proposal
    if prop.look_ahead is None:   # select by the (normalised) weights themselves
        log_eta = None
        sel, log_c = lw_prev, jnp.zeros((), lw_prev.dtype)
    else:
        log_eta = jax.vmap(lambda xp: _proposals.log_look_ahead(prop, model, xp, y, t))(x_prev)
        log_eta = jnp.where(jnp.isfinite(log_eta), log_eta, -jnp.inf)
        # a look-ahead that rules out every particle: select by the weights alone
        usable = jnp.isfinite(normalize(lw_prev + log_eta)[1])
        log_eta = jnp.where(usable, log_eta, 0.0)
        sel, log_c = normalize(lw_prev + log_eta)
    if config.ess_threshold >= 1.0:
        do = jnp.array(True)
    elif config.ess_threshold <= 0.0:
        do = jnp.array(False)
    else:
        ess = _ess(sel) if (log_eta is not None or ess_prev is None) else ess_prev
        do = ess < config.ess_threshold * N
    identity = jnp.arange(N, dtype=jnp.int32)

    def resampled():
        i = RESAMPLERS[config.resampling](key, sel, rng=config.rng)
        return i, x_prev[i]

    # the gather runs only on the steps that resample
    idx, ancestors = jax.lax.cond(do, resampled, lambda: (identity, x_prev))
    carried = -math.log(N) + log_c - (0.0 if log_eta is None else log_eta[idx])
    if config.differentiable:  # value unchanged; gradient of log W_{t-1}^{a} (Scibior & Wood 2021)
        carried = carried + sel[idx] - jax.lax.stop_gradient(sel[idx])
    return ancestors, idx, jnp.where(do, carried, lw_prev), do


# ----------------------------------------------------------------------------------------------
# summaries of one step
# ----------------------------------------------------------------------------------------------
def _weighted_quantiles(x, w, qs):
    """Marginal quantiles ``(n, q)``: the smallest particle value whose cumulative weight reaches
    each level."""
    order = jnp.argsort(x, axis=0)
    xs = jnp.take_along_axis(x, order, axis=0)
    cw = jnp.cumsum(w[order], axis=0)
    levels = jnp.asarray(qs, dtype=x.dtype)

    def column(c, v):
        i = jnp.clip(jnp.searchsorted(c, levels * c[-1], side="left"), 0, c.shape[0] - 1)
        return v[i]

    return jax.vmap(column, in_axes=(1, 1))(cw, xs)


def _weigh(config: Config, lw_carried, log_g, x):
    """Step 3 of the module docstring: normalised log-weights ``(N,)``, the log-likelihood
    increment, whether the step was degenerate, the ESS, and the step's summaries (weighted moments of
    ``x`` ``(N, n)``, ESS, ...).

    One exponential a particle and two passes over the particles serve all of them: the maximum
    :math:`m` of :math:`\\ell = \\log \\bar w + \\log G`, then, with :math:`e = e^{\\ell - m}`, the
    sums :math:`\\sum e`, :math:`\\sum e^2`, :math:`\\sum e\\,d`, :math:`\\sum e\\,d d^\\top` of the
    particles :math:`d = x - x^1` shifted by the first (so the moments lose no precision to a
    large common offset). A degenerate step (:math:`m` not finite: all weights
    zero, or a NaN or infinite weight) restarts from equal weights with increment ``-inf``."""
    N = config.n_particles
    lw = lw_carried + log_g
    top = jnp.max(lw)
    bad = ~jnp.isfinite(top)
    top = jax.lax.stop_gradient(jnp.where(bad, 0.0, top))
    e = jnp.where(bad, 1.0, jnp.exp(lw - top))
    n = x.shape[-1]
    moments = config.summaries and n <= 4
    rows = [e, e * e]
    if moments:
        shift = jax.lax.stop_gradient(x[0])
        d = (x - shift).T                                       # (n, N)
        rows += [e * d[i] for i in range(n)]
        rows += [e * d[i] * d[j] for i in range(n) for j in range(i, n)]
    # one reduction a row: a stacked reduction (a concatenation) would evaluate the particles
    # and their exponentials once per row inside its fusion
    sums = jnp.stack([jnp.sum(r) for r in rows])
    total = sums[0]
    increment = top + jnp.log(total)
    lw = jnp.where(bad, -math.log(N), lw - increment)
    increment = jnp.where(bad, -jnp.inf, increment)
    ess = total * total / sums[1]
    if not config.summaries:   # the likelihood alone (PMMH, gradient ascent)
        return lw, increment, bad, ess, {}
    if moments:
        m1 = sums[2:2 + n] / total
        second = jnp.zeros((n, n), x.dtype)
        k = 2 + n
        for i in range(n):
            for j in range(i, n):
                second = second.at[i, j].set(sums[k]).at[j, i].set(sums[k])
                k += 1
        mean = shift + m1
        cov = second / total - jnp.outer(m1, m1)
        w = None
    else:
        w = e / total
        xt = x.T
        mean = jnp.sum(xt * w, axis=-1)
        centred = xt - mean[:, None]
        cov = (centred * w) @ centred.T
    out = {"mean": mean, "cov": 0.5 * (cov + cov.T), "ess": ess}
    if config.functions is not None or config.quantiles is not None:
        w = e / total if w is None else w
    if config.functions is not None:
        values = jax.vmap(lambda xi: jnp.reshape(config.functions(xi), (-1,)))(x)
        out["expectations"] = w @ values
    if config.quantiles is not None:
        out["quantiles"] = _weighted_quantiles(x, w, config.quantiles)
    return lw, increment, bad, ess, out


# ----------------------------------------------------------------------------------------------
# the pass
# ----------------------------------------------------------------------------------------------
def run(model, y, key, config: Config, start=0, state=None):
    """The filter over ``y`` ``(T, m)`` for one series (traceable; no checks).

    ``start`` is the time step of ``y[0]``; ``state = (particles (N, n), log_weights (N,))``
    (log-weights up to a constant) continues a filter (step ``start`` then moves these particles) instead of starting from the
    initial distribution. Returns ``(ParticleFilterResult, per-step bad flags (T,))``.
    """
    T = y.shape[0]
    # splitmix: one uint64 seed a step, drawn here, so no Threefry rounds run inside the loop
    keys = _rng.seeds(key, T) if config.rng == "splitmix" else jax.random.split(key, T)
    N = config.n_particles
    roots = _square_roots(model)

    def advance(x_prev, lw_prev, ess_prev, t, y_t, key_t):
        k_sel, k_move = _rng.split(key_t)
        ancestors, idx, carried, did = _select(model, config, k_sel, x_prev, lw_prev, y_t, t, ess_prev)
        x, log_g = _move(model, config, k_move, ancestors, y_t, t, roots)
        return x, log_g, carried, idx, did

    def begin(x_prev, lw_prev, ess_prev, t, y_t, key_t):
        x, log_g = _initial(model, config, key_t, y_t, t, roots)
        return (x, log_g, jnp.full((N,), -math.log(N), x.dtype), jnp.arange(N, dtype=jnp.int32),
                jnp.array(False))

    def finish(x, log_g, carried, idx, did):
        lw, inc, bad, ess, out = _weigh(config, carried, log_g, x)
        out = dict(out, increment=inc, resampled=did, bad=bad)
        if config.history:
            out["history"] = (x, lw, idx)
        return (x, lw, ess.astype(lw.dtype)), out

    def step(carry, inputs):
        x_prev, lw_prev, ess_prev = carry
        t, y_t, key_t, first = inputs
        if state is None and config.history:
            # one body for every step (the first draws from the initial law): the history is
            # stacked by the loop itself, never copied
            moved = jax.lax.cond(first, begin, advance, x_prev, lw_prev, ess_prev, t, y_t, key_t)
        else:
            moved = advance(x_prev, lw_prev, ess_prev, t, y_t, key_t)
        return finish(*moved)

    ts = start + jnp.arange(T)
    firsts = jnp.arange(T) == 0
    if state is not None or config.history:
        if state is None:
            x_shape = jax.eval_shape(lambda k: _initial(model, config, k, y[0], ts[0])[0], keys[0])
            init = (jnp.zeros(x_shape.shape, x_shape.dtype), jnp.full((N,), -math.log(N), x_shape.dtype),
                    jnp.asarray(N, x_shape.dtype))
        else:
            lw0 = normalize(state[1])[0]
            init = (state[0], lw0, _ess(lw0).astype(lw0.dtype))
        (x_last, lw_last, _), outs = jax.lax.scan(step, init, (ts, y, keys, firsts))
    else:
        # the first step outside the loop, so the loop body holds no branch on the step number
        carry, first_out = finish(*begin(None, None, None, ts[0], y[0], keys[0]))
        (x_last, lw_last, _), rest = jax.lax.scan(step, carry, (ts[1:], y[1:], keys[1:], firsts[1:]))
        outs = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a[None], b]), first_out, rest)
    bad = outs["bad"]
    first_bad = jnp.where(jnp.any(bad), jnp.argmax(bad), -1)
    history = ParticleHistory(*outs["history"]) if config.history else None
    result = ParticleFilterResult(
        log_likelihood=jnp.sum(outs["increment"]), mean=outs.get("mean"), cov=outs.get("cov"),
        log_likelihood_increments=outs["increment"], ess=outs.get("ess"), resampled=outs["resampled"],
        particles=x_last, log_weights=lw_last, expectations=outs.get("expectations"),
        quantiles=outs.get("quantiles"), degenerate_step=first_bad.astype(jnp.int32), history=history)
    return result


def _run_batched(model, y, key, config, start=0, state=None):
    """``run`` over leading batch axes of ``y`` ``(*batch, T, m)`` (independent keys)."""
    batch = y.shape[:-2]
    if not batch:
        return run(model, y, key, config, start, state)
    count = math.prod(batch)
    keys = jax.random.split(key, count)
    flat = y.reshape((count,) + y.shape[-2:])
    if state is None:
        out = jax.vmap(lambda yy, kk: run(model, yy, kk, config, start))(flat, keys)
    else:
        st = tuple(s.reshape((count,) + s.shape[len(batch):]) for s in state)
        out = jax.vmap(lambda yy, kk, s: run(model, yy, kk, config, start, s))(flat, keys, st)
    return jax.tree_util.tree_map(lambda a: a.reshape(batch + a.shape[1:]), out)


_compiled = jax.jit(_run_batched, static_argnames=("config",))


# ----------------------------------------------------------------------------------------------
# public entry point
# ----------------------------------------------------------------------------------------------
def filter(model, y, key, n_particles=1000, proposal="bootstrap", resampling="systematic",
           ess_threshold=0.5, *, functions=None, quantiles=None, history=False,
           differentiable=False, errors="raise", rng="splitmix") -> ParticleFilterResult:
    """Particle filter (sequential importance resampling) of a :mod:`probssm.ssm` model.

    Parameters
    ----------
    model : StateSpaceModel
        :math:`p(x_0)`, :math:`p(x_{t+1} \\mid x_t)`, :math:`p(y_t \\mid x_t)`.
    y : array ``(*batch, T, m)``
        Observations (``(T,)`` for ``m = 1``); NaN entries are missing and contribute no weight.
        Leading batch axes run independent filters (``vmap``), each with its own key.
    key : jax.random key
    n_particles : int
        ``N >= 2``.
    proposal : ``"bootstrap"``, ``"auxiliary"``, callable, :class:`~probssm.smc.Guided` or :class:`~probssm.smc.Auxiliary`
        ``"bootstrap"``: :math:`q_t = p(x_t \\mid x_{t-1})`; a callable
        ``q(x_prev, y_t, t[, params])`` returning a NumPyro distribution of :math:`x_t`: a guided
        filter; ``"auxiliary"``: the auxiliary filter with the predictive-mean look-ahead
        (see :mod:`probssm.smc.proposals`).
    resampling : ``"systematic"``, ``"stratified"``, ``"residual"`` or ``"multinomial"``
    ess_threshold : float in [0, 1]
        Resample when :math:`\\mathrm{ESS} < \\tau N` (1: every step, 0: never).
    functions : callable, optional
        :math:`\\varphi(x)` ``(n,) -> (k,)`` (or scalar): filtering expectations ``(T, k)``.
    quantiles : sequence of float, optional
        Levels of weighted marginal quantiles ``(T, n, q)``.
    history : bool
        Keep the particle system of every step (:math:`O(NT)` memory, for smoothing).
    differentiable : bool
        Stop-gradient resampling, so ``jax.grad`` of the log-likelihood estimate is a consistent
        estimate of the score (see :func:`probssm.smc.differentiable_log_likelihood`).
    errors : ``"raise"`` or ``"ignore"``
        On concrete inputs, raise :class:`DegenerateWeightsError` naming the first degenerate
        step (``"raise"``), or return ``log_likelihood = -inf`` with ``degenerate_step``.
    rng : ``"splitmix"`` or ``"jax"``
        The generator of the filter's normals and uniforms (:mod:`probssm.smc.rng`):
        ``"splitmix"`` (default), a counter-based generator seeded from ``key`` once per pass,
        several times faster on the CPU; ``"jax"``, ``jax.random`` with the key's own
        implementation (Threefry, or an ``rbg`` key). Same laws, different numbers; both are
        reproducible per key. Normal transitions (``Normal``, ``MultivariateNormal``,
        additive-Gaussian models) use it; other NumPyro distributions sample with ``jax.random``.

    Returns
    -------
    ParticleFilterResult
        ``log_likelihood (*batch,)``, ``mean (*batch, T, n)``, ``cov (*batch, T, n, n)``, ...

    Works under ``jit``, ``vmap`` and ``grad`` (with the model as an argument). Compiled once per
    model structure, shapes and settings.
    """
    config = make_config(n_particles, proposal, resampling, ess_threshold, functions, quantiles,
                         history, differentiable, rng=rng)
    if errors not in ("raise", "ignore"):
        raise ValueError(f"errors must be 'raise' or 'ignore', got {errors!r}")
    check_model(model)
    y = check_y(model, y)
    check_functions(model, config, y)
    result = _compiled(model, y, key, config)
    if errors == "raise" and _is_concrete(result.degenerate_step):
        raise_if_degenerate(result, y)
    return result
