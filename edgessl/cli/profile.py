"""``edgessl profile``: what an encoder costs — size, MACs, latency, training time, energy, CO2.

Every figure is cross-checked or explained: MACs by thop against torch.utils.flop_counter
(a disagreement over 5% is flagged with both numbers), latency for three runtimes side by
side with the thread count recorded, energy measured by NVML or modelled from stated TDPs.
``--json`` emits the schema documented in :mod:`edgessl.profiling.report`.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import Any

from edgessl.cli.weights import add_weights_options


def plain_text(doc: str) -> str:
    """A reST docstring as --help text: roles and backquotes dropped, one paragraph."""
    return " ".join(re.sub(r":\w+:`([^`]*)`", r"\1", doc).replace("``", "'").split())


def default_threads() -> int:
    """``OMP_NUM_THREADS`` when it is a positive integer (as torch itself reads it), else every core."""
    value = os.environ.get("OMP_NUM_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else os.cpu_count() or 1


def _names(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _positive_ints(value: str) -> tuple[int, ...]:
    try:
        numbers = tuple(int(part) for part in _names(value))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got '{value}'") from None
    if not numbers or min(numbers) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got '{value}'")
    return numbers


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "profile",
        help="params, MACs/FLOPs (cross-checked), latency (eager / channels_last / ONNX Runtime), training "
        "time, energy, CO2",
        description=plain_text(__doc__),
    )
    what = parser.add_argument_group("what to profile")
    what.add_argument(
        "--backbone",
        action="append",
        default=[],
        metavar="NAME",
        help="backbone(s), repeatable or comma-separated; timm:<name> works",
    )
    what.add_argument("--all", action="store_true", help="the study's five backbones")
    what.add_argument("--image-size", type=int, default=96, help="square image side (default 96, STL-10)")
    how = parser.add_argument_group("latency")
    how.add_argument(
        "--batch-sizes", type=_positive_ints, default=(1, 32), help="comma-separated (default 1,32)"
    )
    how.add_argument("--device", default="cpu", help="cpu or cuda[:i] (default cpu)")
    how.add_argument(
        "--threads",
        type=int,
        default=default_threads(),
        help="torch and ORT intra-op threads (default: OMP_NUM_THREADS when set, else all cores)",
    )
    how.add_argument(
        "--backends",
        type=_names,
        default=None,
        help="comma-separated subset of eager,channels_last,onnxruntime,onnxruntime-cuda",
    )
    how.add_argument("--warmup", type=int, default=5, help="untimed calls before timing (default 5)")
    how.add_argument(
        "--repeats", type=int, default=30, help="timed calls per backend and batch size (default 30)"
    )
    train = parser.add_argument_group("training cost")
    train.add_argument(
        "--method", default="simclr", help="pretraining method to time, or 'none' to skip (default simclr)"
    )
    train.add_argument(
        "--epochs",
        type=int,
        default=100,
        help="epochs to project the time and energy to (default 100, the study's)",
    )
    train.add_argument(
        "--train-batch-size", type=int, default=32, help="batch of the timed steps (default 32)"
    )
    train.add_argument(
        "--train-steps", type=int, default=3, help="timed training steps (default 3, after 1 warm-up)"
    )
    energy = parser.add_argument_group("energy and CO2")
    energy.add_argument(
        "--gpu-tdp",
        type=float,
        default=None,
        metavar="W",
        help="GPU board power (default: looked up by GPU name)",
    )
    energy.add_argument(
        "--cpu-tdp",
        type=float,
        default=None,
        metavar="W",
        help="CPU package power (default: 12 W x logical cores)",
    )
    energy.add_argument(
        "--pue", type=float, default=1.0, help="data-centre power usage effectiveness (default 1.0)"
    )
    grid = energy.add_mutually_exclusive_group()
    grid.add_argument(
        "--region", default=None, help="provider:region for the grid intensity, e.g. gcp:asia-southeast1"
    )
    grid.add_argument(
        "--grid-intensity",
        type=float,
        default=None,
        metavar="KG_PER_KWH",
        help="kgCO2eq per kWh (default 0.42, the study's)",
    )
    add_weights_options(parser, with_backbone=False, with_normalization=False)
    parser.add_argument(
        "--json",
        nargs="?",
        const="-",
        default=None,
        metavar="PATH",
        help="write JSON (to stdout, or PATH) instead of tables",
    )
    parser.set_defaults(handler=run)


def _backbones(args: argparse.Namespace) -> list[str]:
    from edgessl.backbones import backbone_names, build_backbone
    from edgessl.errors import ConfigError

    names = [name for value in args.backbone for name in _names(value)]
    if args.all:
        names += [
            name for name in backbone_names() if build_backbone(name).spec.in_study and name not in names
        ]
    if not names:
        raise ConfigError("nothing to profile: give --backbone NAME (repeatable) or --all")
    if args.weights is not None and len(names) != 1:
        raise ConfigError(
            f"--weights is a state dict for one backbone; got {len(names)} ({', '.join(names)})"
        )
    return names


def _options(args: argparse.Namespace) -> Any:
    import torch

    from edgessl.energy import DEFAULT_GRID_INTENSITY, grid_intensity
    from edgessl.errors import ConfigError
    from edgessl.profiling.latency import DEFAULT_BACKENDS
    from edgessl.profiling.report import ProfileOptions

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {args.device} but torch sees no CUDA device; use --device cpu")
    for name, value in (
        ("--threads", args.threads),
        ("--repeats", args.repeats),
        ("--epochs", args.epochs),
        ("--image-size", args.image_size),
        ("--train-batch-size", args.train_batch_size),
        ("--train-steps", args.train_steps),
    ):
        if value < 1:
            raise ConfigError(f"{name} must be at least 1 (got {value})")
    if args.json not in (None, "-"):
        check_json_target(Path(args.json))
    intensity = grid_intensity(args.region) if args.region else args.grid_intensity
    return ProfileOptions(
        image_size=args.image_size,
        batch_sizes=args.batch_sizes,
        device=args.device,
        threads=args.threads,
        backends=tuple(args.backends) if args.backends else DEFAULT_BACKENDS,
        warmup=max(args.warmup, 0),
        repeats=args.repeats,
        method=None if args.method.lower() == "none" else args.method,
        train_batch_size=args.train_batch_size,
        train_steps=args.train_steps,
        epochs=args.epochs,
        gpu_tdp_w=args.gpu_tdp,
        cpu_tdp_w=args.cpu_tdp,
        pue=args.pue,
        grid_intensity_kg_per_kwh=intensity if intensity is not None else DEFAULT_GRID_INTENSITY,
        weights=args.weights,
    )


def check_json_target(path: Path) -> None:
    """``--json PATH`` must be a file that can be written, known before minutes of measuring."""
    from edgessl.errors import ConfigError

    if path.is_dir():
        raise ConfigError(f"--json {path} is a folder; give a file path, e.g. --json {path / 'profile.json'}")
    if not path.parent.is_dir() or not os.access(path.parent, os.W_OK):
        raise ConfigError(f"--json {path}: cannot write into {path.parent}; give a path in a writable folder")


def run(args: argparse.Namespace) -> int:
    import json
    import sys

    from edgessl.cli.console import make_console
    from edgessl.files import atomic_output
    from edgessl.methods import method_class
    from edgessl.profiling.report import profile_backbones

    options = _options(args)
    if options.method is not None:
        method_class(options.method)  # fail on a wrong name before minutes of measuring
    report = profile_backbones(_backbones(args), options)
    if args.json == "-":
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif args.json:
        with atomic_output(Path(args.json)) as tmp:
            tmp.write_text(json.dumps(report, indent=2) + "\n")
    else:
        _render(report, make_console())
    return 0


def _cost_table(report: dict[str, Any]) -> Any:
    from rich.table import Table

    size = report["options"]["image_size"]
    table = Table(
        title=f"Size and compute per image at {size}x{size} (MACs = multiply-accumulates, FLOPs = 2 x MACs)"
    )
    table.add_column("backbone", no_wrap=True)
    for column in ("params", "trainable", "MACs (thop)", "FLOPs", "conv/linear MACs: thop", "flop_counter"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("cross-check")
    for entry in report["backbones"]:
        compute = entry["compute"]
        verdict = (
            f"ok ({compute['relative_difference']:.1%})"
            if compute["agrees"]
            else f"[bold red]DISAGREE {compute['relative_difference']:.1%}[/]"
        )
        table.add_row(
            entry["name"],
            f"{entry['params']['total'] / 1e6:.3f}M",
            f"{entry['params']['trainable'] / 1e6:.3f}M",
            f"{compute['macs']:.3e}",
            f"{compute['flops']:.3e}",
            f"{compute['thop_matmul_conv_macs']:.3e}",
            f"{compute['flop_counter_macs']:.3e}",
            verdict,
        )
    return table


def _latency_table(report: dict[str, Any]) -> Any:
    from rich.table import Table

    machine = report["machine"]
    table = Table(
        title=f"Inference latency per call on {machine['device_name']} ({machine['threads']} threads)"
    )
    table.add_column("backbone", no_wrap=True)
    table.add_column("backend", no_wrap=True)
    for column in ("batch", "median ms", "p90 ms", "images/s", "x eager", "% of peak"):
        table.add_column(column, justify="right", no_wrap=True)
    for entry in report["backbones"]:
        for row in entry["latency"]:
            table.add_row(
                entry["name"],
                row["backend"],
                str(row["batch_size"]),
                f"{row['median_ms']:.2f}",
                f"{row['p90_ms']:.2f}",
                f"{row['images_per_second']:.0f}",
                "" if row["speedup_vs_eager"] is None else f"{row['speedup_vs_eager']:.2f}",
                "" if row["efficiency"] is None else f"{row['efficiency']:.1%}",
            )
    return table


def _training_table(report: dict[str, Any]) -> Any:
    from rich.table import Table

    epochs = report["options"]["epochs"]
    table = Table(
        title="Pretraining cost (measured steps, projected to STL-10 epochs of 100,000 images; "
        f"{epochs} epochs)"
    )
    table.add_column("backbone", no_wrap=True)
    table.add_column("method", no_wrap=True)
    for column in ("batch", "images/s", "per epoch", f"{epochs} epochs", "kWh", "kgCO2eq", "energy source"):
        table.add_column(column, justify="right", no_wrap=True)
    for entry in report["backbones"]:
        cost = entry["training"]
        if cost is None:
            continue
        energy = cost["projected_energy"]
        table.add_row(
            entry["name"],
            cost["method"],
            str(cost["batch_size"]),
            f"{cost['images_per_second']:.1f}",
            _duration(cost["seconds_per_epoch"]),
            _duration(cost["projected_seconds"]),
            f"{energy['energy_kwh']:.3f}",
            f"{energy['co2_kg']:.3f}",
            energy["source"],
        )
    return table


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def _energy_basis(energy: dict[str, Any]) -> str:
    """One line saying where the energy figures come from."""
    gpu = ""
    if energy["source"] == "nvml":
        gpu = "GPU energy measured by NVML + "
    elif energy["gpu_tdp_w"]:
        gpu = f"GPU TDP {energy['gpu_tdp_w']:.0f} W + "
    return (
        f"Energy: {gpu}CPU TDP {energy['cpu_tdp_w']:.0f} W x {energy['cpu_fraction']:.0%} of its cores used, "
        f"x PUE {energy['pue']}, x grid {energy['grid_intensity_kg_per_kwh']} kgCO2eq/kWh (edgessl.energy)."
    )


def _render(report: dict[str, Any], console: Any) -> None:
    console.print(_cost_table(report))
    for entry in report["backbones"]:
        if entry["weights"]:
            console.print(f"{entry['name']} with weights {entry['weights']}", soft_wrap=True)
    console.print(_latency_table(report))
    if any(entry["training"] for entry in report["backbones"]):
        console.print(_training_table(report))
        energy = next(
            entry["training"]["projected_energy"] for entry in report["backbones"] if entry["training"]
        )
        console.print(_energy_basis(energy), soft_wrap=True)
    peak = report["machine"]["peak"]
    peak_text = f"{peak['peak_macs_per_second']:.3e} MAC/s" if peak["peak_macs_per_second"] else "unknown"
    console.print(f"Peak: {peak_text} ({peak['basis']}).", soft_wrap=True)
    skipped = {
        backend: reason
        for entry in report["backbones"]
        for backend, reason in entry["latency_skipped"].items()
    }
    for backend, reason in skipped.items():
        console.print(f"Skipped {backend}: {reason}.", soft_wrap=True)
