"""One Pallas launch of a kernel over blocks of lanes (:func:`call`), as every kernel of
:mod:`.filter_programs` and :mod:`.chunk_scan` is launched.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax.experimental import pallas as pl

from ..._gc import collector_paused
from . import lane_algebra as ka


def call(kernel, inputs, out_shapes, lanes, block, interpret, num_warps=1):
    """One Pallas launch over ``ceil(lanes / block)`` programs with raw (``ANY``) refs; the
    kernel runs under :func:`probssm.kalman.ops.lane_algebra.opaque_zero` with a zero read from
    an extra int32 input."""
    kwargs = {}
    if not interpret:
        from jax.experimental.pallas import triton as plgpu

        from ._jaxlib_triton_compat import register

        register()  # else lowering retries a failing import per Triton value
        kwargs["compiler_params"] = plgpu.CompilerParams(num_warps=num_warps, num_stages=1)
    spec = pl.BlockSpec(memory_space=pl.ANY)

    def with_zero(zero_ref, *refs):
        with ka.opaque_zero(zero_ref[0]):
            kernel(*refs)

    with collector_paused():
        return pl.pallas_call(
            with_zero, out_shape=out_shapes, grid=(-(-lanes // block),),
            in_specs=[spec] * (len(inputs) + 1), out_specs=[spec] * len(out_shapes),
            interpret=interpret, **kwargs,
        )(jnp.zeros((1,), jnp.int32), *inputs)


def padded(lanes, block):
    """``lanes`` rounded up to a whole number of blocks."""
    return -(-lanes // block) * block
