"""Random numbers for the particle filters: a counter-based generator that is cheap on the CPU.

The filters draw :math:`O(N)` standard normals and a few uniforms at every time step. With
``jax.random`` on the CPU that dominates the step: the Threefry hash costs several nanoseconds a
32-bit word, and a float64 normal goes through ``erf_inv``. The ``"splitmix"`` generator here
(the default ``rng=`` of :func:`probssm.smc.filter`) draws them instead as

1. two 64-bit seeds :math:`s_1, s_2` from the JAX key (``jax.random.bits``: so results are a
   function of the key, reproducible per seed, and independent keys give independent streams);
2. uniforms :math:`u_{k,i} = (\\lfloor h(s_k + (i + 1)\\gamma) / 2^{11} \\rfloor + 1/2) / 2^{53}
   \\in (0, 1)`, with :math:`h` the SplitMix64 output function and :math:`\\gamma` the golden
   ratio increment (Steele, Lea & Flood 2014): the :math:`i`-th output of SplitMix64 started at
   :math:`s_k`, a generator that passes BigCrush;
3. normals by the Box-Muller transform, exact in law. In float64 each normal takes its own
   pair, :math:`z = s \\sqrt{-2 \\log u_1} \\cos(\\pi u_2 / 2)` with a random sign :math:`s` (the
   lowest bit of the second word), so that the compiler evaluates each output once; the
   logarithm and the cosine are polynomial kernels that it vectorises (relative error below
   :math:`10^{-15}`; the tails reach :math:`8.6\\sigma`, where a uniform with 53 bits ends).
   Other dtypes take both normals of a pair, :math:`\\sqrt{-2 \\log u_1}\\,(\\cos 2\\pi u_2,
   \\sin 2\\pi u_2)`, with ``jnp.log``,
   ``jnp.cos``, ``jnp.sin`` in their own precision on 24-bit uniforms (tails to
   :math:`5.9\\sigma`, as ``jax.random.normal`` in float32).

``rng="jax"`` uses ``jax.random`` itself (the key's own implementation: Threefry, or ``rbg``
keys). Both give the same distributions; they give different numbers for the same key.

All functions take a JAX key, or a ``uint64`` seed from :func:`seeds`, and a static shape,
and work under ``jit``/``vmap``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["RNGS", "as_key", "normal", "seeds", "split", "uniform"]

RNGS = ("splitmix", "jax")
"""Names accepted by ``rng=``."""

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_SPLIT = np.uint64(0xD1B54A32D192ED03)


def _mix(z):
    """SplitMix64's output function (``uint64`` -> ``uint64``)."""
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def _is_seed(key) -> bool:
    """Whether ``key`` is a raw ``uint64`` seed (from :func:`seeds`) rather than a JAX key."""
    return not jnp.issubdtype(key.dtype, jax.dtypes.prng_key) and key.dtype == jnp.uint64


def seeds(key, shape=()):
    """Independent ``uint64`` seeds of ``shape`` from a JAX key (one Threefry evaluation for all
    of them): a filter draws one per time step before its loop, so that the loop itself runs no
    Threefry rounds. Needs 64-bit types (``jax.enable_x64``); without them the JAX key is kept."""
    if not jax.config.jax_enable_x64:
        return jax.random.split(key, shape)
    return jax.random.bits(key, tuple(np.atleast_1d(shape)) if shape else (), jnp.uint64)


def split(key, num: int = 2):
    """``num`` independent keys or seeds from one (``jax.random.split`` for JAX keys; for a seed
    :math:`s`, :math:`h(s \\oplus c_i)` with SplitMix64's output function :math:`h` and distinct
    odd constants :math:`c_i`)."""
    if _is_seed(key):
        return _mix(key ^ (jnp.arange(1, num + 1, dtype=jnp.uint64) * _SPLIT))
    return jax.random.split(key, num)


def as_key(key):
    """A JAX key for ``jax.random`` / NumPyro samplers from a key or a seed."""
    if _is_seed(key):
        return jax.random.PRNGKey(jax.lax.bitcast_convert_type(key, jnp.int64))
    return key


def _seeds(key, k: int):
    """``k`` 64-bit seeds from a JAX key or a seed, as a ``uint64`` array ``(k,)`` (``uint32``
    pairs when 64-bit types are disabled)."""
    if _is_seed(key):
        return split(key, k)
    if jax.config.jax_enable_x64:
        return jax.random.bits(key, (k,), jnp.uint64)
    return jax.random.bits(key, (k, 2), jnp.uint32)


def _bits64(seed, n: int):
    """SplitMix64 outputs ``1..n`` from ``seed`` ``(n,)`` ``uint64``."""
    counter = jnp.arange(1, n + 1, dtype=jnp.uint64)
    return _mix(seed + counter * _GAMMA)


def _uniform_open(seed, n: int, dtype):
    """``n`` uniforms in the open interval (0, 1)."""
    if seed.dtype == jnp.uint64:
        z = _bits64(seed, n)
        if dtype == jnp.float64:
            return ((z >> np.uint64(11)).astype(jnp.float64) + 0.5) * (2.0**-53)
        top = (z >> np.uint64(32)).astype(jnp.uint32)
    else:   # 32-bit mode: a 32-bit variant of the same construction (hash of seed and counter)
        counter = jnp.arange(1, n + 1, dtype=jnp.uint32)
        top = _mix32(_mix32(seed[0] ^ counter * np.uint32(0x9E3779B9)) + seed[1])
    # 24 bits, exact in float32
    return ((top >> np.uint32(8)).astype(dtype) + jnp.asarray(0.5, dtype)) * jnp.asarray(2.0**-24, dtype)


def _mix32(z):
    """A 32-bit integer finaliser (``lowbias32``, C. Wellons)."""
    z = (z ^ (z >> np.uint32(16))) * np.uint32(0x7FEB352D)
    z = (z ^ (z >> np.uint32(15))) * np.uint32(0x846CA68B)
    return z ^ (z >> np.uint32(16))


# ----------------------------------------------------------------------------------------------
# float64 kernels: only multiplies, adds, one division and bit operations, so they vectorise
# ----------------------------------------------------------------------------------------------
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_ATANH = tuple(1.0 / (2 * k + 1) for k in range(11))      # log m = 2 s sum_k s^{2k} / (2k + 1)
_COS_QUARTER = tuple((-1) ** k / math.factorial(2 * k) for k in range(13))   # to phi^24 on [0, pi/2]


def _poly(z, coeffs):
    """:math:`\\sum_k c_k z^k` by Estrin's scheme: pairs :math:`c_{2k} + c_{2k+1} z`, then pairs
    of those in :math:`z^2`, :math:`z^4`, ...: a dependency chain of depth
    :math:`\\lceil \\log_2 K \\rceil` instead of Horner's :math:`K - 1`, which keeps the vector
    units busy (the series here have positive radius and fast-decaying terms, so the order of
    the additions does not matter to float64 accuracy)."""
    terms = [jnp.asarray(c, z.dtype) if not isinstance(c, jax.Array) else c for c in coeffs]
    power = z
    while len(terms) > 1:
        paired = [terms[i] + terms[i + 1] * power for i in range(0, len(terms) - 1, 2)]
        if len(terms) % 2:
            paired.append(terms[-1])
        terms = paired
        power = power * power
    return terms[0]


def _log64(u):
    """``log(u)`` for normal positive float64 ``u``: ``u = m 2^e`` with :math:`m \\in
    [1/\\sqrt 2, \\sqrt 2)`, :math:`\\log m = 2\\,\\mathrm{atanh}\\, s`, :math:`s = (m - 1)/(m + 1)`,
    :math:`|s| < 0.172`, summed to :math:`s^{21}`."""
    b = jax.lax.bitcast_convert_type(u, jnp.uint64)
    e = (b >> np.uint64(52)).astype(jnp.int64) - 1023
    m = jax.lax.bitcast_convert_type((b & np.uint64(0x000FFFFFFFFFFFFF)) | np.uint64(0x3FF0000000000000),
                                     jnp.float64)
    big = m > math.sqrt(2.0)
    m = jnp.where(big, 0.5 * m, m)
    e = (e + big.astype(jnp.int64)).astype(jnp.float64)
    s = (m - 1.0) / (m + 1.0)
    p = _poly(s * s, _ATANH)
    return e * _LN2_HI + (2.0 * s * p + e * _LN2_LO)


def _cos_quarter64(phi):
    """:math:`\\cos\\varphi` for float64 :math:`\\varphi \\in [0, \\pi/2]`, Taylor series to
    :math:`\\varphi^{24}` (truncation below :math:`10^{-17}`)."""
    return _poly(phi * phi, _COS_QUARTER)


def _normal_pair(u1, u2, dtype):
    """Both normals of a Box-Muller pair, in ``dtype``'s own ``log``/``cos``/``sin``."""
    r = jnp.sqrt(jnp.asarray(-2.0, dtype) * jnp.log(u1))
    theta = jnp.asarray(2 * math.pi, dtype) * u2
    return r * jnp.cos(theta), r * jnp.sin(theta)


# ----------------------------------------------------------------------------------------------
# public draws
# ----------------------------------------------------------------------------------------------
def _check(rng):
    if rng not in RNGS:
        raise ValueError(f"rng must be one of {list(RNGS)}, got {rng!r}")


def _draw_spec(rng, shape, dtype):
    """The checked generator name's draw shape (a tuple) and dtype (default float)."""
    _check(rng)
    return tuple(shape), jnp.dtype(jnp.result_type(float) if dtype is None else dtype)


def uniform(key, shape=(), dtype=None, rng: str = "splitmix"):
    """Uniforms on (0, 1) of ``shape`` (``rng="jax"``: ``jax.random.uniform``, on [0, 1))."""
    shape, dtype = _draw_spec(rng, shape, dtype)
    if rng == "jax":
        return jax.random.uniform(as_key(key), shape, dtype)
    n = math.prod(shape)
    seed = _seeds(key, 1)[0]
    return jnp.reshape(_uniform_open(seed, n, dtype), shape)


def normal(key, shape=(), dtype=None, rng: str = "splitmix"):
    """Standard normals of ``shape`` (``rng="jax"``: ``jax.random.normal``)."""
    shape, dtype = _draw_spec(rng, shape, dtype)
    if rng == "jax":
        return jax.random.normal(as_key(key), shape, dtype)
    n = math.prod(shape)
    if dtype == jnp.float64:
        # one normal per pair of uniforms, z = s r cos(phi): r = sqrt(-2 log u1), phi = u2 pi/2,
        # s a random sign (the sign and phi give a uniform angle's cosine). The compiler cannot
        # share work between the two halves of a Box-Muller pair (a concatenation evaluates each
        # half on its own), so one normal per pair is the cheaper program.
        s1, s2 = _seeds(key, 2)
        u1 = _uniform_open(s1, n, dtype)
        h2 = _bits64(s2, n)
        u2 = (h2 >> np.uint64(11)).astype(jnp.float64) * (2.0**-53)               # [0, 1)
        sign = 1.0 - 2.0 * (h2 & np.uint64(1)).astype(jnp.float64)
        z = sign * jnp.sqrt(-2.0 * _log64(u1)) * _cos_quarter64(u2 * (math.pi / 2))
        return jnp.reshape(z, shape)
    half = (n + 1) // 2
    seeds_ = _seeds(key, 2)
    u1 = _uniform_open(seeds_[0], half, dtype)
    u2 = _uniform_open(seeds_[1], half, dtype)
    a, b = _normal_pair(u1, u2, dtype)
    return jnp.reshape(jnp.concatenate([a, b])[:n], shape)
