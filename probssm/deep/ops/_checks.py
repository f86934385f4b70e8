"""Input checks shared by the operators and layers: errors that name the argument, the expected
shape (with the sizes already known) and the shape received."""

from __future__ import annotations

import torch

FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def shape_str(shape) -> str:
    """``(2, 3)``, and ``(4,)`` for one axis, as Python writes tuples."""
    parts = [str(s) for s in shape]
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


def expect_tensor(fn: str, name: str, value) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{fn}: {name} must be a torch.Tensor, got {type(value).__name__}")
    return value


def expect_shape(fn: str, name: str, value: torch.Tensor, expected: tuple, labels: str) -> None:
    """``expected`` holds sizes, ``None`` where any size is accepted; ``labels`` names the axes,
    e.g. ``"(batch, dim, length)"``."""
    ok = value.dim() == len(expected) and all(
        e is None or e == s for e, s in zip(expected, value.shape))
    if not ok:
        want = shape_str("?" if e is None else e for e in expected)
        raise ValueError(
            f"{fn}: {name} must have shape {labels} = {want}, got {shape_str(value.shape)}")


def expect_float(fn: str, name: str, value: torch.Tensor) -> None:
    if value.dtype not in FLOATS:
        kind = "complex" if value.is_complex() else str(value.dtype)
        raise TypeError(f"{fn}: {name} must be a real floating tensor (float16, bfloat16, "
                        f"float32 or float64), got {kind} ({value.dtype})")


def expect_same_dtype(fn: str, named: dict) -> None:
    named = {k: v for k, v in named.items() if v is not None}
    dtypes = {v.dtype for v in named.values()}
    if len(dtypes) > 1:
        got = ", ".join(f"{k} {v.dtype}" for k, v in named.items())
        raise TypeError(f"{fn}: {', '.join(named)} must share one dtype, got {got}")


def expect_same_device(fn: str, named: dict) -> None:
    named = {k: v for k, v in named.items() if v is not None}
    devices = {v.device for v in named.values()}
    if len(devices) > 1:
        got = ", ".join(f"{k} on {v.device}" for k, v in named.items())
        raise ValueError(f"{fn}: all tensors must be on one device, got {got}")


def expect_mask(fn: str, mask: torch.Tensor, expected: tuple, labels: str) -> None:
    expect_shape(fn, "mask", mask, expected, labels)
    if mask.dtype != torch.bool:
        raise TypeError(f"{fn}: mask must be a bool tensor (True = observed), got {mask.dtype}")


def first_nan(fn: str, name: str, value: torch.Tensor, observed: torch.Tensor | None,
              axes: str) -> None:
    """Raise when ``value`` holds a NaN where ``observed`` (broadcastable to it) is True.

    NaN there would silently propagate through the recurrence to every later output."""
    bad = torch.isnan(value)
    if observed is not None:
        bad = bad & observed
    if bool(bad.any()):
        where = tuple(int(i) for i in bad.nonzero()[0])
        place = ", ".join(f"{axis} {i}" for axis, i in zip(axes.split(), where))
        hint = ("" if observed is None else
                " (mask marks this step observed)")
        raise ValueError(
            f"{fn}: {name} is NaN at ({place}){hint}; mark missing steps with mask=False "
            "(their values are then ignored)")


def expect_gaps(fn: str, dt: torch.Tensor, observed: torch.Tensor | None) -> None:
    """Time gaps must be finite and non-negative at observed steps: a negative gap would grow the
    state instead of decaying it."""
    first_nan(fn, "dt", dt, observed, "batch step")
    bad = ~torch.isfinite(dt) | (dt < 0)
    if observed is not None:
        bad = bad & observed
    if bool(bad.any()):
        where = tuple(int(i) for i in bad.nonzero()[0])
        raise ValueError(f"{fn}: dt must be finite and >= 0 at observed steps, got "
                         f"{float(dt[where])} at (batch {where[0]}, step {where[1]})")
