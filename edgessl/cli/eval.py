"""``edgessl eval RUN_OR_CHECKPOINT --data D --protocol knn|linear|finetune`` (or ``--onnx MODEL``).

A run folder means every checkpoint in it, in epoch order. Results are saved as JSON in
``RUN/eval/`` (reused on the next call with the same settings) and shown as a rich table.
``--onnx`` evaluates an exported encoder with onnxruntime and numpy only: that path
imports nothing that imports torch.
"""

from __future__ import annotations

import argparse
from typing import Any

from edgessl.cli.data_columns import add_column_options, data_with_columns
from edgessl.cli.weights import add_weights_options, normalization

# CLI flag -> protocol option; each goes only to the protocols that have that option
OPTION_FLAGS = (
    ("k", "--k", int, "kNN neighbours (default 200)"),
    (
        "metric",
        "--metric",
        str,
        "kNN vote: euclidean (majority, the study's) or cosine (exp(sim/T)-weighted)",
    ),
    ("temperature", "--temperature", float, "cosine kNN temperature T (default 0.1)"),
    ("epochs", "--epochs", int, "linear / finetune epochs (defaults 100 / 20)"),
    ("lr", "--lr", float, "linear / finetune Adam learning rate (default 1e-3)"),
    ("batch_size", "--batch-size", int, "linear / finetune training batch size"),
)
ONNX_OPTIONS = ("k", "metric")  # what edgessl.export.ort_eval.evaluate_onnx takes


def add_data_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``eval`` and ``sweep``: data, protocols, protocol options, device."""
    parser.add_argument(
        "--data",
        default="shapes10",
        help="dataset name, image-folder path, hf:PATH_OR_NAME or wds:PATTERN (default: shapes10)",
    )
    add_column_options(parser)
    parser.add_argument(
        "--data-root",
        help="folder holding the dataset's files (e.g. the one with stl10_binary/ or cifar-10-batches-bin/)",
    )
    parser.add_argument(
        "--image-size", type=int, help="evaluation image size (default: the checkpoint's pretraining size)"
    )
    parser.add_argument(
        "--protocol",
        action="append",
        metavar="NAME",
        help="knn, linear or finetune; repeat or give a comma list (default: knn)",
    )
    for dest, flag, kind, text in OPTION_FLAGS:
        parser.add_argument(flag, dest=dest, type=kind, help=text)
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="evaluate checkpoints (knn, linear probe, fine-tuning) or an exported ONNX encoder",
        description="Evaluate every checkpoint of a run (or one checkpoint) on a labelled dataset: "
        "train split "
        "as kNN bank / training data, test split for accuracy (an image folder's val/ serves as test when it "
        "has no test/; the command states which files made each). Results go to RUN/eval/*.json and are "
        "reused.",
    )
    parser.add_argument(
        "target", nargs="?", metavar="RUN_OR_CHECKPOINT", help="a run folder or a .pt checkpoint"
    )
    parser.add_argument(
        "--onnx", metavar="MODEL.onnx", help="evaluate an exported encoder with onnxruntime only (no torch)"
    )
    add_data_options(parser)
    add_weights_options(parser)
    parser.set_defaults(handler=run)


def protocols_of(args: argparse.Namespace) -> list[str]:
    """``--protocol knn --protocol linear,finetune`` -> ['knn', 'linear', 'finetune'] (default knn)."""
    names = [
        name.strip() for value in (args.protocol or ["knn"]) for name in value.split(",") if name.strip()
    ]
    return list(dict.fromkeys(names))


def options_of(args: argparse.Namespace) -> dict[str, Any]:
    """The protocol options the user gave; the rest keep the protocols' documented defaults."""
    return {dest: getattr(args, dest) for dest, *_ in OPTION_FLAGS if getattr(args, dest) is not None}


def run(args: argparse.Namespace) -> int:
    from edgessl.errors import ConfigError

    args.data = data_with_columns(args.data, args)
    given = [args.target is not None, args.onnx is not None, args.weights is not None]
    if sum(given) != 1:
        raise ConfigError(
            "give a run folder or checkpoint, --onnx MODEL.onnx, or --weights FILE --backbone NAME "
            "(exactly one)"
        )
    if (args.weights is None) != (args.backbone is None):
        raise ConfigError(
            "--weights FILE and --backbone NAME go together (the network the state dict is for)"
        )
    if args.weights is not None:
        return run_weights(args)
    normalization(args)  # --mean/--std without --weights is an error
    return run_onnx(args) if args.onnx is not None else run_checkpoints(args)


def run_weights(args: argparse.Namespace) -> int:
    """A plain state dict (.safetensors / .pth) in a named backbone; ``finetune`` starts from it."""
    import json

    from edgessl.cli.console import make_console
    from edgessl.evaluation.outside import evaluate_weights

    mean, std = normalization(args)
    records = evaluate_weights(
        args.backbone,
        args.weights,
        args.data,
        protocols_of(args),
        data_root=args.data_root,
        image_size=args.image_size,
        device=args.device,
        mean=mean,
        std=std,
        **options_of(args),
    )
    if args.json:
        print(json.dumps(records, indent=2, sort_keys=True))
        return 0
    console = make_console()
    console.print(records_table(records, f"{args.backbone} with {records[0]['weights']} on {args.data}"))
    return 0


def splits_statement(data: str, data_root: str | None) -> str:
    """Which split is the kNN bank (and probe training data) and which is measured, and their files."""
    from edgessl.data.reading import split_source

    return (
        f"kNN bank and probe training data: {split_source(data, 'train', data_root)}; "
        f"accuracy measured on {split_source(data, 'test', data_root)}"
    )


def run_onnx(args: argparse.Namespace) -> int:
    """ONNX Runtime + numpy only: nothing imported here imports torch."""
    import json

    from rich.table import Table

    from edgessl.cli.console import make_console
    from edgessl.errors import ConfigError
    from edgessl.export.ort_eval import evaluate_onnx

    options = options_of(args)
    unsupported = sorted(set(options) - set(ONNX_OPTIONS))
    if unsupported or args.device:
        given = ", ".join([*unsupported, *(["device"] if args.device else [])])
        raise ConfigError(f"--onnx evaluation takes only --k and --metric (it runs on the CPU); drop {given}")
    protocols = protocols_of(args)
    result = evaluate_onnx(
        args.onnx,
        args.data,
        data_root=args.data_root,
        protocols=protocols,
        image_size=args.image_size,
        **options,
    )
    summary = {key: value for key, value in result.items() if key != "predictions"}
    console = make_console()
    statement = splits_statement(args.data, args.data_root)
    if args.json:
        make_console(stderr=True).print(statement, markup=False)  # stdout stays pure JSON
        print(json.dumps(summary, indent=2, sort_keys=True, default=str))
        return 0
    table = Table(title=f"{result.get('onnx', args.onnx)} on {args.data} (onnxruntime)")
    table.add_column("protocol")
    table.add_column("accuracy", justify="right")
    table.add_column("settings")
    for name in protocols:
        entry = dict(summary.get(name, {}))
        accuracy = entry.pop("accuracy", None)
        table.add_row(
            name,
            "-" if accuracy is None else f"{100 * accuracy:.2f}%",
            ", ".join(f"{k}={v}" for k, v in entry.items()),
        )
    console.print(table)
    facts = {key: value for key, value in summary.items() if key not in protocols}
    console.print(", ".join(f"{key}: {value}" for key, value in facts.items()), highlight=False, markup=False)
    console.print(statement, markup=False)
    return 0


def settings_text(record: dict[str, Any]) -> str:
    """The protocol's defining settings, from what it reported about itself."""
    details = record.get("details", {})
    if "curve" in details:
        return f"best epoch {details['best_epoch']}/{details['epochs']}, lr {details.get('lr')}"
    return ", ".join(f"{key}={details[key]}" for key in ("k", "metric", "bank_size") if key in details)


def records_table(records: list[dict[str, Any]], title: str):  # -> rich.table.Table
    from rich.table import Table

    table = Table(title=title)
    for column, justify in (
        ("epoch", "right"),
        ("checkpoint", "left"),
        ("protocol", "left"),
        ("accuracy", "right"),
        ("final", "right"),
        ("settings", "left"),
        ("time", "right"),
    ):
        table.add_column(column, justify=justify, no_wrap=column != "settings")
    for record in records:
        final = record.get("details", {}).get("final", record["accuracy"])
        table.add_row(
            str(record["epoch"]),
            record["checkpoint_file"],
            record["protocol"],
            f"{100 * record['accuracy']:.2f}%",
            f"{100 * final:.2f}%",
            settings_text(record),
            f"{record.get('seconds', 0):.1f}s",
        )
    return table


def progress_printer(console: Any, quiet: bool):
    """``on_record`` callback: one line per checkpoint and protocol as results arrive (stderr)."""

    def report(record: dict[str, Any], reused: bool) -> None:
        if not quiet:
            state = "saved result" if reused else f"{record.get('seconds', 0):.1f}s"
            console.print(
                f"epoch {record['epoch']:>4} {record['protocol']:<8} {100 * record['accuracy']:6.2f}%  "
                f"({state})",
                markup=False,
                highlight=False,
            )

    return report


def run_checkpoints(args: argparse.Namespace) -> int:
    import json

    from edgessl.cli.console import make_console
    from edgessl.evaluation import evaluate_checkpoints

    progress = make_console(stderr=True)
    records = evaluate_checkpoints(
        args.target,
        args.data,
        protocols_of(args),
        args.data_root,
        args.image_size,
        args.device,
        on_record=progress_printer(progress, args.json),
        **options_of(args),
    )
    statement = splits_statement(args.data, args.data_root)
    if args.json:
        progress.print(statement, markup=False)  # stdout stays pure JSON
        print(json.dumps(records, indent=2, sort_keys=True))
        return 0
    first = records[0]
    title = (
        f"{first.get('method')} / {first.get('backbone')} on {args.data} "
        f"(results saved in {run_eval_folder(args.target)})"
    )
    console = make_console()
    console.print(records_table(records, title))
    console.print(statement, markup=False)
    return 0


def run_eval_folder(target: str) -> str:
    from pathlib import Path

    from edgessl.evaluation.sweep import sweep_folder

    return str(sweep_folder(Path(target)))
