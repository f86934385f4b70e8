"""Data-parallel training (DDP, gloo) across 2 CPU processes equals one process.

``torchrun -m probssm.deep.train`` trains a tiny MambaForecaster on a few real series in two
processes; the same command without torchrun trains it in this one. With the same seed and the
same global batch the averaged gradients equal the single-process gradient up to the order of
float32 sums, so the loss curves agree to 1e-5 relative and the forecasts to 1e-4 relative
(measured: about 1e-7 and 1e-6), and the estimator and checkpoint process 0 saved have the form
of a single-process fit's.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import probssm
from probssm.datasets import load_us_employment
from probssm.deep import MambaForecaster, train
from probssm.deep.distributed import DataParallel
from probssm.deep.training import load_weights

LOSS_RTOL = 1e-5
FORECAST_RTOL = 1e-4


def _arguments(csv, mode):
    # 15 windows a global batch: 8 and 7 a process; NaN in the data: unequal target counts
    return [str(csv), "--time-column", "month", "--lookback", "12", "--horizon", "6",
            "--epochs", "3", "--batches-per-epoch", "4", "--batch-size", "15", "--d-model", "8",
            "--n-layers", "1", "--d-state", "4", "--mode", mode, "--seed", "3", "--quiet"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp")
    wide = load_us_employment().iloc[-60:, :5].copy()
    wide.iloc[10:14, 1] = np.nan
    wide.iloc[-3, 3] = np.nan
    csv = folder / "employment.csv"
    wide.rename_axis("month").to_csv(csv)
    return folder, csv


def _torchrun(folder, args, name):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "probssm.deep.train", *args, "--output", str(folder / name),
           "--checkpoint-dir", str(folder / f"{name}_checkpoint")]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, cwd=folder,
                         check=False)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    assert "2 process(es)" in run.stdout
    return probssm.load(folder / name)


@pytest.mark.parametrize("mode", ["channel", "variate"])
def test_ddp_on_two_processes_equals_one(data, mode):
    folder, csv = data
    args = _arguments(csv, mode)
    ddp = _torchrun(folder, args, f"ddp_{mode}")
    assert train.main([*args, "--output", str(folder / f"single_{mode}"), "--checkpoint-dir",
                       str(folder / f"single_{mode}_checkpoint")]) == 0
    single = probssm.load(folder / f"single_{mode}")

    # the loss curve of one process
    assert len(ddp.history_) == len(single.history_) == 3
    for column in ("train_loss", "val_loss"):
        np.testing.assert_allclose(ddp.history_[column], single.history_[column], rtol=LOSS_RTOL)
    assert ddp.best_epoch_ == single.best_epoch_

    # a fitted estimator of the same form, forecasting alike
    assert type(ddp) is MambaForecaster and ddp.get_params() == single.get_params()
    settings = lambda est: {k: v for k, v in est.get_config().items() if k != "checkpoint_dir"}
    assert settings(ddp) == settings(single) and ddp.get_config()["strategy"] == "single"
    assert sorted(p.name for p in (folder / f"ddp_{mode}").iterdir()) == \
        sorted(p.name for p in (folder / f"single_{mode}").iterdir())
    a, b = ddp.predict(6), single.predict(6)
    assert a.shape == b.shape and (a.index == b.index).all() and list(a.columns) == list(b.columns)
    np.testing.assert_allclose(a.values, b.values, rtol=FORECAST_RTOL)
    q = ddp.predict_quantiles(6, alpha=(0.1, 0.9)).values
    np.testing.assert_allclose(q, single.predict_quantiles(6, alpha=(0.1, 0.9)).values,
                               rtol=FORECAST_RTOL)

    # the checkpoint, written by process 0 only, holds the same tensors
    ours = load_weights(folder / f"ddp_{mode}_checkpoint" / "best_weights.pt")
    theirs = load_weights(folder / f"single_{mode}_checkpoint" / "best_weights.pt")
    assert ours.keys() == theirs.keys()
    for k in ours:
        assert ours[k].shape == theirs[k].shape and ours[k].dtype == theirs[k].dtype
        np.testing.assert_allclose(ours[k].numpy(), theirs[k].numpy(), rtol=1e-4, atol=1e-6)


DEEPSTATE = """
import json, os, sys
import numpy as np
from probssm.datasets import load_us_employment
from probssm.deep import DeepStateForecaster
y = load_us_employment().iloc[-48:, :6].copy()
y.iloc[5:8, 2] = np.nan
est = DeepStateForecaster(horizon=6, max_epochs=3, batches_per_epoch=3, batch_size=5, d_model=8,
                          n_layers=1, d_state=4, dtype="float64", random_state=1)
est.set_config(progress=False, strategy=sys.argv[1]).fit(y)
if int(os.environ.get("RANK", 0)) == 0:
    print(json.dumps({"history": est.history_[["train_loss", "val_loss"]].values.tolist(),
                      "forecast": est.predict(3).values.tolist()}))
"""


def test_deepstate_ddp_equals_one_process(tmp_path):
    """DeepStateForecaster's loss averages over observed values (of the held-out steps in
    validation): the same weighting. In float64 (its float32 validation loss is a difference of
    two log-likelihoods of whole series, which cancels to ~1e-4 relative whatever the order of
    the sums) the curves agree to 1e-10."""
    script = tmp_path / "deepstate_ddp.py"
    script.write_text(DEEPSTATE)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    runs = {}
    for strategy, launcher in (("single", []), ("ddp", ["-m", "torch.distributed.run", "--standalone",
                                                         "--nproc_per_node=2"])):
        run = subprocess.run([sys.executable, *launcher, str(script), strategy], env=env,
                             capture_output=True, text=True, timeout=240, cwd=tmp_path,
                             check=False)
        assert run.returncode == 0, run.stderr[-4000:]
        runs[strategy] = json.loads(run.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(runs["ddp"]["history"], runs["single"]["history"], rtol=1e-10)
    np.testing.assert_allclose(runs["ddp"]["forecast"], runs["single"]["forecast"], rtol=1e-10)


def test_shares_of_a_global_batch():
    sizes = [DataParallel(r, 3, torch.device("cpu")).bounds(10) for r in range(3)]
    assert sizes == [(0, 4), (4, 7), (7, 10)]
    # fewer rows than processes: every process takes the whole batch
    assert DataParallel(1, 3, torch.device("cpu")).bounds(2) == (0, 2)
    batch = {"a": torch.arange(10), "b": torch.zeros(10, 2)}
    part = DataParallel(2, 3, torch.device("cpu")).shard(batch)
    assert part["a"].tolist() == [7, 8, 9] and part["b"].shape == (3, 2)


def test_ddp_outside_torchrun_says_how_to_launch(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    y = load_us_employment().iloc[-40:, :2]
    est = MambaForecaster(lookback=8, horizon=3, max_epochs=1, batches_per_epoch=1, batch_size=4,
                          d_model=4, n_layers=1, d_state=2, random_state=0)
    with pytest.raises(RuntimeError, match="torchrun"):
        est.set_config(strategy="ddp", progress=False).fit(y)
    with pytest.raises(ValueError, match="strategy"):
        est.set_config(strategy="fsdp").fit(y)


def test_new_modules_are_documented():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "test_docs.py"
    spec = importlib.util.spec_from_file_location("probssm_docs_check", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.check_modules(("probssm.deep.distributed", "probssm.deep.train"))
