"""Checks shared by the layers' ``forward`` and ``step``: shapes, dtypes, time gaps, and NaN at
missing steps replaced by zeros so they cannot reach the state or the gradients."""

from __future__ import annotations

import torch

from ..ops import _checks as chk


def _param_dtype(module: torch.nn.Module) -> torch.dtype:
    return next(module.parameters()).dtype


def check_sequence(module, x, dt, mask, *, token=False):
    """``(x, dt, mask)`` checked; missing steps of ``x`` set to zero.

    ``x`` is ``(batch, length, d_model)`` (``(batch, d_model)`` for a ``token``), ``dt`` and
    ``mask`` ``(batch, length)`` (``(batch,)``)."""
    fn = f"{type(module).__name__}.{'step' if token else 'forward'}"
    d_model = module.d_model
    chk.expect_tensor(fn, "x", x)
    chk.expect_float(fn, "x", x)
    if token:
        chk.expect_shape(fn, "x", x, (None, d_model), "(batch, d_model)")
        steps, step_labels = (x.shape[0],), "(batch,)"
    else:
        chk.expect_shape(fn, "x", x, (None, None, d_model), "(batch, length, d_model)")
        if x.shape[1] == 0:
            raise ValueError(f"{fn}: x has length 0 (shape {chk.shape_str(x.shape)})")
        steps, step_labels = tuple(x.shape[:2]), "(batch, length)"
    params = _param_dtype(module)
    autocast = torch.is_autocast_enabled(x.device.type)
    if x.dtype != params and not autocast:
        raise TypeError(f"{fn}: x is {x.dtype} but the layer's parameters are {params}; convert "
                        f"one of them (x.to({params}) or layer.to({x.dtype}))")
    if mask is not None:
        chk.expect_tensor(fn, "mask", mask)
        chk.expect_mask(fn, mask, steps, step_labels)
    axes = "batch channel" if token else "batch step channel"
    chk.first_nan(fn, "x", x, None if mask is None else mask[..., None], axes)
    if dt is not None:
        chk.expect_tensor(fn, "dt", dt)
        chk.expect_float(fn, "dt", dt)
        chk.expect_shape(fn, "dt", dt, steps, step_labels)
        gaps = dt if not token else dt[:, None]
        chk.expect_gaps(fn, gaps, None if mask is None else (mask if not token else mask[:, None]))
    if mask is not None:
        x = torch.where(mask[..., None], x, 0.0)
        if dt is not None:
            dt = torch.where(mask, dt, 0.0)
    return x, dt, mask


def check_state(module, name: str, value, expected: tuple, labels: str) -> None:
    fn = f"{type(module).__name__}"
    chk.expect_tensor(fn, name, value)
    chk.expect_shape(fn, name, value, expected, labels)
