"""Where MLIR's Python bindings find the Triton dialect's module (a compile-time fix).

When the bindings wrap an MLIR value or type of a dialect, they first import that dialect's
Python module, named ``<prefix>.<namespace>`` for each registered search prefix, and remember
the namespace only once an import succeeds. jaxlib registers the Triton dialect (namespace
``tt``) from ``jaxlib.triton.dialect``, a name under none of its prefixes
(``jaxlib.mlir.dialects``, ``jaxlib.mosaic.python``, ...), so every Triton pointer value that
Pallas' lowering creates ran three failing imports (a walk over ``sys.path`` entries each):
about 23 000 ``ModuleNotFoundError`` for one smoother program at ``n = 8``, a third of its
tracing and lowering on the CPU and more where the file system is slow.

:func:`register` adds this package as a search prefix; its :mod:`.tt` module is the Triton
dialect's, so the first lookup succeeds and the bindings never search again.
"""

from __future__ import annotations

_PREFIX = __name__


def register():
    """Make ``tt`` resolvable by the MLIR bindings (idempotent; a no-op where jaxlib has no
    Triton dialect or its bindings no search-prefix API)."""
    try:
        from jax._src.lib.triton import dialect  # noqa: F401  (what .tt imports)
        from jaxlib.mlir._mlir_libs import _mlir
    except ImportError:
        return
    registry = getattr(_mlir, "globals", None)
    append = getattr(registry, "append_dialect_search_prefix", None)
    if append is None or _PREFIX in getattr(registry, "dialect_search_modules", ()):
        return
    append(_PREFIX)
