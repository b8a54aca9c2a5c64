"""A 3-seed study on CIFAR-10 small enough for 2 CPU cores, with its report page.

3 methods (SimCLR, MoCo v2, RotNet, each with its ``short`` recipe) x 2 backbones
(ShuffleNetV2 x0.5, SqueezeNet 1.1) x 3 seeds, 20 epochs over 2,500 CIFAR-10 images at
32 px, kNN (k=20) on 1,000 held-out images every 5 epochs: ``benchmarks/seeded_study.yaml``,
run by ``edgessl study`` exactly as a user would, then ``edgessl report``. A stopped run
continues where it stopped (finished seeds are kept).

Run (alone on the machine, about 30 minutes on 2 CPU cores):
    python benchmarks/seeded_study.py [--out studies/cifar10-3seeds]
Writes benchmarks/results/seeded_study.{md,json} (Table 1, every comparison, the machine)
and benchmarks/results/seeded_study/report.html (the page, self-contained).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import cifar_subset
from cifar_knn import machine_line
from results_io import RESULTS, write_results

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "benchmarks" / "seeded_study.yaml"
DATA = REPO / "benchmarks" / "data" / "seeds-cifar10"
PAGE_DIR = RESULTS / "seeded_study"


def edgessl(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "edgessl", *args], check=True, cwd=REPO)


def when(timestamp: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d %H:%M")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "studies" / "cifar10-3seeds"), help="the study folder")
    args = parser.parse_args(argv)
    cifar_subset.prepare(cifar_subset.SOURCE, DATA, 250, 100)
    started = machine_line()
    edgessl("study", str(CONFIG), "--out", args.out, "--no-progress")
    PAGE_DIR.mkdir(parents=True, exist_ok=True)
    edgessl("report", args.out, "--out", str(PAGE_DIR / "report.html"))
    from edgessl.study.compare import all_pairs, read_units
    from edgessl.study.config import study_from_dict
    from edgessl.study.table import build_table

    record, units = read_units(args.out)
    config = study_from_dict(dict(record["config"]))
    table = build_table(units, record["protocol"], config.methods, config.backbones)
    comparisons = all_pairs(units, config.methods, record["protocol"])
    lines = [
        "# A 3-seed study: Table 1 with its intervals",
        "",
        (
            f"`edgessl study benchmarks/seeded_study.yaml`: {', '.join(config.methods)} x "
            f"{', '.join(config.backbones)} x seeds {record['seeds']}, `short` recipes, "
            f"{config.train.epochs} epochs over 2,500 CIFAR-10 images at {config.train.image_size} px, "
            "kNN k=20 "
            "on 1,000 held-out images every 5 epochs (Table 1 takes each run's best checkpoint). The page: "
            "[seeded_study/report.html](seeded_study/report.html)."
        ),
        "",
        table.to_markdown(),
        (
            "Paired comparisons (by backbone and seed; difference of Table 1's number with its 95% "
            "stratified-bootstrap interval, and P(A > B)):"
        ),
        "",
        "| A | B | A − B | 95% CI | P(A > B) | 95% CI | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in comparisons:
        d, p = c.difference, c.probability
        lines.append(
            f"| {c.a} | {c.b} | {d.estimate:+.3f} | {d.bounds('+.3f')} | {p.estimate:.2f} | "
            f"{p.bounds('.2f')} | "
            f"{c.verdict} |"
        )
    finished = sorted(
        (Path(args.out) / "runs" / f"{c.method}-{c.backbone}-seed{c.seed}" / "study_cell.json")
        .stat()
        .st_mtime
        for c in units
    )
    lines += [
        "",
        (
            f"Machine: {started}. The {len(units)} runs finished between {when(finished[0])} and "
            f"{when(finished[-1])} UTC (training times above are theirs)."
        ),
    ]
    summary = {"machine": started, **record, "comparisons": [c.to_dict() for c in comparisons]}
    markdown = write_results("seeded_study", summary, lines)
    shutil.copy(Path(args.out) / "table1.csv", PAGE_DIR / "table1.csv")
    print(markdown.read_text())


if __name__ == "__main__":
    main()
