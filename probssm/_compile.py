"""``jax.jit`` for the programs probssm builds at fit time, with faster-compiling CPU options.

On a CPU, XLA's MLIR fusion emitters (``xla_cpu_use_fusion_emitters``) take about 40 % longer to
compile the batched L-BFGS program of a structural model than the classic elemental emitters,
and the code they give runs no faster (measured on the 2-core CI machine, JAX 0.10: compile
1.05 s instead of 1.73 s, two passes over 64 series 35.3 ms instead of 37.3 ms). The option
is given per program, never globally, and only where the default backend is a CPU whose XLA
knows it; elsewhere :func:`jit` is plain ``jax.jit``.
"""

from __future__ import annotations

import functools

import jax

__all__ = ["jit"]

_CPU_OPTIONS = {"xla_cpu_use_fusion_emitters": False}


@functools.cache
def _compiler_options(backend: str) -> tuple:
    if backend != "cpu":
        return ()
    try:  # an XLA that no longer knows the option rejects it: then compile with the defaults
        jax.jit(lambda x: x + 1, compiler_options=_CPU_OPTIONS).lower(1.0).compile()
    except jax.errors.JaxRuntimeError:
        return ()
    return tuple(_CPU_OPTIONS.items())


def jit(fun, **kwargs):
    """``jax.jit(fun, **kwargs)``, with :data:`_CPU_OPTIONS` as ``compiler_options`` when the
    default backend is a CPU. Only for programs called at the top level (JAX refuses compiler
    options on a jit nested in another's trace), and created when needed, not at import (it asks
    JAX for the default backend)."""
    options = dict(_compiler_options(jax.default_backend()))
    return jax.jit(fun, compiler_options=options or None, **kwargs)
