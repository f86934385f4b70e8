"""Compatibility with jaxlib: where MLIR's Python bindings find the Triton dialect's module.

Why it exists. When the bindings wrap an MLIR value or type of a dialect, they first import
that dialect's Python module, named ``<prefix>.<namespace>`` for each registered search prefix,
and remember the namespace only once an import succeeds. jaxlib registers the Triton dialect
(namespace ``tt``) from ``jaxlib.triton.dialect``, a name under none of its prefixes (only
``jaxlib.mlir.dialects`` and the like), so every Triton pointer value that Pallas' lowering
creates runs failing imports (a walk over the ``sys.path`` entries each): thousands of
``ModuleNotFoundError`` for one program, a large share of its tracing and lowering time, more
where the file system is slow. :func:`register` adds this package as a search prefix; its
:mod:`.tt` module is the Triton dialect's, so the first lookup succeeds and the bindings never
search again.

When it can go: once jaxlib makes the dialect's module importable under one of its own search
prefixes (``import jaxlib.mlir.dialects.tt`` succeeds; it fails with jaxlib 0.10) in every
jaxlib the package supports. Then delete this package and its one call in
:func:`probssm.kalman.ops.launch.call`;
``tests/kalman/ops/test_filter_kernel.py::test_lowering_looks_up_the_triton_dialect_module_once``
checks the lookups either way.
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
