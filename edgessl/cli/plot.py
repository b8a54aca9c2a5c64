"""``edgessl plot RUN``: training curves (loss, lr, online kNN, embedding std) as PNGs in RUN/plots/."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "plot",
        help="plot a run's loss, lr and online monitor curves (PNG)",
        description="Write RUN/plots/loss.png (loss and the method's diagnostics), lr.png and, for a "
        "monitored "
        "run, monitor.png (online kNN, embedding std, effective rank), from RUN/metrics.jsonl alone: a "
        "finished, killed or still running run can be plotted. Lines that are not step records are skipped.",
    )
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
