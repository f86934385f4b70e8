"""Progress bars for long loops (backtest windows, cross-validation windows)."""

from __future__ import annotations

import sys

__all__ = ["progress"]


def progress(iterable, *, verbose: bool, desc: str, total: int | None = None):
    """``iterable`` wrapped in a tqdm bar on stderr when ``verbose`` is true and stderr is a
    terminal; ``iterable`` itself otherwise (so logs and captured output stay clean)."""
    if not verbose or not _stderr_is_terminal():
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, unit="window", leave=False)


def _stderr_is_terminal() -> bool:
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):  # replaced or closed streams
        return False
