r"""Train a :class:`~probssm.deep.MambaForecaster` from the command line, on one process or
data-parallel over the processes of a ``torchrun`` launch.

Usage::

    # all local GPUs (NCCL), one process each
    torchrun --standalone --nproc_per_node=gpu -m probssm.deep.train us_employment \
        --lookback 36 --horizon 12 --epochs 20 --output mamba_employment

    # 4 CPU processes (gloo)
    torchrun --standalone --nproc_per_node=4 -m probssm.deep.train sales.csv \
        --time-column date --id-column store --output mamba_sales

    # one process (no torchrun)
    python -m probssm.deep.train sales.parquet --time-column date --output mamba_sales

``DATA`` is a CSV (also compressed) or Parquet file, wide (a time column and one column per
series) or long (``--id-column``: one row per series and time), read as by
``python -m probssm forecast``, or the name of a bundled data set (``us_employment``,
``airpassengers``, ``nile``). Under ``torchrun`` the forecaster trains with
``set_config(strategy="ddp")`` (:mod:`probssm.deep.distributed`): every process reads the data,
and the loss curve is that of one process with the same global batch (``--batch-size``
windows). Process 0 writes the checkpoint (``--checkpoint-dir``) and saves the fitted
estimator to ``--output`` with :meth:`~probssm.base.BaseForecaster.save`, in the form a
single-process fit has (execution setting ``strategy="single"``): read it back with
``probssm.load``.
"""

from __future__ import annotations

import argparse
import sys
import time

__all__ = ["DATASETS", "main", "parser", "read_data"]

DATASETS = ("us_employment", "airpassengers", "nile")
"""Bundled data sets ``DATA`` may name (:mod:`probssm.datasets`)."""


def parser() -> argparse.ArgumentParser:
    """The command's argument parser."""
    from ..cli import positive_int
    from .forecaster import MODES
    from .heads import HEADS
    from .network import BACKBONES

    p = argparse.ArgumentParser(
        prog="python -m probssm.deep.train",
        description="Train a MambaForecaster on the series of a file or a bundled data set and save "
                    "it; under torchrun, data-parallel over the launched processes (DDP).")
    p.add_argument("data", help="a .csv (also compressed) or .parquet file, or a bundled data set: "
                                + ", ".join(DATASETS))
    p.add_argument("--time-column", help="file: the column of timestamps")
    p.add_argument("--id-column", help="file: the series id column of a long table (without it the "
                                       "table is wide)")
    p.add_argument("--value-column", nargs="+", metavar="COLUMN",
                   help="file: the value column of a long table, or the series columns of a wide one")
    p.add_argument("--freq", help="file: the time grid as a pandas frequency (default: inferred)")
    p.add_argument("--output", required=True, help="folder the fitted estimator is saved to")
    p.add_argument("--backbone", choices=list(BACKBONES), default="mamba2")
    p.add_argument("--mode", choices=list(MODES), default="channel")
    p.add_argument("--likelihood", choices=sorted(HEADS), default="normal")
    p.add_argument("--lookback", type=positive_int, default=36)
    p.add_argument("--horizon", type=positive_int, default=12)
    p.add_argument("--epochs", type=positive_int, default=20, help="max_epochs (default: 20)")
    p.add_argument("--batches-per-epoch", type=positive_int, default=30)
    p.add_argument("--batch-size", type=positive_int, default=128,
                   help="windows per global batch, shared among the processes (default: 128)")
    p.add_argument("--d-model", type=positive_int, default=32)
    p.add_argument("--n-layers", type=positive_int, default=2)
    p.add_argument("--d-state", type=positive_int, default=16)
    p.add_argument("--learning-rate", type=float, default=3e-3)
    p.add_argument("--patience", type=positive_int, default=5)
    p.add_argument("--no-validation", action="store_true",
                   help="train on all steps (no early stopping)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--seed", type=int, default=0, help="random_state (default: 0)")
    p.add_argument("--device", default="auto",
                   help="auto (CUDA when available: cuda:LOCAL_RANK under torchrun), cpu, cuda, ...")
    p.add_argument("--strategy", choices=["auto", "single", "ddp"], default="auto",
                   help="auto: ddp under torchrun, single otherwise")
    p.add_argument("--checkpoint-dir", help="folder process 0 writes the best weights to")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def read_data(name: str, time_column=None, id_column=None, value_columns=None, freq=None):
    """The series of ``name``, a bundled data set (:data:`DATASETS`) or a file (read as by
    ``python -m probssm forecast``, :mod:`probssm.cli_data`), as a wide frame ``(T, B)``."""
    from .. import datasets

    if name in DATASETS:
        data = getattr(datasets, f"load_{name}")()
        return data.to_frame() if hasattr(data, "to_frame") else data
    from ..cli_data import InputError, read_table, series_frame

    if time_column is None:
        raise InputError(f"{name}: --time-column is required for a file (bundled data sets: "
                         f"{', '.join(DATASETS)})")
    return series_frame(read_table(name), time_column, id_column=id_column,
                        value_columns=value_columns, freq=freq, source=str(name))


def main(argv=None) -> int:
    """Run the command with ``argv`` (default ``sys.argv[1:]``); returns the exit code (2 for
    problems with the input)."""
    args = parser().parse_args(argv)
    from ..cli_data import InputError
    from . import distributed
    from .forecaster import MambaForecaster

    strategy = args.strategy
    if strategy == "auto":
        strategy = "ddp" if distributed.launched() else "single"
    try:
        wide = read_data(args.data, args.time_column, args.id_column, args.value_column, args.freq)
    except InputError as err:
        print(f"probssm.deep.train: error: {err}", file=sys.stderr)
        return 2
    est = MambaForecaster(
        lookback=args.lookback, horizon=args.horizon, backbone=args.backbone, mode=args.mode,
        likelihood=args.likelihood, d_model=args.d_model, n_layers=args.n_layers,
        d_state=args.d_state, max_epochs=args.epochs, batches_per_epoch=args.batches_per_epoch,
        batch_size=args.batch_size, learning_rate=args.learning_rate, patience=args.patience,
        validation=not args.no_validation, dtype=args.dtype, random_state=args.seed)
    est.set_config(strategy=strategy, device=args.device, progress=not args.quiet,
                   checkpoint_dir=args.checkpoint_dir)
    start = time.perf_counter()
    est.fit(wide)
    group = distributed.setup(args.device) if strategy == "ddp" else None
    if group is None or group.main:
        est.set_config(strategy="single")  # saved in the form of a single-process fit
        est.save(args.output)
        processes = 1 if group is None else group.world_size
        last = est.history_.iloc[est.best_epoch_]
        print(f"MambaForecaster ({args.backbone}): {wide.shape[1]} series, {processes} process(es), "
              f"{len(est.history_)} epochs (best {est.best_epoch_}: train {last['train_loss']:.4f}, "
              f"val {last['val_loss']:.4f}) in {time.perf_counter() - start:.1f} s; saved to "
              f"{args.output}")
    if group is not None:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
