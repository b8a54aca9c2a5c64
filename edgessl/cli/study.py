"""``edgessl study CONFIG_OR_PRESET``: pretrain and evaluate a methods x backbones grid, resumably."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "study",
        help="run a methods x backbones study (Table 1, Figures 1-2); rerun to resume",
        description="Pretrain and evaluate every method x backbone cell of a study, then write Table 1 "
        "(Markdown, CSV) and Figures 1-2 (PNG). Finished cells are skipped, so rerunning the same "
        "command continues a stopped study.",
    )
    parser.add_argument("config", nargs="?", help="a preset name (see --list-presets) or a YAML study config")
    parser.add_argument("--out", help="study folder (default: the config's 'out')")
    parser.add_argument("--data-root", help="where the dataset's files are (overrides the config)")
    parser.add_argument("--device", help="evaluation device, e.g. cpu or cuda:0 (overrides the config)")
    parser.add_argument(
        "--table-protocol", help="the protocol Table 1 and Figures 1-2 report (one the config evaluates)"
    )
    parser.add_argument(
        "--max-cells", type=int, help="train/evaluate at most N unfinished runs (cell x seed) in this call"
    )
    parser.add_argument(
        "--shard",
        metavar="I/N",
        help="run worker I's share of N (runs I, I+N, ... from 1, a run being a cell with one seed); "
        "N workers share one --out folder, "
        "e.g. a SLURM array job with --shard $SLURM_ARRAY_TASK_ID/N",
    )
    parser.add_argument(
        "--launcher",
        metavar="CMD",
        help="run each cell's pretraining as 'CMD -m edgessl train ...', e.g. "
        "'accelerate launch --multi_gpu --num_processes 4' (default: in this process)",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        metavar="N",
        help="train every cell with N seeds from train.seed (overrides the config's 'seeds')",
    )
    parser.add_argument("--list-presets", action="store_true", help="list the built-in studies and exit")
    parser.add_argument(
        "--print-config", action="store_true", help="print the resolved config as YAML and exit"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (e.g. in logs)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from rich.markup import escape
    from rich.table import Table

    from edgessl.cli.console import make_console
    from edgessl.errors import ConfigError
    from edgessl.study.config import dump_study
    from edgessl.study.presets import PRESETS, preset_names, resolve_study
    from edgessl.study.runner import run_study
    from edgessl.study.shard import Shard

    console = make_console()
    if args.list_presets:
        table = Table(title="study presets")
        for column in ("name", "grid", "data", "epochs", "protocols"):
            table.add_column(column)
        for name in preset_names():
            preset = PRESETS.get(name)()
            grid = f"{', '.join(preset.methods)} x {', '.join(preset.backbones)}"
            table.add_row(
                name,
                grid,
                f"{preset.train.data} @{preset.train.image_size}",
                str(preset.train.epochs),
                ", ".join(preset.protocols),
            )
        console.print(table)
        return 0
    if args.config is None:
        raise ConfigError(
            "name a study preset or a YAML config, e.g. 'edgessl study study-quick' "
            "(list them with --list-presets)"
        )
    if args.max_cells is not None and args.max_cells < 1:
        raise ConfigError(f"--max-cells must be >= 1, got {args.max_cells}")
    shard = Shard.parse(args.shard) if args.shard else Shard()
    config = resolve_study(args.config).with_out(args.out)
    overrides = {
        key: value
        for key, value in (("device", args.device), ("table_protocol", args.table_protocol))
        if value is not None
    }
    if args.seeds is not None:
        overrides["seeds"] = args.seeds
    if args.data_root is not None:
        overrides["train"] = replace(config.train, data_root=args.data_root)
    config = replace(config, **overrides)  # __post_init__ checks the overridden values too
    if args.print_config:
        console.print(escape(dump_study(config)), end="")
        return 0
    units = config.units()
    mine = len(shard.share(units))
    share = f", shard {shard.index}/{shard.count}: {mine} of them" if shard.count > 1 else ""
    seeds = len(config.seed_values())
    console.print(
        f"study [bold]{escape(config.name)}[/]: {len(config.cells())} cells x {seeds} seed(s) = "
        f"{len(units)} runs{share} -> {escape(config.out)}"
    )
    outcome = run_study(
        config,
        console=console,
        progress=not args.no_progress,
        max_cells=args.max_cells,
        shard=shard,
        launcher=args.launcher,
    )
    if outcome.skipped:
        console.print(f"already finished (skipped): {', '.join(outcome.skipped)}")
    if outcome.busy:
        console.print(f"claimed by another worker (left to it): {', '.join(outcome.busy)}")
    table = Table(title=escape(outcome.table.title))
    table.add_column("")
    for column in outcome.table.columns:
        table.add_column(escape(column), justify="right")
    for row in outcome.table.rows:
        table.add_row(escape(row.label), *row.formatted())
    console.print(table)
    for path in outcome.outputs.values():
        console.print(f"wrote {escape(str(path))}")
    if not outcome.complete:
        others = " (the other shards' cells are left to them)" if shard.count > 1 else ""
        console.print(
            f"{len(outcome.cells)}/{len(units)} runs finished{others}; run the same command again to continue"
        )
    return 0
