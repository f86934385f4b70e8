"""Forecast accuracy of the deep forecasters on the US employment panel, next to seasonal naive,
statsmodels ETS and neuralforecast's NHITS and DeepAR, on the CPU.

One process, one split: fpp3's ``us_employment`` panel as bundled in probssm
(:func:`probssm.datasets.load_us_employment`: monthly, January 2000 - September 2019), without
the one series that ends in December 2017 (147 series); the last 12 months held out, every model
fitted on the rest and asked for a 12-step forecast.

Models
------
* probssm ``MambaForecaster`` with each backbone (``mamba``, ``mamba2``, ``s4d``, ``lru``;
  lookback 36, d_model 32, two layers, Normal head, RevIN, calendar features, early stopping on
  the last 12 training months) and ``DeepStateForecaster`` (LRU backbone);
* seasonal naive (the value 12 months earlier; Gaussian intervals from the in-sample seasonal
  differences);
* statsmodels ``ETSModel`` per series: additive error, additive damped trend, additive
  seasonality of period 12, fitted by maximum likelihood (series starting later are fitted on
  their observed span); Gaussian predictive intervals from ``get_prediction``;
* neuralforecast ``NHITS`` and ``DeepAR`` (``--peers``, when neuralforecast is installed):
  their defaults except ``h=12``, ``input_size=36``, ``scaler_type="robust"`` (the default
  ``"identity"`` leaves levels of 20 to 150 000 unscaled) and, for NHITS, a Normal
  ``DistributionLoss`` so that it has intervals.

Metrics (:mod:`probssm.metrics`), averaged over series: MASE with the in-sample seasonal-naive
scale (``sp=12``), CRPS divided by the series' mean absolute seasonal difference (scale-free,
comparable across series; from 500 sample paths for the deep models and DeepAR, in closed form
for the Gaussian forecasts), and the empirical coverage of the 90 % central intervals over all
held-out values. ``fit s`` is the wall time of ``fit`` on the device given by ``--device``
(default: this machine's CPU, one intra-op thread).

Usage::

    python benchmarks/deep_accuracy.py                  # table on stdout
    python benchmarks/deep_accuracy.py --peers --json   # with NHITS, DeepAR; results/deep_accuracy_cpu.json
    python benchmarks/deep_accuracy.py --quick          # two backbones, short training, 30 series for ETS
    python benchmarks/deep_accuracy.py --device cuda --deep-only --json $OUT/deep_accuracy_h100.json
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
H, SP, DROP = 12, 12, "CEU4245210001"


def panel():
    from probssm.datasets import load_us_employment

    y = load_us_employment().drop(columns=DROP)
    return y.iloc[:-H], y.iloc[-H:]


def scores(name, train, test, point, lower, upper, crps, seconds):
    """One row: mean MASE, mean scaled CRPS, coverage of [lower, upper], fit time."""
    from probssm import metrics

    mase, scaled = [], []
    for j, c in enumerate(train.columns):
        history = train[c].dropna().to_numpy()
        mase.append(metrics.mase(test[c].to_numpy(), point[:, j], history, sp=SP))
        scaled.append(crps[j] / np.mean(np.abs(history[SP:] - history[:-SP])))
    coverage = metrics.interval_coverage(test.to_numpy(), lower, upper)
    return {"model": name, "MASE": float(np.mean(mase)), "CRPS (scaled)": float(np.mean(scaled)),
            "coverage 90%": float(coverage), "fit s": float(seconds)}


def crps_gaussian_per_series(test, mean, sd):
    from probssm import metrics

    return [metrics.crps_gaussian(test.iloc[:, j].to_numpy(), mean[:, j], sd[:, j]) for j in range(test.shape[1])]


def crps_samples_per_series(test, draws):
    """``draws`` ``(n, H, B)``."""
    from probssm import metrics

    return [metrics.crps_samples(test.iloc[:, j].to_numpy(), draws[:, :, j]) for j in range(test.shape[1])]


def seasonal_naive(train, test):
    start = time.perf_counter()
    point = train.iloc[-SP:].to_numpy()
    sd = np.nanstd(train.diff(SP).to_numpy(), axis=0)[None, :].repeat(H, 0)
    seconds = time.perf_counter() - start
    z = 1.6448536269514722
    return scores("seasonal naive", train, test, point, point - z * sd, point + z * sd,
                  crps_gaussian_per_series(test, point, sd), seconds)


def ets(train, test, n_series=None):
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    cols = list(train.columns[:n_series]) if n_series else list(train.columns)
    point, lower, upper, sds = [], [], [], []
    start = time.perf_counter()
    for c in cols:
        y = train[c].dropna()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = ETSModel(y.to_timestamp(), error="add", trend="add", damped_trend=True, seasonal="add",
                           seasonal_periods=SP).fit(disp=False)
            frame = res.get_prediction(start=len(y), end=len(y) + H - 1).summary_frame(alpha=0.1)
        point.append(frame["mean"].to_numpy())
        lower.append(frame["pi_lower"].to_numpy())
        upper.append(frame["pi_upper"].to_numpy())
        sds.append((upper[-1] - lower[-1]) / (2 * 1.6448536269514722))
    seconds = time.perf_counter() - start
    point, lower, upper, sd = (np.stack(a, 1) for a in (point, lower, upper, sds))
    return scores("statsmodels ETS (A,Ad,A)", train[cols], test[cols], point, lower, upper,
                  crps_gaussian_per_series(test[cols], point, sd), seconds)


def probssm_model(name, est, train, test):
    start = time.perf_counter()
    est.set_config(progress=False).fit(train)
    seconds = time.perf_counter() - start
    point = est.predict(H).to_numpy()
    iv = est.predict_interval(H, coverage=0.9)
    lower = np.stack([iv[(c, 0.9, "lower")] for c in train.columns], 1)
    upper = np.stack([iv[(c, 0.9, "upper")] for c in train.columns], 1)
    draws = est.sample(H, 500, random_state=0).to_numpy().reshape(500, H, -1)
    return scores(name, train, test, point, lower, upper, crps_samples_per_series(test, draws), seconds)


def neuralforecast_models(train, test, quick):
    from neuralforecast import NeuralForecast
    from neuralforecast.losses.pytorch import DistributionLoss
    from neuralforecast.models import NHITS, DeepAR

    long = train.to_timestamp(how="end").rename_axis("ds").reset_index().melt(
        id_vars="ds", var_name="unique_id", value_name="y").dropna()
    long["ds"] = long["ds"].dt.normalize() + pd.offsets.MonthEnd(0)
    steps = 100 if quick else 1000
    rows = []
    for label, model in [
        ("neuralforecast NHITS", NHITS(h=H, input_size=36, scaler_type="robust", max_steps=steps,
                                       loss=DistributionLoss("Normal", level=[90]), random_seed=0,
                                       enable_progress_bar=False, logger=False)),
        ("neuralforecast DeepAR", DeepAR(h=H, input_size=36, scaler_type="robust", max_steps=steps,
                                         random_seed=0, enable_progress_bar=False, logger=False)),
    ]:
        nf = NeuralForecast(models=[model], freq="ME")
        start = time.perf_counter()
        nf.fit(long)
        seconds = time.perf_counter() - start
        fc = nf.predict().set_index(["unique_id", "ds"])
        name = type(model).__name__
        wide = {k: fc[col].unstack(0)[list(train.columns)].to_numpy()
                for k, col in (("point", name), ("lo", f"{name}-lo-90"), ("hi", f"{name}-hi-90"))}
        sd = (wide["hi"] - wide["lo"]) / (2 * 1.6448536269514722)
        rows.append(scores(label, train, test, wide["point"], wide["lo"], wide["hi"],
                           crps_gaussian_per_series(test, wide["point"], sd), seconds))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--peers", action="store_true", help="also neuralforecast NHITS and DeepAR")
    parser.add_argument("--device", default="cpu", help="where the deep models train: cpu or cuda")
    parser.add_argument("--deep-only", action="store_true", help="leave out seasonal naive and ETS")
    parser.add_argument("--json", nargs="?", const=str(HERE / "results" / "deep_accuracy_cpu.json"))
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from machine import table_text

    from probssm.deep import DeepStateForecaster, MambaForecaster

    device = torch.device(args.device)
    device_name = (torch.cuda.get_device_name(device) if device.type == "cuda"
                   else f"CPU: {platform.processor() or platform.machine()}, torch threads 1")
    train, test = panel()
    rows = [] if args.deep_only else [seasonal_naive(train, test), ets(train, test, 30 if args.quick else None)]
    backbones = ("mamba2", "lru") if args.quick else ("mamba", "mamba2", "s4d", "lru")
    epochs = dict(max_epochs=3, batches_per_epoch=10) if args.quick else dict(max_epochs=10, batches_per_epoch=30)
    for backbone in backbones:
        est = MambaForecaster(lookback=36, horizon=H, backbone=backbone, d_model=32, n_layers=2, d_state=16,
                              random_state=0, **epochs).set_config(device=args.device)
        rows.append(probssm_model(f"probssm MambaForecaster ({backbone})", est, train, test))
        print(rows[-1], file=sys.stderr, flush=True)
    rows.append(probssm_model("probssm DeepStateForecaster (lru)",
                              DeepStateForecaster(horizon=H, random_state=0,
                                                  max_epochs=3 if args.quick else 15
                                                  ).set_config(device=args.device), train, test))
    if args.peers:
        rows += neuralforecast_models(train, test, args.quick)
    table = pd.DataFrame(rows).set_index("model")
    print(f"US employment, {train.shape[1]} series, {len(train)} training months, {H} held out; "
          f"{device_name}")
    print(table_text(table))
    if args.json:
        import probssm

        out = {"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
               "command": " ".join(sys.argv), "python": platform.python_version(),
               "probssm": probssm.__version__, "torch": torch.__version__,
               "machine": platform.platform(), "device": device_name, "quick": args.quick, "rows": rows}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
