"""Progress bars of long operations (backtest and cross-validation windows, automatic model
selection over series): a tqdm bar on standard error, shown only where that is a terminal, so
logs, CI output and captured streams stay clean."""

from __future__ import annotations

import sys

__all__ = ["progress", "progress_bar", "stderr_is_terminal"]


def stderr_is_terminal() -> bool:
    """Whether standard error is a terminal (``False`` for replaced or closed streams)."""
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):
        return False


def progress_bar(total: int, desc: str, *, show: bool = True, unit: str = "it"):
    """A tqdm bar of ``total`` steps when ``show`` and standard error is a terminal, else ``None``."""
    if not show or total < 1 or not stderr_is_terminal():
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, leave=False)


def progress(iterable, *, show: bool, desc: str, total: int | None = None, unit: str = "it"):
    """``iterable`` wrapped in a tqdm bar when ``show`` and standard error is a terminal;
    ``iterable`` itself otherwise."""
    if not show or not stderr_is_terminal():
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, unit=unit, leave=False)
