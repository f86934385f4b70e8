r"""Data parallelism over the local devices along the series (batch) axis.

Batched programs of the linear-Gaussian engine treat their series independently: the batched
:func:`~probssm.kalman.filter`, :func:`~probssm.kalman.smooth`,
:func:`~probssm.kalman.log_likelihood`, :func:`~probssm.kalman.forecast` and
:func:`~probssm.kalman.sample` (through :func:`probssm.kalman.batching.vmap_batch`), the panel
filter of the estimators and the traced lock-step path of
:func:`probssm.fit.batched.minimize_batched`. Where more than one device is present (several
GPUs, or CPU devices made with ``XLA_FLAGS=--xla_force_host_platform_device_count=N``) such a
program runs under :func:`jax.shard_map` on the one-axis mesh
``Mesh(jax.local_devices(), ("series",))``: the ``B`` series are padded to
:math:`B' = D \lceil B / D \rceil` by repeating the last one, each of the :math:`D` devices
computes :math:`B'/D` of them with the same per-series program as one device, and the padding is
dropped. No device communicates with another while the program runs (nothing per time step or
per optimiser iteration); the inputs are scattered once, and the outputs stay sharded
(``NamedSharding(mesh, PartitionSpec("series"))``) when :math:`D` divides ``B``, or are
gathered onto every device otherwise. The panel fits' work queues
(:func:`probssm.fit.batched.minimize_batched` on concrete inputs) are split the same way, one
queue per device (:func:`devices`).

Results equal those of one device: each series' arithmetic is the same, only where it runs
changes.

When it turns on: automatically, when :func:`devices` returns more than one device, and for a
batch of at least as many series as devices. It is off

- with the environment variable ``PROBSSM_SHARDING=0`` (or ``off``, ``false``, ``no``), read
  when a program is traced: set it before the first call;
- inside ``with jax.default_device(device):`` (everything then runs on that device);
- where a mesh is already in effect (``jax.set_mesh`` / ``jax.sharding.use_mesh``, or inside a
  ``shard_map``): the caller's partitioning is left alone.

Arrays the caller has committed to a single device (``jax.device_put(y, device)``) cannot enter
a program that spans all devices: compute on them under ``jax.default_device(device)``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

__all__ = ["AXIS", "ENV_VAR", "devices", "map_series", "mesh", "series_sharding"]

AXIS = "series"
"""The mesh axis name of the series (batch) axis."""

ENV_VAR = "PROBSSM_SHARDING"
"""Environment variable that turns the automatic sharding off (``0``, ``off``, ``false``, ``no``)."""

_OFF = ("0", "off", "false", "no")


def devices() -> tuple:
    """The devices batched programs spread series over: ``jax.local_devices()`` of the default
    backend when there are two or more and sharding is on (see the module docstring); ``()``
    otherwise."""
    if os.environ.get(ENV_VAR, "").strip().lower() in _OFF:
        return ()
    if jax.config.jax_default_device is not None:
        return ()
    if not jax.sharding.get_abstract_mesh().empty:
        return ()
    local = tuple(jax.local_devices())
    return local if len(local) > 1 else ()


@functools.cache
def _mesh(devs: tuple) -> Mesh:
    return Mesh(np.array(devs), (AXIS,))


def mesh(batch_size: int | None = None) -> Mesh | None:
    """The one-axis mesh ``("series",)`` over :func:`devices`, or ``None`` where sharding is off
    or ``batch_size`` (when given) is smaller than the number of devices."""
    devs = devices()
    if not devs or (batch_size is not None and batch_size < len(devs)):
        return None
    return _mesh(devs)


def series_sharding(batch_size: int | None = None) -> NamedSharding | None:
    """``NamedSharding(mesh, PartitionSpec("series"))``: arrays ``(B, ...)`` split along their
    leading axis over the devices (``None`` where :func:`mesh` is ``None``). For placing data
    with ``jax.device_put`` ahead of many calls; ``B`` must be a multiple of the device count."""
    m = mesh(batch_size)
    return None if m is None else NamedSharding(m, PartitionSpec(AXIS))


def _pad(x, axis: int, size: int):
    """``x`` extended along ``axis`` to ``size`` by repeating its last slice."""
    extra = size - x.shape[axis]
    if extra == 0:
        return x
    last = jax.lax.slice_in_dim(x, x.shape[axis] - 1, x.shape[axis], axis=axis)
    reps = [1] * x.ndim
    reps[axis] = extra
    return jnp.concatenate([x, jnp.tile(last, reps)], axis=axis)


def map_series(fn: Callable, args: Sequence, in_axes: Sequence[int | None], batch_size: int):
    r"""``fn(*args)`` with its series spread over the devices, or called as it is.

    ``fn`` maps along a series axis: argument ``i`` holds the ``B = batch_size`` series along
    axis ``in_axes[i]`` (``None``: shared by all series), and every leaf of the output has the
    series along axis 0, series ``b`` of the output depending only on series ``b`` of the
    inputs (as for a ``vmap``-ed function). Where :func:`mesh` gives a mesh for ``B`` series,
    ``fn`` runs under :func:`jax.shard_map` on blocks of :math:`\lceil B/D \rceil` series per
    device (the batched arguments padded to :math:`D \lceil B/D \rceil` series by repeating the
    last one) and the padding is dropped from the outputs; otherwise this is ``fn(*args)``.
    Call it inside a traced (``jit``) function: the choice is made when tracing.
    """
    in_axes = tuple(in_axes)
    m = mesh(batch_size) if any(ax is not None for ax in in_axes) else None
    if m is None:
        return fn(*args)
    n = m.devices.size
    padded_size = -(-batch_size // n) * n
    padded, specs = [], []
    for arg, ax in zip(args, in_axes):
        if ax is None:
            padded.append(arg)
            specs.append(jax.tree_util.tree_map(lambda _: PartitionSpec(), arg))
            continue
        padded.append(jax.tree_util.tree_map(lambda a, ax=ax: _pad(a, ax, padded_size), arg))
        spec = PartitionSpec(*([None] * ax), AXIS)
        specs.append(jax.tree_util.tree_map(lambda _, spec=spec: spec, arg))
    out = jax.shard_map(fn, mesh=m, in_specs=tuple(specs), out_specs=PartitionSpec(AXIS),
                        check_vma=False)(*padded)
    if padded_size == batch_size:
        return out
    return jax.tree_util.tree_map(lambda a: a[:batch_size], out)
