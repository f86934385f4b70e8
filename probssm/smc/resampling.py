"""Resampling schemes: ancestor indices from log-weights, and the effective sample size.

Each scheme maps normalised weights :math:`w \\in \\Delta^{N-1}` (given as log-weights, any
additive constant) to ``N`` ancestor indices :math:`a_1, \\dots, a_N` whose offspring counts
:math:`O_i = \\#\\{j : a_j = i\\}` are unbiased, :math:`E[O_i] = N w_i`. They differ in the
variance of the counts (Douc, Cappé & Moulines 2005; Chopin & Papaspiliopoulos 2020, ch. 9):

* ``multinomial``: :math:`a_j` i.i.d. from :math:`w`; :math:`\\mathrm{Var}\\, O_i = N w_i(1 - w_i)`.
* ``residual``: :math:`\\lfloor N w_i \\rfloor` copies of each particle, the remaining
  :math:`R = N - \\sum_i \\lfloor N w_i \\rfloor` drawn multinomially from the residuals
  :math:`r_i = N w_i - \\lfloor N w_i \\rfloor`; :math:`\\mathrm{Var}\\, O_i = r_i (1 - r_i / R)`.
* ``stratified``: one uniform in each stratum :math:`[(j-1)/N, j/N)`;
  :math:`\\mathrm{Var}\\, O_i = \\sum_j p_{ij}(1 - p_{ij})`, :math:`p_{ij}` the probability that
  stratum ``j`` lands on particle ``i``.
* ``systematic``: one uniform shared by all strata, :math:`u_j = (j - 1 + U) / N`; every count is
  :math:`\\lfloor N w_i \\rfloor` or :math:`\\lceil N w_i \\rceil`, so
  :math:`\\mathrm{Var}\\, O_i = r_i (1 - r_i)`, the least variance an integer with mean
  :math:`N w_i` can have.

Ordering of the marginal count variances (for every particle, every weight vector):
systematic :math:`\\le` stratified :math:`\\le` multinomial and systematic :math:`\\le` residual
:math:`\\le` multinomial (:func:`offspring_variance` gives the exact values). Systematic
resampling is not better than multinomial for every functional: its counts are correlated
across particles, and for adversarial orderings of the particles the variance of a weighted
average can exceed multinomial's; in filtering practice it is the usual default.

Systematic and stratified resampling cost :math:`O(N)` (offspring counts from the cumulative
weights, then a repeat); multinomial and the residual part :math:`O(N \\log N)` (a
``searchsorted``). All use fixed shapes and work under ``jit``/``vmap``. Indices are int32 arrays ``(N,)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from . import rng as _rng

__all__ = [
    "RESAMPLERS",
    "cumsum",
    "ess",
    "multinomial",
    "normalize",
    "offspring_counts",
    "offspring_variance",
    "resample",
    "residual",
    "stratified",
    "systematic",
    "systematic_from_uniform",
]


def normalize(log_weights):
    """Normalised log-weights :math:`\\log w_i = \\ell_i - \\log\\sum_j e^{\\ell_j}` ``(..., N)``
    and the log normaliser ``(...)``."""
    log_weights = jnp.asarray(log_weights)
    total = jax.nn.logsumexp(log_weights, axis=-1)
    return log_weights - total[..., None], total


def ess(log_weights):
    """Effective sample size :math:`(\\sum_i w_i)^2 / \\sum_i w_i^2` of log-weights
    ``(..., N)`` (any additive constant), a value in :math:`[1, N]` ``(...)``."""
    log_weights = jnp.asarray(log_weights)
    return jnp.exp(2 * jax.nn.logsumexp(log_weights, axis=-1) - jax.nn.logsumexp(2 * log_weights, axis=-1))


_BLOCK = 32


def _blocked_cumsum(x):
    """Inclusive cumulative sum of floating ``x`` ``(n,)``: the running sums inside blocks of 32
    as one matrix product with an upper-triangular matrix of ones, the same recursively on the
    block totals, then the offsets added. A handful of kernels, where XLA's CPU lowering of
    ``cumsum`` (a reduce-window per level) runs several times slower."""
    n = x.shape[0]
    if n <= 2 * _BLOCK:
        upper = jnp.triu(jnp.ones((n, n), x.dtype))
        return jnp.dot(x, upper, precision=jax.lax.Precision.HIGHEST)
    # a block length that divides n where one exists (padding would cost the producer of x its
    # vectorisation)
    b = next((d for d in range(_BLOCK, 2 * _BLOCK + 1) if n % d == 0),
             next((d for d in range(_BLOCK - 1, 7, -1) if n % d == 0), _BLOCK))
    upper = jnp.triu(jnp.ones((b, b), x.dtype))
    k = -(-n // b)
    blocks = (x if k * b == n else jnp.pad(x, (0, k * b - n))).reshape(k, b)
    within = jnp.dot(blocks, upper, precision=jax.lax.Precision.HIGHEST)       # (k, b)
    ends = _blocked_cumsum(within[:, -1])
    offsets = jnp.concatenate([jnp.zeros((1,), x.dtype), ends[:-1]])           # exclusive
    return (within + offsets[:, None]).reshape(-1)[:n]


def cumsum(x):
    """Inclusive cumulative sum of ``x`` ``(n,)``: :func:`_blocked_cumsum` on the CPU (integers
    through a float type that holds their sums exactly), ``jnp.cumsum`` elsewhere (chosen when
    the program is lowered for its platform)."""
    x = jnp.asarray(x)
    if x.shape[0] == 0:
        return x
    if jnp.issubdtype(x.dtype, jnp.floating):
        blocked = _blocked_cumsum
    else:   # integer counts, exact in a float with a 53-bit (24-bit) mantissa up to 2**53 (2**24)
        work = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
        if jnp.finfo(work).nmant < 30 and x.shape[0] > 2**22:
            return jnp.cumsum(x)

        def blocked(v):
            return jnp.round(_blocked_cumsum(v.astype(work))).astype(v.dtype)
    return jax.lax.platform_dependent(x, cpu=blocked, default=jnp.cumsum)


def _cumulative(log_weights):
    """Cumulative normalised weights ``(N,)`` ending exactly at 1 (one exponential a weight)."""
    log_weights = jnp.asarray(log_weights)
    top = jnp.max(log_weights)
    top = jax.lax.stop_gradient(jnp.where(jnp.isfinite(top), top, 0.0))
    c = cumsum(jnp.exp(log_weights - top))
    return (c / c[-1]).at[-1].set(1.0)


def _invert(cumulative, u):
    """Indices :math:`a_j = \\min\\{i : C_i > u_j\\}` for uniforms ``u`` in [0, 1)."""
    n = cumulative.shape[-1]
    return jnp.minimum(jnp.searchsorted(cumulative, u, side="right"), n - 1).astype(jnp.int32)


def _check_num(log_weights, num):
    n = jnp.shape(log_weights)[-1]
    return n if num is None else int(num)


def multinomial(key, log_weights, num=None, *, rng="splitmix"):
    """``num`` (default ``N``) i.i.d. draws from the categorical distribution of
    ``log_weights`` ``(N,)``; returns ancestor indices ``(num,)``. ``rng``: the uniforms'
    generator (:mod:`probssm.smc.rng`), as in every scheme here."""
    num = _check_num(log_weights, num)
    c = _cumulative(log_weights)
    u = _rng.uniform(key, (num,), c.dtype, rng)
    return _invert(c, u)


def _repeat(cumulative_counts, num):
    """Indices ``(num,)`` from cumulative offspring counts :math:`k` ``(N,)`` (nondecreasing,
    last ``num``): particle ``i`` repeated :math:`k_i - k_{i-1}` times, in order. Position
    ``j`` holds :math:`a_j = \\#\\{i : k_i \\le j\\}`, the cumulative sum of a histogram of
    :math:`k` (one scatter-add and one cumulative sum): :math:`O(N)`, loop-free."""
    k = jnp.clip(cumulative_counts, 0, num).astype(jnp.int32)
    marks = jnp.zeros((num + 1,), jnp.int32).at[k].add(1, mode="drop")
    return cumsum(marks[:num]).astype(jnp.int32)


def stratified(key, log_weights, num=None, *, rng="splitmix"):
    """Stratified resampling: :math:`u_j = (j + U_j) / M`, :math:`U_j` i.i.d. uniform,
    ``M = num`` (default ``N``); returns indices ``(M,)`` in increasing order.

    Particle ``i`` receives the :math:`u_j` in :math:`[C_{i-1}, C_i)`; the number below
    :math:`C_i` is :math:`\\lfloor M C_i \\rfloor + [U_{\\lfloor M C_i \\rfloor} < \\{M C_i\\}]`."""
    num = _check_num(log_weights, num)
    c = _cumulative(log_weights)
    u = _rng.uniform(key, (num + 1,), c.dtype, rng)
    scaled = num * c
    whole = jnp.floor(scaled)
    below = whole + (u[jnp.clip(whole.astype(jnp.int32), 0, num)] < scaled - whole)
    return _repeat(jnp.minimum(below, num).at[-1].set(num), num)


def systematic(key, log_weights, num=None, *, rng="splitmix"):
    """Systematic resampling: :math:`u_j = (j + U) / M` with one uniform :math:`U`,
    ``M = num`` (default ``N``); returns indices ``(M,)`` in increasing order.

    The number of :math:`u_j` below :math:`C_i` is :math:`\\lceil M C_i - U \\rceil`, so
    :math:`a_j = \\min\\{i : C_i > u_j\\}` without a search (:func:`systematic_from_uniform`)."""
    num = _check_num(log_weights, num)
    c = _cumulative(log_weights)
    U = _rng.uniform(key, (), c.dtype, rng)
    return systematic_from_uniform(c, U, num)


def systematic_from_uniform(cumulative, U, num=None):
    """Systematic resampling indices ``(num,)`` for cumulative normalised weights
    :math:`C` ``(N,)`` (last 1) and a given :math:`U \\in [0, 1)`: :math:`a_j = \\min\\{i : C_i >
    (j + U)/M\\}`, from the counts :math:`k_i = \\lceil M C_i - U \\rceil` of the points below
    each :math:`C_i` (:math:`O(N)`: a histogram of :math:`k` and its cumulative sum)."""
    cumulative = jnp.asarray(cumulative)
    num = cumulative.shape[-1] if num is None else int(num)
    below = jnp.ceil(num * cumulative - U)
    return _repeat(below.at[-1].set(num), num)


def residual(key, log_weights, num=None, *, rng="splitmix"):
    """Residual resampling: :math:`\\lfloor M w_i \\rfloor` deterministic copies of particle
    ``i``, the other :math:`R` indices drawn multinomially from the residual weights
    :math:`M w_i - \\lfloor M w_i \\rfloor`; ``M = num`` (default ``N``). Returns ``(M,)``
    (deterministic copies first)."""
    num = _check_num(log_weights, num)
    w = jnp.exp(normalize(log_weights)[0])
    scaled = num * w
    copies = jnp.floor(scaled)
    rest = scaled - copies
    # deterministic part: floor(M w_i) copies of particle i, in order, padded at the end
    deterministic = _repeat(cumsum(copies), num)
    positions = jnp.arange(num)
    total_copies = jnp.sum(copies)
    # random part: multinomial from the residuals (all zero only when every M w_i is an integer,
    # and then no position uses it)
    total_rest = jnp.sum(rest)
    rest_log = jnp.where(rest > 0, jnp.log(jnp.where(rest > 0, rest, 1.0)), -jnp.inf)
    rest_log = jnp.where(total_rest > 0, rest_log, jnp.zeros_like(rest_log))
    drawn = multinomial(key, rest_log, num, rng=rng)
    return jnp.where(positions < total_copies, deterministic, drawn).astype(jnp.int32)


RESAMPLERS = {
    "multinomial": multinomial,
    "stratified": stratified,
    "systematic": systematic,
    "residual": residual,
}
"""Scheme name -> function ``(key, log_weights (N,), num=None, *, rng="splitmix") -> indices (num,)``."""


def resample(key, log_weights, scheme: str = "systematic", num=None, *, rng="splitmix"):
    """Ancestor indices ``(num,)`` by the scheme named ``scheme`` (a key of :data:`RESAMPLERS`)."""
    try:
        fn = RESAMPLERS[scheme]
    except (KeyError, TypeError):
        raise ValueError(f"resampling must be one of {sorted(RESAMPLERS)}, got {scheme!r}") from None
    return fn(key, log_weights, num, rng=rng)


def offspring_counts(indices, n: int):
    """Offspring counts :math:`O_i` ``(..., n)`` of ancestor indices ``(..., M)``."""
    indices = jnp.asarray(indices)
    return jnp.sum(indices[..., :, None] == jnp.arange(n), axis=-2)


def offspring_variance(weights, scheme: str) -> np.ndarray:
    """Exact :math:`\\mathrm{Var}\\, O_i` ``(N,)`` of each scheme's offspring counts for
    normalised ``weights`` ``(N,)`` (NumPy, float64), ``N`` draws; the formulas of the module
    docstring (stratified: :math:`p_{ij}` is the length of
    :math:`[C_{i-1}, C_i) \\cap [(j-1)/N, j/N)` times ``N``)."""
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    n = w.shape[0]
    scaled = n * w
    frac = scaled - np.floor(scaled)
    if scheme == "multinomial":
        return n * w * (1 - w)
    if scheme == "systematic":
        return frac * (1 - frac)
    if scheme == "residual":
        r_total = frac.sum()
        return np.where(r_total > 0, frac * (1 - frac / max(r_total, 1e-300)), 0.0)
    if scheme == "stratified":
        upper = np.cumsum(scaled)
        lower = upper - scaled
        strata = np.arange(n)
        p = np.clip(np.minimum(upper[:, None], strata + 1) - np.maximum(lower[:, None], strata), 0, 1)
        return np.sum(p * (1 - p), axis=1)
    raise ValueError(f"scheme must be one of {sorted(RESAMPLERS)}, got {scheme!r}")
