"""``edgessl export``: a trained encoder (or outside weights) -> verified ONNX, camera input, ORT format,
accelerator report."""

from __future__ import annotations

import argparse
from typing import Any

from edgessl.cli.weights import add_weights_options, normalization

SHORT_PROVIDER = {"CoreML MLProgram": "CoreML MLProgram", "CoreML NeuralNetwork": "CoreML NeuralNet"}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a trained encoder to verified ONNX (fp32/int8, fixed batch, camera input), ORT format "
        "and classifiers",
        description=(
            "Export a checkpoint (or a run folder's LAST epoch checkpoint, or --weights FILE --backbone "
            "NAME) to ONNX with a "
            "dynamic batch axis. Every file is checked (onnx.checker, then ONNX Runtime against PyTorch on "
            "real images) before "
            "it is written; past tolerance the export fails and leaves nothing behind. Every .onnx records "
            "ONNX Runtime's "
            "mobile usability report (NNAPI, CoreML) in its metadata. Inputs: float32 RGB in [0, 1], NCHW "
            "(normalisation "
            "inside the graph), or with --input uint8-nhwc camera frames. Device guide: docs/MOBILE.md."
        ),
    )
    parser.add_argument(
        "target",
        nargs="?",
        metavar="RUN_OR_CHECKPOINT",
        help="a run folder (its last epoch checkpoint is exported) or a checkpoint file",
    )
    parser.add_argument(
        "--report",
        metavar="MODEL.onnx",
        help="only print ONNX Runtime's mobile usability report (NNAPI, CoreML) for an existing .onnx file",
    )
    parser.add_argument(
        "--format",
        default="onnx",
        help="comma-separated file formats: onnx (default), litert (.tflite), coreml (.mlpackage), "
        "executorch (.pte); each but onnx is an extra, e.g. pip install 'edgessl[litert]'",
    )
    parser.add_argument("--out", default="exported", help="output folder (default: exported/)")
    parser.add_argument(
        "--name", help="file name stem (default METHOD_BACKBONE_eEPOCH; with --weights, WEIGHTSFILE_BACKBONE)"
    )
    parser.add_argument(
        "--int8",
        action="store_true",
        help="also write a static int8 model (QDQ, per-channel) calibrated on training images; reports kNN "
        "accuracy and latency against fp32",
    )
    parser.add_argument(
        "--ort",
        action="store_true",
        help="also convert every file to ORT format (.ort) and write the operator list for a reduced mobile "
        "build",
    )
    parser.add_argument(
        "--head",
        default="none",
        help="none (features), knn (labelled bank in the graph) or linear (Adam-trained layer): image batch "
        "-> class scores",
    )
    parser.add_argument(
        "--fixed-batch",
        type=int,
        metavar="N",
        help="also write fixed-shape copies with batch N of every file (fp32, int8, head): what NNAPI and "
        "CoreML take",
    )
    parser.add_argument(
        "--input",
        default="float-nchw",
        help="float-nchw (default: float32 RGB [0, 1], N,3,S,S) or uint8-nhwc: also write camera-input "
        "copies taking uint8 RGB frames N,H,W,3, "
        "converted, cropped/resized and normalised inside the graph",
    )
    parser.add_argument(
        "--frame-size",
        metavar="HxW",
        help="frame size of the uint8-nhwc copies, e.g. 480x640 (centre-cropped to a square, resized to the "
        "model's size; default: the model's size)",
    )
    parser.add_argument(
        "--data", help="dataset for verification, calibration and heads (default: the checkpoint's dataset)"
    )
    parser.add_argument(
        "--data-root", help="where a registered dataset's files are (e.g. the folder holding stl10_binary/)"
    )
    parser.add_argument(
        "--image-size", type=int, help="model input size for --weights (default: the dataset's own size)"
    )
    parser.add_argument(
        "--k",
        type=int,
        default=200,
        help="neighbours of the kNN head and of the int8 accuracy report (default 200)",
    )
    add_weights_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from edgessl.errors import ConfigError

    if args.report is not None:
        if args.target is not None or args.weights is not None:
            raise ConfigError(
                "--report FILE prints the report of an existing file; drop RUN_OR_CHECKPOINT / --weights"
            )
        return print_report(args.report)
    if (args.target is None) == (args.weights is None):
        raise ConfigError("give a run folder or checkpoint, or --weights FILE --backbone NAME (exactly one)")
    if args.weights is not None and not args.backbone:
        raise ConfigError(
            "--weights needs --backbone NAME: the network the state dict is for (see 'edgessl backbones')"
        )
    if args.target is not None and (args.backbone or args.image_size):
        raise ConfigError("--backbone/--image-size describe --weights; a checkpoint records its own")
    return run_export(args)


def run_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from edgessl.cli.console import make_console
    from edgessl.export.formats import parse_formats, skipped_options
    from edgessl.export.inputs import parse_frame_size
    from edgessl.export.options import ExportOptions
    from edgessl.export.pipeline import export_checkpoint, export_weights

    mean, std = normalization(args)
    options = ExportOptions(
        out_dir=Path(args.out),
        int8=args.int8,
        ort=args.ort,
        head=args.head,
        fixed_batch=args.fixed_batch,
        input=args.input,
        frame_size=parse_frame_size(args.frame_size) if args.frame_size else None,
        name=args.name,
        data=args.data,
        data_root=args.data_root,
        k=args.k,
        formats=parse_formats(args.format),
    )
    if args.weights is not None:
        result = export_weights(args.backbone, args.weights, options, args.image_size, mean, std)
    else:
        result = export_checkpoint(args.target, options)
    console = make_console()
    meta = result.metadata
    source = (
        f"{meta.backbone} with weights {result.weights.summary()}"
        if result.weights
        else f"{meta.method} / {meta.backbone}, epoch {meta.epoch} from {result.checkpoint}"
    )
    console.print(
        f"exported {source} (input {meta.input_description()}; features {meta.feature_dim}; "
        "exporter: torch.onnx dynamo)",
        highlight=False,
    )
    if result.files:
        console.print(files_table(result))
        console.print(providers_table(result.usability))
    if result.int8 is not None:
        report = result.int8
        console.print(
            f"int8 vs fp32: kNN accuracy {report.knn_int8:.2%} vs {report.knn_fp32:.2%} "
            f"(drop {report.knn_drop * 100:+.2f} points); "
            + ", ".join(f"{key} {value:.2f} ms" for key, value in report.latency_ms.items())
            + " (ONNX Runtime CPU, 1 thread, median)"
        )
    if result.mobile is not None:
        console.print(
            f"operators for a reduced mobile build ({result.mobile.config}): {result.mobile.summary()}"
        )
        runtime = sorted(path.name for path, style in result.mobile.styles.items() if style == "Runtime")
        if runtime:
            console.print(
                "fixed-shape .ort files keep the basic-optimised graph for NNAPI/CoreML (Runtime style): "
                f"{', '.join(runtime)}"
            )
    for name, report in result.formats.items():
        console.print(format_table(name, report))
        if report.knn:
            console.print(
                f"{name} kNN accuracy through its runtime: "
                + ", ".join(f"{role} {accuracy:.2%}" for role, accuracy in report.knn.items())
            )
    for name in options.formats:
        skipped = skipped_options(name, args.int8)
        if skipped:
            console.print(f"{name}: {skipped}", highlight=False)
    return 0


def format_table(name: str, report: Any) -> Any:
    """The files of one torch-side format: size, verification, latency at one thread."""
    from rich.table import Table

    from edgessl.export.formats import FORMATS

    table = Table(title=f"{name} files (runtime: {FORMATS.get(name).runs_here})")
    for column in ("role", "file", "size", "verification", "latency (1 thread)"):
        table.add_column(column, overflow="fold")
    for role, path in report.files.items():
        latency = report.latency_ms.get(role)
        table.add_row(
            role,
            str(path),
            f"{size_bytes(path) / 1e6:.2f} MB",
            report.checks.get(role, ""),
            f"{latency:.2f} ms" if latency is not None else "not run",
        )
    return table


def size_bytes(path: Any) -> int:
    """A file's size, or a package folder's total (``.mlpackage``)."""
    from pathlib import Path

    path = Path(path)
    if path.is_dir():
        return sum(file.stat().st_size for file in path.rglob("*") if file.is_file())
    return path.stat().st_size


def files_table(result: Any) -> Any:
    from rich.table import Table

    table = Table(title="files (each verified on real images before it was written)")
    for column in ("role", "file", "size", "verification"):
        table.add_column(column, overflow="fold")
    for role, path in result.files.items():
        parity = result.parity.get(role)
        check = parity.summary() if parity else ""
        if role in result.agreement:
            reference = "the float file's" if result.roles[role].camera else "Python classifier's"
            check = f"in-graph label = {reference} on {result.agreement[role]:.1%} of images"
        table.add_row(role, str(path), f"{path.stat().st_size / 1e6:.2f} MB", check)
    return table


def _cell(provider: Any) -> str:
    return (
        f"{provider.suitability} {provider.node_share:.0%} of {provider.nodes}, {provider.partitions} part."
    )


def providers_table(usability: dict[str, Any]) -> Any:
    from rich.table import Table

    from edgessl.export.usability import PROVIDERS

    table = Table(
        title="execution providers: share of nodes, partitions (ONNX Runtime's mobile usability checker; "
        "XNNPACK not covered)"
    )
    table.add_column("file", overflow="fold")
    for name in PROVIDERS:
        table.add_column(SHORT_PROVIDER.get(name, name), no_wrap=True)
    for report in usability.values():
        table.add_row(report.file, *(_cell(report.get(name)) for name in PROVIDERS))
    return table


def print_report(path: str) -> int:
    from rich.table import Table

    from edgessl.cli.console import make_console
    from edgessl.export.usability import check_usability

    report = check_usability(path)
    table = Table(title=f"{report.file}: ONNX Runtime mobile usability (after its BASIC optimisation)")
    for column in ("provider", "nodes", "partitions", "sizes", "verdict"):
        table.add_column(column, overflow="fold")
    for provider in report.providers:
        sizes = ", ".join(str(size) for size in provider.partition_sizes[:8]) + (
            ", ..." if len(provider.partition_sizes) > 8 else ""
        )
        table.add_row(
            provider.provider,
            f"{provider.supported_nodes}/{provider.nodes}",
            str(provider.partitions),
            sizes,
            provider.verdict(),
        )
    console = make_console()
    console.print(table)
    console.print(
        "XNNPACK is not covered by the checker: it is a CPU-side provider, nodes it does not take stay on "
        "the CPU provider (docs/MOBILE.md)."
    )
    return 0
