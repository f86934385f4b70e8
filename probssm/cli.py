"""Command line: ``python -m probssm <command>``."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from . import cli_forecast

NILE_UNITS = r"annual flow volume ($10^8\ \mathrm{m}^3$)"


def _integer_at_least(minimum: int, kind: str):
    """An argparse type: an integer >= ``minimum``, else an error saying it must be a ``kind``
    integer (argparse turns it into a usage message, exit 2)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a {kind} integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be a {kind} integer, got {value}")
        return value

    parse.__doc__ = f"argparse type: an integer >= {minimum}."
    return parse


positive_int = _integer_at_least(1, "positive")
non_negative_int = _integer_at_least(0, "non-negative")


def forecast_title(horizon: int) -> str:
    """The demo figure's title, for ``horizon`` (>= 1) forecast years."""
    span = "the next year" if horizon == 1 else f"the next {horizon} years"
    return f"Nile flow: local level fit and forecast of {span} (80 % and 95 % bands)"


def demo(output, horizon: int = 10, initialization: str = "exact_diffuse"):
    """Fit a local level model to the Nile data, forecast ``horizon`` years, and write
    ``forecast.csv`` (one row per forecast year: mean, std and the 80 % / 95 % bounds) and
    ``forecast.png`` into the folder ``output``. Returns the (closed) matplotlib Figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .datasets import load_nile
    from .structural import LocalLevel

    start = time.perf_counter()
    out = Path(output)
    y = load_nile()
    model = LocalLevel(initialization=initialization).fit(y)
    print("Nile river flow at Aswan, 1871-1970: local level model\n")
    print(model.summary())
    table = _forecast_table(model, horizon)
    ax = model.plot(fh=horizon, coverage=(0.8, 0.95))
    ax.set_title(forecast_title(horizon))
    ax.set_xlabel("year")
    ax.set_ylabel(NILE_UNITS)
    ax.figure.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "forecast.csv", float_format="%.4f")
    ax.figure.savefig(out / "forecast.png", dpi=120)
    plt.close(ax.figure)
    print(f"\n{horizon}-step forecast:\n{table.round(2).to_string()}")
    print(f"\nwrote {out / 'forecast.csv'} and {out / 'forecast.png'} "
          f"in {time.perf_counter() - start:.1f} s")
    return ax.figure


def _forecast_table(model, horizon: int):
    """Mean, standard deviation and 80 % / 95 % bounds, one row per forecast year."""
    import pandas as pd

    table = pd.concat(
        {"mean": model.predict(horizon), "std": model.predict_var(horizon)["volume"] ** 0.5}, axis=1
    )
    intervals = model.predict_interval(horizon, coverage=[0.8, 0.95])
    for (_, c, side), col in intervals.items():
        table[f"{side}_{int(round(c * 100))}"] = col
    table.index.name = "year"
    return table


def main(argv=None) -> int:
    """Run ``probssm <command>`` with the arguments ``argv`` (default: ``sys.argv[1:]``);
    returns the exit code. ``demo`` fits the Nile data; ``forecast`` fits the user's file
    (:mod:`probssm.cli_forecast`)."""
    parser = argparse.ArgumentParser(prog="probssm", description="probabilistic state-space models")
    sub = parser.add_subparsers(dest="command", metavar="command")
    parser_demo = sub.add_parser(
        "demo", help="fit a local level model to the Nile data; write forecast.csv and forecast.png"
    )
    parser_demo.add_argument("--output", default="output", help="output folder (default: output)")
    parser_demo.add_argument("--horizon", type=positive_int, default=10,
                             help="forecast years, a positive integer (default: 10)")
    parser_demo.add_argument("--initialization", default="exact_diffuse",
                             choices=["exact_diffuse", "approximate_diffuse"])
    cli_forecast.add_parser(sub)
    args = parser.parse_args(argv)  # bad arguments exit here (code 2), before any work
    if args.command is None:
        parser.print_help()
        return 0
    if args.command == "forecast":
        return cli_forecast.run(args)
    demo(args.output, args.horizon, args.initialization)
    return 0
