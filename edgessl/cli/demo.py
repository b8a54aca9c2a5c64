"""``edgessl demo``: pretrain, evaluate, profile, export and explain on the built-in dataset."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from edgessl.demo import DemoOptions  # the defaults live there, once

    d = DemoOptions()
    parser = subparsers.add_parser(
        "demo",
        help="the whole pipeline on the built-in dataset in a few CPU minutes",
        description="Pretrain a small encoder, compare it with random initialisation (kNN, linear), "
        "profile it, export it to ONNX (fp32 + int8, verified), evaluate it on ONNX Runtime alone and draw "
        "a retrieval grid.",
    )
    parser.add_argument(
        "--data",
        default=d.data,
        help="dataset: shapes10 (built in), stl10, cifar10, cifar100, an image folder, hf:PATH or "
        "wds:PATTERN",
    )
    parser.add_argument(
        "--data-root", default=d.data_root, help="where the dataset's files are (stl10, cifar10, cifar100)"
    )
    parser.add_argument("--method", default=d.method, help=f"pretraining method (default: {d.method})")
    parser.add_argument(
        "--backbone", default=d.backbone, help=f"encoder (default: {d.backbone}, the study's x0.5)"
    )
    parser.add_argument(
        "--image-size", type=int, default=d.image_size, help=f"image side in pixels (default: {d.image_size})"
    )
    parser.add_argument(
        "--minutes",
        type=float,
        default=d.minutes,
        help="a safety limit on pretraining in minutes: the demo trains --epochs whole epochs, and says so "
        f"if this limit stops it first (default: {d.minutes:g})",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=d.epochs,
        help=f"pretraining epochs: the same seed gives the same numbers on any load (default: {d.epochs})",
    )
    parser.add_argument(
        "--knn-k", type=int, default=d.knn_k, help=f"neighbours for the kNN evaluations (default: {d.knn_k})"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=d.batch_size,
        help=f"pretraining batch size (default: {d.batch_size})",
    )
    parser.add_argument("--out", type=Path, default=d.out, help=f"run folder root (default: {d.out})")
    parser.add_argument(
        "--export-dir", type=Path, default=d.export_dir, help=f"ONNX output folder (default: {d.export_dir}/)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from rich.table import Table

    from edgessl.cli.console import make_console
    from edgessl.demo import DemoOptions, run_demo, summary_rows

    console = make_console()
    options = DemoOptions(
        data=args.data,
        data_root=args.data_root,
        method=args.method,
        backbone=args.backbone,
        image_size=args.image_size,
        minutes=args.minutes,
        epochs=args.epochs,
        knn_k=args.knn_k,
        batch_size=args.batch_size,
        out=args.out,
        export_dir=args.export_dir,
    )
    state = run_demo(options, console)
    table = Table(title="edgessl demo: summary", show_header=False)
    table.add_column("what", style="bold", no_wrap=True)
    table.add_column("result", overflow="fold")
    for what, result in summary_rows(state):
        table.add_row(what, str(result))
    console.print(table)
    return 0
