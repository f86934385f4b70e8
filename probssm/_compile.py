"""Compilation: ``jax.jit`` with faster-compiling CPU options, and JAX's persistent cache.

**Persistent cache.** An estimator's first fit in a new process compiles its programs (times
in ``benchmarks/README.md``, ``first_fit.py``). :func:`use_persistent_cache` turns on JAX's
persistent compilation cache in the user's cache folder, so later processes load them instead:
``$PROBSSM_CACHE_DIR``, else ``$XDG_CACHE_HOME/probssm/jax``, else ``~/.cache/probssm/jax``,
at most 1 GiB (least recently used entries go first; reads and writes take a file lock).
Estimators call it before they fit. It leaves JAX alone where the user has set a cache folder
already, and does nothing when the environment variable ``PROBSSM_NO_COMPILATION_CACHE`` is set
to a non-empty value other than ``0``.

**CPU compiler options.** On a CPU, XLA's MLIR fusion emitters (``xla_cpu_use_fusion_emitters``)
compile the batched L-BFGS program of a structural model markedly slower than the classic
elemental emitters, and the code they give runs no faster. The option is given per program,
never globally, and only where the default backend is a CPU whose XLA knows it; elsewhere
:func:`jit` is plain ``jax.jit``.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import jax

__all__ = ["jit", "use_persistent_cache", "persistent_cache_dir"]

# Programs that compile faster than this are not worth a file: reading one back costs about as
# much as compiling it (JAX's own default, 1 s, would skip most of probssm's CPU programs).
_MIN_COMPILE_SECONDS = 0.1
# A size limit turns on JAX's least-recently-used eviction, and with it a file lock around every
# read and write: without it an entry is written in place, and another process (a second test
# worker, a notebook beside a script) can read it half-written.
_MAX_CACHE_BYTES = 2**30

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


def persistent_cache_dir() -> Path | None:
    """The folder :func:`use_persistent_cache` uses, or ``None`` when the cache is switched off
    by ``PROBSSM_NO_COMPILATION_CACHE``."""
    if os.environ.get("PROBSSM_NO_COMPILATION_CACHE", "0") not in ("", "0"):
        return None
    if os.environ.get("PROBSSM_CACHE_DIR"):
        return Path(os.environ["PROBSSM_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "probssm" / "jax"


@functools.cache
def use_persistent_cache() -> bool:
    """Turn on JAX's persistent compilation cache in :func:`persistent_cache_dir` (once per
    process). Returns whether probssm's folder is in use: ``False`` when switched off or when
    the user configured a cache folder of their own (theirs is kept)."""
    folder = persistent_cache_dir()
    if folder is None or jax.config.jax_compilation_cache_dir:
        return False
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:  # a read-only home: compile as before
        return False
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", _MIN_COMPILE_SECONDS)
    jax.config.update("jax_compilation_cache_max_size", _MAX_CACHE_BYTES)
    return True
