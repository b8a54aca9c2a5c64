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
from typing import TYPE_CHECKING

from edgessl.cli.weights import add_weights_options

if TYPE_CHECKING:
    from edgessl.profiling.report import ProfileOptions


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


def _options(args: argparse.Namespace) -> ProfileOptions:
    """The flags as :class:`ProfileOptions`, which refuses a bad one on construction."""
    from edgessl.energy import DEFAULT_GRID_INTENSITY, grid_intensity
    from edgessl.profiling.latency import DEFAULT_BACKENDS
    from edgessl.profiling.report import ProfileOptions

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
    from edgessl.profiling.report import profile_backbones
    from edgessl.profiling.tables import render_report

    options = _options(args)
    report = profile_backbones(_backbones(args), options)
    if args.json == "-":
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif args.json:
        with atomic_output(Path(args.json)) as tmp:
            tmp.write_text(json.dumps(report, indent=2) + "\n")
    else:
        render_report(report, make_console())
    return 0
