"""``edgessl report STUDY``: one self-contained HTML page with the study's tables, figures and curves."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="write a study's report page (one self-contained HTML file)",
        description="Write STUDY/report.html: Table 1 with 95%% intervals over seeds, the best-method "
        "verdicts, "
        "every paired comparison, the cost table, Figures 1-2 with bands, each cell's training curves per "
        "seed, the pictures 'edgessl explain' drew, and the config and library versions. Pictures are "
        "inlined, so the file opens offline.",
    )
    parser.add_argument("study", metavar="STUDY", help="a study folder (with study.json)")
    parser.add_argument("--out", help="the HTML file to write (default: STUDY/report.html)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from rich.markup import escape

    from edgessl.cli.console import make_console
    from edgessl.study.report import write_report

    path = write_report(args.study, args.out)
    make_console().print(f"wrote {escape(str(path))}")
    return 0
