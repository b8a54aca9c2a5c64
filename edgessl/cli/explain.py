"""``edgessl explain RUN_OR_CHECKPOINT --data D``: saliency maps, kNN retrieval grids, confusion matrix."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "explain",
        help="saliency maps, kNN retrieval grids and a confusion matrix of a representation (PNG)",
        description="Explain a trained representation (a run folder means its last checkpoint by epoch): "
        "vanilla-gradient saliency of a linear head for the best true positives and worst false "
        "negatives per class, nearest neighbours by Euclidean distance, and a confusion matrix.",
    )
    parser.add_argument("target", metavar="RUN_OR_CHECKPOINT", help="a run folder or a checkpoint file")
    parser.add_argument(
        "--data",
        required=True,
        help="dataset name, image folder, hf:PATH or wds:PATTERN with labelled train/test splits",
    )
    parser.add_argument("--data-root", help="where the dataset's files are")
    parser.add_argument(
        "--image-size", type=int, help="resize images (default: the checkpoint's training size)"
    )
    parser.add_argument(
        "--kind", nargs="+", default=["all"], help="saliency, retrieval, confusion or all (default)"
    )
    parser.add_argument("--epoch", type=int, help="explain the checkpoint of this epoch (default: the last)")
    parser.add_argument("--out", help="output folder (default: RUN/explain/<checkpoint>)")
    parser.add_argument(
        "--per-class", type=int, default=2, help="saliency examples of each kind per class (default 2)"
    )
    parser.add_argument(
        "--queries-per-class", type=int, default=1, help="retrieval queries per class (default 1)"
    )
    parser.add_argument(
        "--neighbours", type=int, default=8, help="neighbours per retrieval query (default 8)"
    )
    parser.add_argument("--device", help="e.g. cpu or cuda:0 (default: CUDA when available)")
    parser.set_defaults(handler=run)


MAX_PICTURES = 32  # per row or class of a picture grid (D20: 100,000 neighbours drew for minutes)


def run(args: argparse.Namespace) -> int:
    from rich.markup import escape

    from edgessl.cli.console import make_console
    from edgessl.errors import ConfigError
    from edgessl.explain.report import ExplainOptions, explain

    for option in ("per_class", "queries_per_class", "neighbours"):
        if not 1 <= getattr(args, option) <= MAX_PICTURES:
            raise ConfigError(
                f"--{option.replace('_', '-')} must be between 1 and {MAX_PICTURES} (a row of more pictures "
                f"is unreadable, and slow to draw), got {getattr(args, option)}"
            )
    options = ExplainOptions(
        per_class=args.per_class,
        queries_per_class=args.queries_per_class,
        neighbours=args.neighbours,
        device=args.device,
    )
    console = make_console()
    with console.status("explaining..."):
        paths = explain(
            args.target,
            args.data,
            kinds=args.kind,
            out=args.out,
            data_root=args.data_root,
            image_size=args.image_size,
            epoch=args.epoch,
            options=options,
        )
    for path in paths:
        console.print(f"wrote {escape(str(path))}")
    return 0
