"""Broadcasting leading batch axes of a model and its data over a single-series function."""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import numpy as np

from . import sharding
from .model import FIELD_NAMES, LGSSM


def batch_shape_for(model: LGSSM, arrays: Sequence, core_ndims: Sequence[int]) -> tuple[int, ...]:
    """Broadcast batch shape of the model's fields and ``arrays`` (each with ``core_ndims``)."""
    shapes = [model.batch_shape_of(k) for k in FIELD_NAMES]
    shapes += [np.shape(x)[: np.ndim(x) - c] for x, c in zip(arrays, core_ndims)]
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        raise ValueError(
            f"batch shapes do not broadcast: model {model.batch_shape}, data "
            f"{[np.shape(x)[: np.ndim(x) - c] for x, c in zip(arrays, core_ndims)]}"
        ) from None


def vmap_batch(fn: Callable, model: LGSSM, arrays: Sequence, core_ndims: Sequence[int]):
    """Call ``fn(model, *arrays)`` on every batch element, by nested ``vmap``.

    Each argument's leading axes (beyond its core axes) are right-aligned against the broadcast
    batch shape; an argument without an axis, or with size one there, is shared, not copied.
    With several devices the first batch axis is spread over them
    (:func:`probssm.kalman.sharding.map_series`).
    """
    batch = batch_shape_for(model, arrays, core_ndims)
    leaves, treedef = jax.tree_util.tree_flatten(model)
    leaf_cores = [model.core_ndim(k) for k in FIELD_NAMES]
    args = list(leaves) + list(arrays)
    cores = leaf_cores + list(core_ndims)

    def call(*flat):
        return fn(jax.tree_util.tree_unflatten(treedef, flat[: len(leaves)]), *flat[len(leaves):])

    if not batch:
        return call(*args)
    depth = len(batch)
    in_axes = [0 if np.ndim(x) - c == depth and np.shape(x)[0] == batch[0] else None
               for x, c in zip(args, cores)]
    first = in_axes.index(0) if 0 in in_axes else None

    def block(*a):  # the series of one device (all of them without sharding)
        size = batch[0] if first is None else np.shape(a[first])[0]
        return _nested(call, list(a), cores, (size,) + batch[1:])

    return sharding.map_series(block, args, in_axes, batch[0])


def _nested(fn, args, cores, batch):
    if not batch:
        return fn(*args)
    depth = len(batch)
    in_axes, squeezed = [], []
    for x, c in zip(args, cores):
        lead = np.ndim(x) - c
        if lead == depth and np.shape(x)[0] == batch[0]:
            in_axes.append(0)
            squeezed.append(x)
        elif lead == depth:  # size-one axis: broadcast, so drop it
            in_axes.append(None)
            squeezed.append(x[0])
        else:
            in_axes.append(None)
            squeezed.append(x)
    inner = lambda *a: _nested(fn, list(a), cores, batch[1:])  # noqa: E731
    if all(ax is None for ax in in_axes):
        # Every argument is shared along this axis: compute once, broadcast the result.
        out = inner(*squeezed)
        return jax.tree_util.tree_map(lambda o: jax.numpy.broadcast_to(o, (batch[0],) + o.shape), out)
    return jax.vmap(inner, in_axes=in_axes)(*squeezed)
