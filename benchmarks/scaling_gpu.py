"""Scaling over the local accelerators: sharded batched Kalman filtering (JAX) and data-parallel
training of MambaForecaster (PyTorch DDP), one device against all of them.

JAX part. ``B`` series of a local linear trend model (state dimension 2, ``T`` steps, 5 % of
the observations missing) with per-series observation variances (a batched model field), so
that every method goes through the batched program :mod:`probssm.kalman.sharding` spreads
over the devices. For each of ``--methods`` it times ``kalman.log_likelihood`` and
``kalman.filter`` (``predictions=False``) on all devices (the default; the data placed with
``sharding.series_sharding``) and on one (``jax.default_device``), after a compile and a
warm-up call, as the median of ``--repeats`` calls ending in ``block_until_ready``, and checks
that the two agree (log-likelihoods within 1e-9 relative in float64). Reported: series/s on one
device and on all, their ratio and the parallel efficiency (ratio / devices).

PyTorch part. ``torchrun -m probssm.deep.train`` on the bundled ``us_employment`` panel (148
series) with ``--nproc_per_node`` 1 and then all GPUs (all CPU processes ``--procs`` with gloo
in ``--quick``), weak scaling: each process takes ``--per-device-batch`` windows per step (the
global batch grows with the processes). Throughput = windows per second over the epochs after
the first (which holds compilation and warm-up), from the fitted estimator's ``history_``.
Reported: windows/s on one device and on all, their ratio and efficiency. The gradient
all-reduce per step carries the parameter count times 4 bytes (printed).

Usage::

    python benchmarks/scaling_gpu.py --json benchmarks/results/scaling_gpu.json   # >= 2 GPUs
    python benchmarks/scaling_gpu.py --quick                 # CPU smoke run: 4 JAX host devices,
                                                             # 2 gloo processes
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def jax_part(n_series: int, T: int, methods, repeats: int) -> dict:
    """Series per second of batched filtering on one device and on all of them."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from probssm import kalman
    from probssm.kalman import sharding

    devices = jax.devices()
    out = {"devices": [f"{d.platform}:{d.id} {d.device_kind}" for d in devices],
           "n_devices": len(devices), "n_series": n_series, "T": T, "rows": []}
    if len(devices) < 2:
        out["skipped"] = "one device: nothing to compare"
        return out
    rng = np.random.default_rng(0)
    with jax.enable_x64(True):
        y = np.cumsum(np.cumsum(rng.normal(size=(n_series, T, 1)) * 0.1, axis=1), axis=1)
        y += rng.normal(size=y.shape)
        y[rng.random(y.shape) < 0.05] = np.nan
        F = jnp.array([[1.0, 1.0], [0.0, 1.0]])
        model = kalman.LGSSM(F, jnp.diag(jnp.array([0.1, 0.01])), jnp.array([[1.0, 0.0]]),
                             jnp.asarray(rng.uniform(0.5, 1.5, size=(n_series, 1, 1))),
                             jnp.zeros(2), 1e4 * jnp.eye(2), time_varying=())
        placed = jax.device_put(y, sharding.series_sharding(n_series))
        for method in methods:
            row = {"method": method}
            for what, call in (
                ("log_likelihood", lambda yy, m=method: kalman.log_likelihood(model, yy, method=m)),
                ("filter", lambda yy, m=method: kalman.filter(model, yy, method=m,
                                                              predictions=False).mean),
            ):
                many = jax.block_until_ready(call(placed))  # compile + warm-up
                jax.block_until_ready(call(placed))
                t_all = _median_seconds(lambda c=call: jax.block_until_ready(c(placed)), repeats)
                with jax.default_device(devices[0]):
                    one_y = jax.device_put(y, devices[0])
                    single = jax.block_until_ready(call(one_y))
                    jax.block_until_ready(call(one_y))
                    t_one = _median_seconds(lambda c=call, a=one_y: jax.block_until_ready(c(a)), repeats)
                a, b = np.asarray(many), np.asarray(single)
                diff = float(np.nanmax(np.abs(a - b) / np.maximum(np.abs(b), 1.0)))
                row.update({f"{what}_devices_used": len(many.sharding.device_set),
                            f"{what}_series_per_s_one": n_series / t_one,
                            f"{what}_series_per_s_all": n_series / t_all,
                            f"{what}_ratio": t_one / t_all,
                            f"{what}_efficiency": t_one / t_all / len(devices),
                            f"{what}_max_rel_diff": diff})
                if what == "log_likelihood" and diff > 1e-9:
                    raise AssertionError(f"{method}: sharded log-likelihoods differ by {diff:.2e}")
            out["rows"].append(row)
    return out


def _train(procs: int, per_device_batch: int, args, workdir: Path, cpu: bool) -> dict:
    out_dir = workdir / f"mamba_{procs}"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={procs}", "-m", "probssm.deep.train", "us_employment",
           "--lookback", str(args.lookback), "--horizon", str(args.horizon),
           "--epochs", str(args.epochs), "--batches-per-epoch", str(args.batches_per_epoch),
           "--batch-size", str(per_device_batch * procs), "--d-model", str(args.d_model),
           "--n-layers", str(args.n_layers), "--backbone", args.backbone, "--no-validation",
           "--quiet", "--output", str(out_dir), "--device", "cpu" if cpu else "auto"]
    env = dict(os.environ)
    if cpu:
        env.update(OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT, check=False)
    if run.returncode != 0:
        raise RuntimeError(f"torchrun with {procs} process(es) failed:\n{run.stderr[-3000:]}")
    from probssm import load

    est = load(out_dir)
    seconds = est.history_["seconds"].to_numpy()[1:]  # the first epoch holds the warm-up
    windows = per_device_batch * procs * args.batches_per_epoch * len(seconds)
    n_params = sum(p.numel() for p in est.network_.parameters())
    return {"processes": procs, "global_batch": per_device_batch * procs,
            "windows_per_s": windows / float(seconds.sum()), "parameters": int(n_params),
            "allreduce_bytes_per_step": int(n_params) * 4}


def torch_part(args) -> dict:
    """Training windows per second of MambaForecaster on one process and on all of them."""
    import torch

    cpu = args.quick or not torch.cuda.is_available()
    procs = args.procs if cpu else torch.cuda.device_count()
    names = ([f"cpu (gloo), {procs} processes"] if cpu
             else [torch.cuda.get_device_name(i) for i in range(procs)])
    out = {"devices": names, "backend": "gloo" if cpu else "nccl", "per_device_batch": args.per_device_batch}
    if procs < 2:
        out["skipped"] = "fewer than 2 GPUs"
        return out
    with tempfile.TemporaryDirectory() as tmp:
        one = _train(1, args.per_device_batch, args, Path(tmp), cpu)
        many = _train(procs, args.per_device_batch, args, Path(tmp), cpu)
    out.update(one=one, all=many, ratio=many["windows_per_s"] / one["windows_per_s"],
               efficiency=many["windows_per_s"] / one["windows_per_s"] / procs)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="CPU smoke run: 4 JAX host devices, gloo processes, small sizes")
    p.add_argument("--n-series", type=int, default=None, help="JAX: series (default 16384; quick 64)")
    p.add_argument("--T", type=int, default=None, help="JAX: steps (default 1000; quick 50)")
    p.add_argument("--methods", nargs="+", default=None,
                   help="JAX: inference methods (default: sequential parallel; quick: sequential)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--procs", type=int, default=2, help="quick: gloo processes (default 2)")
    p.add_argument("--per-device-batch", type=int, default=None, help="default 256; quick 16")
    p.add_argument("--epochs", type=int, default=None, help="default 4; quick 2")
    p.add_argument("--batches-per-epoch", type=int, default=None, help="default 50; quick 3")
    p.add_argument("--lookback", type=int, default=36)
    p.add_argument("--horizon", type=int, default=12)
    p.add_argument("--d-model", type=int, default=None, help="default 128; quick 8")
    p.add_argument("--n-layers", type=int, default=2)
    p.add_argument("--backbone", default="mamba2")
    p.add_argument("--skip-jax", action="store_true")
    p.add_argument("--skip-torch", action="store_true")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    quick = args.quick
    defaults = {"n_series": (64, 16384), "T": (50, 1000),
                "methods": (["sequential"], ["sequential", "parallel"]),
                "per_device_batch": (16, 256), "epochs": (2, 4), "batches_per_epoch": (3, 50),
                "d_model": (8, 128)}
    for name, (small, full) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, small if quick else full)
    if quick:
        args.n_layers = min(args.n_layers, 1)
        if "jax" not in sys.modules:  # the device count is fixed when JAX starts
            os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
            os.environ.setdefault("JAX_PLATFORMS", "cpu")
    result = {"quick": quick}
    if not args.skip_jax:
        result["jax"] = jax_part(args.n_series, args.T, args.methods, args.repeats)
        print("JAX batched filtering,", ", ".join(result["jax"]["devices"]))
        for row in result["jax"]["rows"]:
            for what in ("log_likelihood", "filter"):
                print(f"  {row['method']:10s} {what:14s} one {row[f'{what}_series_per_s_one']:10.1f} "
                      f"series/s, all {row[f'{what}_series_per_s_all']:10.1f} series/s "
                      f"({row[f'{what}_devices_used']} devices): x{row[f'{what}_ratio']:.2f}, "
                      f"efficiency {row[f'{what}_efficiency']:.2f}, max rel diff "
                      f"{row[f'{what}_max_rel_diff']:.1e}")
        if "skipped" in result["jax"]:
            print("  skipped:", result["jax"]["skipped"])
    if not args.skip_torch:
        result["torch"] = t = torch_part(args)
        print(f"MambaForecaster DDP training ({t['backend']}),", ", ".join(t["devices"]))
        if "skipped" in t:
            print("  skipped:", t["skipped"])
        else:
            print(f"  1 process {t['one']['windows_per_s']:.1f} windows/s, {t['all']['processes']} "
                  f"processes {t['all']['windows_per_s']:.1f} windows/s: x{t['ratio']:.2f}, "
                  f"efficiency {t['efficiency']:.2f}; all-reduce {t['all']['allreduce_bytes_per_step']} "
                  f"bytes a step ({t['all']['parameters']} parameters)")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
