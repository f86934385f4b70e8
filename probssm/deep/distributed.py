r"""Data-parallel training of the deep forecasters over processes (``torch.distributed``, DDP).

With ``set_config(strategy="ddp")`` a deep forecaster trains in every process of a
``torch.distributed`` group started by ``torchrun`` (one process per GPU with NCCL, or CPU
processes with gloo). Every process reads the same data, builds the same network from the same
seed and draws the same random *global* batches as a single-process fit; process :math:`r` of
:math:`W` keeps its contiguous share of each global batch (:meth:`DataParallel.shard`). The
network is wrapped in :class:`torch.nn.parallel.DistributedDataParallel`, which averages the
gradients over the processes in each step (one all-reduce of all parameters, bucketed and
overlapped with the backward pass).

**Same global batch, same gradient.** A loss that is a mean over :math:`N` terms (observed
targets, windows) of a global batch, :math:`\ell = \frac1N \sum_i l_i`, splits into the
processes' means :math:`\ell_r` over their :math:`n_r` terms. Each process back-propagates
:math:`W \frac{n_r}{N} \ell_r` (with :math:`N = \sum_r n_r`, one all-reduce of a scalar per
step), and DDP's average of the gradients is then

.. math::

    \frac1W \sum_r \nabla\Big(W \frac{n_r}{N} \ell_r\Big) = \frac1N \sum_r \sum_{i \in r} \nabla l_i
    = \nabla \ell,

the single-process gradient up to the order of floating-point sums. Gradient clipping and
AdamW then act on equal gradients in every process, so the weights stay equal, and the loss
curve is that of one process (reported losses are all-reduced the same way; the validation
loss too, so that early stopping decides alike everywhere).

**What stays local.** The data, the windows and their normalisation, the forward and backward
passes and the optimiser state. Communicated per step: the gradients (parameter count
:math:`\times` 4 bytes in float32) and two scalars; per epoch: three scalars.

Only process 0 writes checkpoints and shows the progress bar; every process ends with the same
fitted estimator, and a script saves it from process 0 (``probssm.deep.train`` does).
A forecaster set to ``strategy="ddp"`` outside a ``torchrun`` launch (no ``RANK`` and
``WORLD_SIZE`` in the environment, and no process group initialised by the caller) raises
``RuntimeError`` naming the command to use.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

__all__ = ["STRATEGIES", "DataParallel", "launched", "setup"]

STRATEGIES = ("single", "ddp")
"""Training strategies of the deep forecasters (``set_config(strategy=...)``): ``"single"`` one
process on one device, ``"ddp"`` data-parallel over the processes of a ``torchrun`` launch."""

_ENV = ("RANK", "WORLD_SIZE")


def launched() -> bool:
    """Whether this process belongs to a distributed launch: a process group is initialised
    already, or ``torchrun``'s ``RANK`` and ``WORLD_SIZE`` are in the environment."""
    return (dist.is_available() and dist.is_initialized()) or all(k in os.environ for k in _ENV)


@dataclass(frozen=True)
class DataParallel:
    """This process's place in a data-parallel group.

    Attributes
    ----------
    rank, world_size : int
        :math:`r` and :math:`W`.
    device : torch.device
        Where this process trains (``cuda:LOCAL_RANK`` with NCCL, the CPU with gloo).
    """

    rank: int
    world_size: int
    device: torch.device

    @property
    def main(self) -> bool:
        """Process 0, the one that writes checkpoints and shows progress."""
        return self.rank == 0

    def bounds(self, n: int) -> tuple[int, int]:
        """This process's rows ``[start, stop)`` of a global batch of ``n`` rows: the ``r``-th of
        ``W`` contiguous blocks (``numpy.array_split`` bounds). With fewer rows than processes
        every process takes all of them (the loss weights keep the gradient exact)."""
        if n < self.world_size:
            return 0, n
        sizes = [len(part) for part in np.array_split(np.arange(n), self.world_size)]
        start = int(sum(sizes[:self.rank]))
        return start, start + sizes[self.rank]

    def shard(self, batch: dict) -> dict:
        """This process's rows (:meth:`bounds`) of a batch, a dict of tensors that share their
        leading (window, origin or series) axis."""
        n = next(iter(batch.values())).shape[0]
        start, stop = self.bounds(n)
        return {k: v[start:stop] for k, v in batch.items()}

    def wrap(self, network: torch.nn.Module) -> torch.nn.Module:
        """``network`` (on :attr:`device`) in ``DistributedDataParallel``."""
        ids = [self.device.index] if self.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(network, device_ids=ids)

    def sum(self, values) -> list[float]:
        """The sums over the processes of ``values`` (floats), in one all-reduce (float64)."""
        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=self._comm_device)
        dist.all_reduce(t)
        return t.tolist()

    @property
    def _comm_device(self) -> torch.device:
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")


def setup(device="auto") -> DataParallel:
    """Join the default process group (initialising it from ``torchrun``'s environment where the
    caller has not: NCCL when the training device is CUDA, gloo otherwise) and return this
    process's :class:`DataParallel`.

    ``device``: ``"auto"`` -> ``cuda:LOCAL_RANK`` where CUDA is available, else the CPU; a
    ``"cuda"`` without index also takes ``LOCAL_RANK``; other values as ``torch.device``.
    """
    if not launched():
        raise RuntimeError(
            "strategy='ddp' trains in the processes of a torchrun launch, and this process was "
            "not started by torchrun (no RANK / WORLD_SIZE in the environment): run "
            "`torchrun --nproc_per_node=N -m probssm.deep.train DATA ...`, or start your own "
            "script with torchrun; set_config(strategy='single') trains in this process")
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        if device.type == "cuda":  # bound to this process's GPU (also for barriers)
            dist.init_process_group("nccl", device_id=device)
        else:
            dist.init_process_group("gloo")
    return DataParallel(dist.get_rank(), dist.get_world_size(), device)
