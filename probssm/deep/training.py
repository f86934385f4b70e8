"""The training loop of the deep forecasters: AdamW, gradient clipping, early stopping on a
validation loss, bf16 autocast on CUDA, checkpoints and a progress bar.

:func:`train` minimises ``loss(network, batch)`` over the batches ``train_batches(epoch)`` yields,
evaluates the mean validation loss after every epoch, keeps the weights of the best epoch and
stops after ``patience`` epochs without improvement (by more than ``1e-4`` relative). On CUDA the
forward and backward passes run under ``torch.autocast(dtype=torch.bfloat16)``; the scans keep
their state in float32 whatever the activations' dtype (:func:`probssm.deep.ops.selective_scan`),
and the weights and optimiser stay float32. On the CPU everything runs in the network's dtype, so
the same seed gives the same weights.

With a ``group`` (``set_config(strategy="ddp")``, :mod:`probssm.deep.distributed`) the same loop
runs in every process of a ``torchrun`` launch, each on its share of every global batch, with
the gradients averaged by ``DistributedDataParallel``; the loss curve is that of one process.

Checkpoints are ``torch.save`` files of tensors only (the best weights), read back with
:func:`load_weights`, which uses ``torch.load(weights_only=True)`` and so refuses files holding
pickled code.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from .distributed import DataParallel

__all__ = [
    "TrainingResult",
    "TrainingSettings",
    "load_weights",
    "resolve_device",
    "save_weights",
    "train",
]


@dataclass(frozen=True)
class TrainingSettings:
    """Optimiser and stopping settings (the forecasters' hyper-parameters of the same names)."""

    max_epochs: int = 30
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    patience: int = 5
    grad_clip: float = 1.0


@dataclass
class TrainingResult:
    """What :func:`train` did.

    Attributes
    ----------
    history : DataFrame
        One row per epoch: ``train_loss``, ``val_loss`` (NaN without validation), ``seconds``.
    best_epoch : int
        The epoch (0-based) whose weights were kept.
    """

    history: pd.DataFrame
    best_epoch: int


def resolve_device(device) -> torch.device:
    """``"auto"`` -> CUDA when available, else the CPU; other values as ``torch.device``."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _to(batch: dict, device) -> dict:
    return {k: v.to(device) for k, v in batch.items()}


def train(network: torch.nn.Module, loss: Callable, train_batches: Callable[[int], Iterable[dict]],
          val_batches: list, settings: TrainingSettings, device: torch.device, *,
          progress: bool = False, checkpoint: Path | None = None,
          group: DataParallel | None = None, weight: Callable[[dict], float] | None = None,
          ) -> TrainingResult:
    """Train ``network`` in place (see the module docstring) and return the history.

    ``loss(network, batch)`` is a scalar tensor; ``train_batches(epoch)`` yields the batches of
    one epoch (dicts of tensors, moved to ``device`` here); ``val_batches`` a list of batches
    (empty: no early stopping, the last epoch's weights are kept). ``checkpoint``: a file that
    receives the best weights whenever they improve.

    ``group``: data-parallel training (:mod:`probssm.deep.distributed`): every process passes
    the same global batches, keeps its share of each (:meth:`~probssm.deep.distributed.DataParallel.shard`),
    and trains the network wrapped in ``DistributedDataParallel``; ``weight(batch)`` is the
    number of terms the loss of a batch averages over (:math:`n_r`), which makes the averaged
    gradient that of the global batch. Only process 0 writes ``checkpoint`` and shows
    progress."""
    network.to(device)
    model = network if group is None else group.wrap(network)
    main = group is None or group.main
    optimiser = torch.optim.AdamW(network.parameters(), lr=settings.learning_rate,
                                  weight_decay=settings.weight_decay)
    bar = _progress_bar(settings.max_epochs, progress and main)
    rows, best, best_epoch, best_state, waited = [], float("inf"), 0, None, 0
    for epoch in range(settings.max_epochs):
        start = time.perf_counter()
        network.train()
        total, count = 0.0, 0
        for batch in train_batches(epoch):
            optimiser.zero_grad(set_to_none=True)
            batch = _to(batch if group is None else group.shard(batch), device)
            with _autocast(device):
                value = loss(model, batch)
            share, finite = 1.0, bool(torch.isfinite(value))
            if group is not None:  # this process's part n_r / N of the global batch's mean
                n = float(weight(batch))
                n_total, bad = group.sum([n, 0.0 if finite else 1.0])
                share, finite = (n / n_total if n_total > 0 else 0.0), bad == 0
            if not finite:
                raise FloatingPointError(f"training loss is {value.item()} at epoch {epoch}; lower "
                                         "learning_rate or check the data's scale")
            (value if group is None else value * (share * group.world_size)).backward()
            torch.nn.utils.clip_grad_norm_(network.parameters(), settings.grad_clip)
            optimiser.step()
            total, count = total + share * float(value.detach()), count + 1
        if group is not None:
            total = group.sum([total])[0]
        val = _evaluate(network, loss, val_batches, device, group, weight)
        rows.append({"train_loss": total / max(count, 1), "val_loss": val,
                     "seconds": time.perf_counter() - start})
        bar.update(1)
        bar.set_postfix(train=f"{rows[-1]['train_loss']:.4f}", val=f"{val:.4f}")
        if not val_batches:
            continue
        if best_state is None or val < best - 1e-4 * abs(best):
            best, best_epoch, waited = val, epoch, 0
            best_state = {k: v.detach().clone() for k, v in network.state_dict().items()}
            if checkpoint is not None and main:
                save_weights(best_state, checkpoint)
        else:
            waited += 1
            if waited >= settings.patience:
                break
    bar.close()
    if best_state is not None:
        network.load_state_dict(best_state)
    else:
        best_epoch = len(rows) - 1
    network.eval()
    return TrainingResult(pd.DataFrame(rows).rename_axis("epoch"), best_epoch)


def _evaluate(network, loss, batches, device, group=None, weight=None) -> float:
    """The mean over ``batches`` of their losses; with a ``group`` each process evaluates its
    share of every batch and the shares' losses are combined by their weights."""
    if not batches:
        return float("nan")
    network.eval()
    values = []
    with torch.no_grad(), _autocast(device):
        for b in batches:
            if group is None:
                values.append(float(loss(network, _to(b, device))))
                continue
            part = _to(group.shard(b), device)
            n = float(weight(part))
            weighted, n_total = group.sum([n * float(loss(network, part)), n])
            values.append(weighted / n_total if n_total > 0 else 0.0)
    return sum(values) / len(values)


class _NoBar:
    def update(self, n):
        pass

    def set_postfix(self, **kw):
        pass

    def close(self):
        pass


def _progress_bar(total: int, show: bool):
    if not show:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="training", unit="epoch", leave=False)


def save_weights(state: dict, path) -> Path:
    """Write a state dict of tensors with ``torch.save`` (tensors only, moved to the CPU)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu() for k, v in state.items()}, path)
    return path


def load_weights(path) -> dict:
    """A state dict written by :func:`save_weights`, read with ``torch.load(weights_only=True)``:
    a file that holds pickled code (anything but tensors and plain containers) raises
    ``ValueError``."""
    import pickle

    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(f"{path}: refusing to load a file that holds pickled code "
                         f"(only tensors are accepted): {str(err).splitlines()[0]}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a dict of tensors, got {type(state).__name__}")
    return state
