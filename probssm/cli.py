"""Command line: ``python -m probssm <command>``."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def _demo(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from .datasets import load_nile
    from .structural import LocalLevel

    start = time.perf_counter()
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    y = load_nile()
    model = LocalLevel(initialization=args.initialization).fit(y)
    print("Nile river flow at Aswan, 1871-1970: local level model\n")
    print(model.summary())
    fh = args.horizon
    table = pd.concat(
        {"mean": model.predict(fh), "std": model.predict_var(fh)["volume"] ** 0.5}, axis=1
    )
    intervals = model.predict_interval(fh, coverage=[0.8, 0.95])
    for (_, c, side), col in intervals.items():
        table[f"{side}_{int(round(c * 100))}"] = col
    table.index.name = "year"
    table.to_csv(out / "forecast.csv", float_format="%.4f")
    ax = model.plot(fh=fh, coverage=(0.8, 0.95))
    ax.set_title("Nile flow: local level fit and 10-year forecast (80 % and 95 % bands)")
    ax.figure.tight_layout()
    ax.figure.savefig(out / "forecast.png", dpi=120)
    plt.close(ax.figure)
    print(f"\n{fh}-step forecast:\n{table.round(2).to_string()}")
    print(f"\nwrote {out / 'forecast.csv'} and {out / 'forecast.png'} "
          f"in {time.perf_counter() - start:.1f} s")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="probssm", description="probabilistic state-space models")
    sub = parser.add_subparsers(dest="command", metavar="command")
    demo = sub.add_parser(
        "demo", help="fit a local level model to the Nile data; write forecast.csv and forecast.png"
    )
    demo.add_argument("--output", default="output", help="output folder (default: output)")
    demo.add_argument("--horizon", type=int, default=10, help="forecast steps (default: 10)")
    demo.add_argument("--initialization", default="exact_diffuse",
                      choices=["exact_diffuse", "approximate_diffuse"])
    demo.set_defaults(func=_demo)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return args.func(args)
