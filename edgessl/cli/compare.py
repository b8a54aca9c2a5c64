"""``edgessl compare STUDY A B``: is method A better than B over seeds and backbones, or within noise?"""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="paired comparison of two methods of a study: difference and P(A > B) with 95%% CIs",
        description="Pair two methods' runs by (backbone, seed) and report the paired difference of "
        "Table 1's number with its stratified-bootstrap 95%% CI, and the probability of improvement "
        "P(A > B) (rliable's "
        "definition). 'within noise' when the difference's interval contains 0. With --against, B is read "
        "from another study folder (two recipes, or distilled vs plain).",
    )
    parser.add_argument("study", metavar="STUDY", help="a study folder (with study.json)")
    parser.add_argument("a", metavar="A", help="a method of STUDY")
    parser.add_argument("b", metavar="B", help="a method of STUDY (or of --against)")
    parser.add_argument("--against", metavar="STUDY_B", help="read B from this study folder instead")
    parser.add_argument("--protocol", help="the protocol to compare (default: the study's Table 1 protocol)")
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from rich.markup import escape
    from rich.table import Table

    from edgessl.cli.console import make_console
    from edgessl.study.compare import arm, compare, read_units

    record, units = read_units(args.study)
    protocol = args.protocol or str(record["protocol"])
    first = arm(units, args.a)
    if args.against is None:
        second = arm(units, args.b)
    else:
        _, other = read_units(args.against)
        second = arm(other, args.b, f"{Path(args.against).name}:{args.b}")
        first = arm(units, args.a, f"{Path(args.study).name}:{args.a}")
    result = compare(first, second, protocol)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, sort_keys=True))
        return 0
    console = make_console()
    table = Table(title=escape(f"{result.a} vs {result.b} ({protocol}): mean ± 95% CI half-width (n)"))
    for column in ("backbone", result.a, result.b, "paired A - B"):
        table.add_column(escape(column), justify="right")
    for pair in result.per_backbone:
        table.add_row(escape(pair.backbone), pair.a.format(), pair.b.format(), pair.difference.format("+.3f"))
    console.print(table)
    console.print(
        f"paired difference A - B over {result.difference.n} (backbone, seed) pairs: "
        f"{result.difference.estimate:+.3f} {result.difference.bounds('+.3f')}; "
        f"P(A > B) = {result.probability.estimate:.2f} {result.probability.bounds('.2f')}: "
        f"{escape(result.verdict)}",
        highlight=False,
    )
    return 0
