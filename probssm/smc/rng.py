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
3. normals by the Box-Muller transform
   :math:`z = \\sqrt{-2 \\log u_1}\\,(\\cos 2\\pi u_2, \\sin 2\\pi u_2)`, exact in law; for
   float64 the logarithm and the sine/cosine are evaluated with polynomial kernels that the
   compiler vectorises (relative error below :math:`10^{-15}`; the tails reach
   :math:`8.6\\sigma`, where a uniform with 53 bits ends); other dtypes use ``jnp.log``,
   ``jnp.cos``, ``jnp.sin`` in their own precision on 24-bit uniforms (tails to
   :math:`5.9\\sigma`, as ``jax.random.normal`` in float32).

``rng="jax"`` uses ``jax.random`` itself (the key's own implementation: Threefry, or ``rbg``
keys). Both give the same distributions; they give different numbers for the same key.

All functions take a key and a static shape and work under ``jit``/``vmap``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["RNGS", "normal", "uniform"]

RNGS = ("splitmix", "jax")
"""Names accepted by ``rng=``."""

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _mix(z):
    """SplitMix64's output function (``uint64`` -> ``uint64``)."""
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def _seeds(key, k: int):
    """``k`` 64-bit seeds from a JAX key, as a ``uint64`` array ``(k,)`` (``uint32`` pairs
    when 64-bit types are disabled)."""
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
_SIN = tuple((-1) ** k / math.factorial(2 * k + 1) for k in range(10))
_COS = tuple((-1) ** k / math.factorial(2 * k) for k in range(11))


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
    s2 = s * s
    p = _ATANH[-1]
    for c in _ATANH[-2::-1]:
        p = p * s2 + c
    return e * _LN2_HI + (2.0 * s * p + e * _LN2_LO)


def _cos_sin_2pi64(u):
    """A point :math:`(\\cos\\theta, \\sin\\theta)` of the unit circle with :math:`\\theta`
    uniform when float64 ``u`` is uniform on [0, 1): the octant :math:`o = \\lfloor 8u \\rfloor`
    picks one of the eight symmetries :math:`(x, y) \\mapsto (\\pm x, \\pm y), (\\pm y, \\pm x)`
    (they map the arc :math:`[0, \\pi/4]` onto the eight octants), applied to
    :math:`(\\cos\\varphi, \\sin\\varphi)`, :math:`\\varphi = (8u - o)\\,\\pi/4`, from Taylor
    series of degree 20 / 19. Float operations only (no integer selects), so it vectorises."""
    v = 8.0 * u
    o = jnp.floor(v)
    phi = (v - o) * (math.pi / 4)            # v - o is exact
    z = phi * phi
    s = _SIN[-1]
    for c in _SIN[-2::-1]:
        s = s * z + c
    s = s * phi
    c_ = _COS[-1]
    for c in _COS[-2::-1]:
        c_ = c_ * z + c
    # keep the series out of the consumers' fusions (they would be evaluated once per output)
    s, c_ = jax.lax.optimization_barrier((s, c_))
    half = jnp.floor(0.5 * o)
    swap = o - 2.0 * half > 0.5                      # bit 0 of o
    quarter = jnp.floor(0.5 * half)
    sign_x = 1.0 - 2.0 * (half - 2.0 * quarter)     # bit 1 of o
    sign_y = 1.0 - 2.0 * quarter                    # bit 2 of o
    return sign_x * jnp.where(swap, s, c_), sign_y * jnp.where(swap, c_, s)


def _normal_from_uniforms(u1, u2, dtype):
    if dtype == jnp.float64:
        r = jax.lax.optimization_barrier(jnp.sqrt(-2.0 * _log64(u1)))
        cos, sin = _cos_sin_2pi64(u2)
    else:
        r = jnp.sqrt(jnp.asarray(-2.0, dtype) * jnp.log(u1))
        theta = jnp.asarray(2 * math.pi, dtype) * u2
        cos, sin = jnp.cos(theta), jnp.sin(theta)
    return r * cos, r * sin


# ----------------------------------------------------------------------------------------------
# public draws
# ----------------------------------------------------------------------------------------------
def _check(rng):
    if rng not in RNGS:
        raise ValueError(f"rng must be one of {list(RNGS)}, got {rng!r}")


def uniform(key, shape=(), dtype=None, rng: str = "splitmix"):
    """Uniforms on (0, 1) of ``shape`` (``rng="jax"``: ``jax.random.uniform``, on [0, 1))."""
    _check(rng)
    shape = tuple(shape)
    dtype = jnp.dtype(jnp.result_type(float) if dtype is None else dtype)
    if rng == "jax":
        return jax.random.uniform(key, shape, dtype)
    n = math.prod(shape)
    seed = _seeds(key, 1)[0]
    return jnp.reshape(_uniform_open(seed, n, dtype), shape)


def normal(key, shape=(), dtype=None, rng: str = "splitmix"):
    """Standard normals of ``shape`` (``rng="jax"``: ``jax.random.normal``)."""
    _check(rng)
    shape = tuple(shape)
    dtype = jnp.dtype(jnp.result_type(float) if dtype is None else dtype)
    if rng == "jax":
        return jax.random.normal(key, shape, dtype)
    n = math.prod(shape)
    half = (n + 1) // 2
    seeds = _seeds(key, 2)
    u1 = _uniform_open(seeds[0], half, dtype)
    u2 = _uniform_open(seeds[1], half, dtype)
    a, b = _normal_from_uniforms(u1, u2, dtype)
    return jnp.reshape(jnp.concatenate([a, b])[:n], shape)
