"""``edgessl plot RUN``: training curves (loss, lr, online kNN, embedding std) as PNGs in RUN/plots/."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("plot", help="plot a run's loss, lr and online monitor curves (PNG)")
    parser.add_argument(
        "run", help="a run folder written by 'edgessl train' (finished, killed or still running)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from edgessl.cli.console import make_console
    from edgessl.training.plots import plot_run

    console = make_console()
    for path in plot_run(args.run):
        console.print(f"wrote {path}", markup=False, highlight=False)
    return 0
