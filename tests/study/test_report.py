"""The study report page and ``edgessl compare``, rendered from a study folder written by the runner."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from study_cells import SEEDED

from edgessl.cli import main
from edgessl.stats import mean_interval, paired_difference
from edgessl.study import folder
from edgessl.study.compare import arm, compare, read_units
from edgessl.study.config import StudyConfig, Unit
from edgessl.study.render import render_outputs
from edgessl.study.report import write_report
from edgessl.training.config import TrainConfig

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def seeded_study(root: Path) -> StudyConfig:
    """A finished 2 methods x 2 backbones x 3 seeds study folder: study.json, metrics and one explain
    picture."""
    config = StudyConfig(
        methods=("simclr", "rotnet"),
        backbones=("resnet18", "squeezenet"),
        name="seeded",
        train=TrainConfig(epochs=2),
        protocols=("knn",),
        seeds=3,
        out=str(root),
    )
    for cell in SEEDED:
        run = root / folder.RUNS_DIR / Unit(cell.method, cell.backbone, cell.seed).name
        run.mkdir(parents=True)
        lines = [
            {"step": step, "epoch": 1 + step // 5, "loss": 5.0 - 0.1 * step - 0.05 * cell.seed, "lr": 0.1}
            for step in range(1, 11)
        ]
        lines += [
            {"step": 10, "epoch": 2, "knn_accuracy": 0.3, "embedding_std": 0.02, "effective_rank": 12.5}
        ]
        (run / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    pictures = root / folder.RUNS_DIR / "simclr-resnet18-seed0" / "explain" / "epoch_0002"
    pictures.mkdir(parents=True)
    (pictures / "retrieval.png").write_bytes(PNG_MAGIC + b"not really drawn")
    root.mkdir(parents=True, exist_ok=True)
    render_outputs(list(SEEDED), config, root)
    return config


def test_compare_pairs_by_backbone_and_seed(tmp_path: Path, capsys) -> None:
    seeded_study(tmp_path / "study")
    record, units = read_units(tmp_path / "study")
    assert len(units) == 12 and record["seeds"] == [0, 1, 2]
    result = compare(arm(units, "simclr"), arm(units, "rotnet"), "knn")
    by_hand = [  # simclr - rotnet per (backbone, seed)
        [0.60 - 0.30, 0.62 - 0.31, 0.61 - 0.32],
        [0.40 - 0.38, 0.45 - 0.44, 0.35 - 0.41],
    ]
    assert result.difference == paired_difference(by_hand)
    assert result.per_backbone[0].difference == mean_interval(by_hand[0])
    # resnet18: simclr wins all 9 pairs; squeezenet: 0.40 beats 0.38, 0.45 beats all three, 0.35 none
    assert result.probability.estimate == pytest.approx((1.0 + 4 / 9) / 2)
    assert result.verdict == "simclr better"  # every resnet18 pair +0.3 dominates the pooled interval
    assert main(["compare", str(tmp_path / "study"), "simclr", "rotnet", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["verdict"] == "simclr better" and printed["difference"]["n"] == 6
    assert main(["compare", str(tmp_path / "study"), "simclr", "byol"]) == 2
    assert "unknown method with finished runs in this study 'byol'" in capsys.readouterr().err
    # the same study against itself: a zero difference is within noise
    assert (
        main(["compare", str(tmp_path / "study"), "rotnet", "rotnet", "--against", str(tmp_path / "study")])
        == 0
    )
    assert "within noise" in capsys.readouterr().out


def test_report_is_one_self_contained_page_with_every_section(tmp_path: Path) -> None:
    seeded_study(tmp_path / "study")
    page = write_report(tmp_path / "study").read_text()
    for heading in (
        "Table 1: accuracy",
        "Paired comparisons",
        "Costs per backbone",
        "Figures 1-2",
        "Training curves per cell",
        "Retrieval and saliency",
        "Config",
        "Versions",
    ):
        assert f"<h2>{heading}" in page
    assert "<td>0.610 ± 0.025 (3)</td>" in page  # simclr on resnet18, as Table 1's Markdown has it
    assert (
        "<tr class='best'><td>best (95% CIs separate)</td><td>simclr</td><td>tied: rotnet, simclr</td>"
        in page
    )
    assert "simclr better" in page and "12 of 12 runs finished" in page
    images = re.findall(r"<img alt='([^']*)' src='data:image/png;base64,", page)
    # Figures 1 and 2, a curve figure per cell (4), the one explain picture
    assert len(images) == 7 and "simclr-resnet18-seed0: epoch_0002/retrieval.png" in images
    assert not re.search(r"(src|href)=['\"](?!data:)", page)  # nothing fetched from anywhere
    assert "seeds: 3" in page and "<td>torch</td>" in page


def test_a_study_without_a_record_is_one_line(tmp_path: Path, capsys) -> None:
    assert main(["report", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "has no study.json; run 'edgessl study' on it first" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "report.html").exists()


def chromium() -> str | None:
    return next((path for name in ("chromium", "chromium-browser") if (path := shutil.which(name))), None)


def render_in_chromium(page: Path, screenshot: Path) -> str:
    """Open ``page`` headless; return what the browser logged (console messages included)."""
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--enable-logging=stderr",
        "--v=0",
        "--window-size=1280,2400",
        f"--screenshot={screenshot}",
        page.resolve().as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stderr


def console_errors(log: str) -> list[str]:
    return [line for line in log.splitlines() if "CONSOLE" in line or "Uncaught" in line]


@pytest.mark.skipif(chromium() is None, reason="no chromium on PATH (apt-get install -y chromium)")
def test_report_renders_in_a_real_browser_without_console_errors(tmp_path: Path) -> None:
    seeded_study(tmp_path / "study")
    page = write_report(tmp_path / "study")
    shot = tmp_path / "report.png"
    assert console_errors(render_in_chromium(page, shot)) == []
    assert shot.read_bytes()[:8] == PNG_MAGIC and shot.stat().st_size > 20_000
    # the check can fail: a page that logs an error and loads a missing file is caught
    broken = tmp_path / "broken.html"
    broken.write_text("<html><body><script>console.error('boom')</script><p>x</p></body></html>")
    assert console_errors(render_in_chromium(broken, tmp_path / "broken.png"))


def test_report_of_a_study_that_has_a_single_seed_says_there_is_no_interval(tmp_path: Path) -> None:
    config = replace(seeded_study(tmp_path / "study"), seeds=1)
    render_outputs([cell for cell in SEEDED if cell.seed == 0], config, tmp_path / "study")
    page = write_report(tmp_path / "study").read_text()
    assert "<td>0.600 (1)</td>" in page and "too few seeds" in page
