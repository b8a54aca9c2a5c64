"""``edgessl backbones``: the registered encoders with their size and cost."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("backbones", help="list encoders: variant, params, feature dim, MACs")
    parser.add_argument(
        "names", nargs="*", help="backbones to show (default: all registered; timm:<name> works too)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from rich.table import Table

    from edgessl.backbones import backbone_names, build_backbone
    from edgessl.cli.console import make_console
    from edgessl.profiling.flops import count_macs

    table = Table(title="edgessl backbones (random init; MACs = multiply-accumulates, FLOPs = 2 x MACs)")
    table.add_column("name", no_wrap=True)
    table.add_column("variant", overflow="fold")
    table.add_column("study")
    for column in ("params", "feature dim", "MACs @96", "MACs @224"):
        table.add_column(column, justify="right", no_wrap=True)
    for name in args.names or backbone_names():
        encoder = build_backbone(name).eval()
        params = sum(p.numel() for p in encoder.parameters())
        table.add_row(
            name,
            encoder.spec.variant,
            "yes" if encoder.spec.in_study else "",
            f"{params / 1e6:.2f}M",
            str(encoder.feature_dim),
            f"{count_macs(encoder, 96):.3g}",
            f"{count_macs(encoder, 224):.3g}",
        )
    make_console().print(table)
    return 0
