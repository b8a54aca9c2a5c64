"""``edgessl sweep RUN --data D --protocol P``: every checkpoint of a run, CSV + PNG of accuracy vs epochs.

Reuses the per-checkpoint results ``edgessl eval`` saved with the same settings, so a
stopped sweep continues where it stopped.
"""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from edgessl.cli.eval import add_data_options

    parser = subparsers.add_parser(
        "sweep",
        help="evaluate every checkpoint of a run and plot accuracy against pretraining epochs",
        description="Evaluate every epoch checkpoint of RUN in order; write RUN/eval/sweep_<protocol>.csv "
        "and .png.",
    )
    parser.add_argument("run", metavar="RUN", help="a run folder (with checkpoints/epoch_NNNN.pt)")
    add_data_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import json

    from edgessl.cli.console import make_console
    from edgessl.cli.data_columns import data_with_columns
    from edgessl.cli.eval import options_of, progress_printer, protocols_of, records_table
    from edgessl.evaluation import sweep_run

    result = sweep_run(
        args.run,
        data_with_columns(args.data, args),
        protocols_of(args),
        args.data_root,
        args.image_size,
        args.device,
        on_record=progress_printer(make_console(stderr=True), args.json),
        **options_of(args),
    )
    files = {
        name: {"csv": str(result.csv_files[name]), "png": str(result.png_files[name])}
        for name in result.csv_files
    }
    if args.json:
        print(json.dumps({"records": result.records, "files": files}, indent=2, sort_keys=True))
        return 0
    console = make_console()
    first = result.records[0]
    console.print(
        records_table(
            result.records, f"sweep of {first.get('method')} / {first.get('backbone')} on {args.data}"
        )
    )
    for name, paths in files.items():
        console.print(f"{name}: {paths['csv']}  {paths['png']}", markup=False, highlight=False)
    return 0
