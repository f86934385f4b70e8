"""Python's cyclic garbage collector paused around work that creates many long-lived objects."""

from __future__ import annotations

import contextlib
import gc

__all__ = ["collector_paused"]


@contextlib.contextmanager
def collector_paused():
    """The cyclic garbage collector off inside the block (on again after it, if it was on).

    Its passes run every few hundred allocations and rescan every live container object, so a
    step that builds many objects which all stay alive pays again and again for nothing, as
    tracing a fused kernel does (some 1e5 objects of its jaxpr)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
