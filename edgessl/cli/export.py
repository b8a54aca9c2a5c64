"""``edgessl export``: a trained encoder -> verified ONNX (fp32, int8, fixed batch, heads) and ORT format."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a trained encoder to verified ONNX (fp32/int8), ORT format and self-contained classifiers",
        description=(
            "Export a checkpoint (or a run folder's LAST epoch checkpoint) to ONNX with a dynamic batch axis. "
            "Every file is checked (onnx.checker, then ONNX Runtime against PyTorch on real images) before it is "
            "written; past tolerance the export fails and leaves nothing behind. Inputs: float32 RGB in [0, 1], "
            "NCHW; normalisation is inside the graph."
        ),
    )
    parser.add_argument(
        "target",
        metavar="RUN_OR_CHECKPOINT",
        help="a run folder (its last epoch checkpoint is exported) or a checkpoint file",
    )
    parser.add_argument("--out", default="exported", help="output folder (default: exported/)")
    parser.add_argument(
        "--int8",
        action="store_true",
        help="also write a static int8 model (QDQ, per-channel) calibrated on training images; reports kNN accuracy and latency against fp32",
    )
    parser.add_argument(
        "--ort",
        action="store_true",
        help="also convert every file to ORT format (.ort) and write the operator list for a reduced mobile build",
    )
    parser.add_argument(
        "--head",
        default="none",
        help="none (features), knn (labelled bank in the graph) or linear (Adam-trained layer): image batch -> class scores",
    )
    parser.add_argument(
        "--fixed-batch",
        type=int,
        metavar="N",
        help="also write a variant with batch size fixed to N (NNAPI, CoreML)",
    )
    parser.add_argument(
        "--data", help="dataset for verification, calibration and heads (default: the checkpoint's dataset)"
    )
    parser.add_argument(
        "--data-root", help="where a registered dataset's files are (e.g. the folder holding stl10_binary/)"
    )
    parser.add_argument(
        "--k",
        type=int,
        default=200,
        help="neighbours of the kNN head and of the int8 accuracy report (default 200)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rich.table import Table

    from edgessl.cli.console import make_console
    from edgessl.export.pipeline import ExportOptions, export_checkpoint

    options = ExportOptions(
        out_dir=Path(args.out),
        int8=args.int8,
        ort=args.ort,
        head=args.head,
        fixed_batch=args.fixed_batch,
        data=args.data,
        data_root=args.data_root,
        k=args.k,
    )
    result = export_checkpoint(args.target, options)
    console = make_console()
    meta = result.metadata
    console.print(
        f"exported {meta.method} / {meta.backbone}, epoch {meta.epoch} from {result.checkpoint} "
        f"(input float32 RGB [0, 1] {meta.image_size}x{meta.image_size}, features {meta.feature_dim}; exporter: torch.onnx dynamo)"
    )
    files = Table(title="files (each verified on real images before it was written)")
    for column in ("role", "file", "size", "verification"):
        files.add_column(column, overflow="fold")
    for role, path in result.files.items():
        parity = result.parity.get(role)
        check = parity.summary() if parity else ""
        if role in ("knn", "linear") and result.head_agreement is not None:
            check = f"in-graph head = Python classifier on {result.head_agreement:.1%} of images"
        files.add_row(role, str(path), f"{path.stat().st_size / 1e6:.2f} MB", check)
    console.print(files)
    if result.int8 is not None:
        report = result.int8
        console.print(
            f"int8 vs fp32: kNN accuracy {report.knn_int8:.2%} vs {report.knn_fp32:.2%} (drop {report.knn_drop * 100:+.2f} points); "
            + ", ".join(f"{key} {value:.2f} ms" for key, value in report.latency_ms.items())
            + " (ONNX Runtime CPU, 1 thread, median)"
        )
    if result.mobile is not None:
        console.print(
            f"operators for a reduced mobile build ({result.mobile.config}): {result.mobile.summary()}"
        )
    return 0
