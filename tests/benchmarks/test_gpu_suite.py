"""benchmarks/gpu_suite.py keeps working without a GPU: its CPU smoke run, and its time limits.

The smoke run is the real command in a subprocess (one torch thread) on a 160-image
CIFAR-10 subset made by benchmarks/cifar_subset.py; the tests read the JSON and markdown it
writes and recompute what can be recomputed. The deadline tests run the suite's own
sections in-process under slices far shorter than the work, and check that they stop
promptly and leave valid files saying so.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))  # the benchmark scripts import each other by module name

import cifar_subset
import gpu_suite
import gpu_suite_report
import timebox

TRAIN_PER_CLASS, TEST_PER_CLASS = 12, 4


@pytest.fixture(scope="module")
def subset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not cifar_subset.SOURCE.is_file():
        pytest.skip(
            f"CIFAR-10 images not found at {cifar_subset.SOURCE} (only present beside the project checkout)"
        )
    dest = tmp_path_factory.mktemp("subset") / "cifar10-subset"
    counts = cifar_subset.prepare(cifar_subset.SOURCE, dest, TRAIN_PER_CLASS, TEST_PER_CLASS)
    assert counts == {"train": 10 * TRAIN_PER_CLASS, "test": 10 * TEST_PER_CLASS}
    for split, per_class in (("train", TRAIN_PER_CLASS), ("test", TEST_PER_CLASS)):
        folders = sorted((dest / split).iterdir())
        assert [folder.name for folder in folders][:2] == ["airplane", "automobile"] and len(folders) == 10
        assert all(len(list(folder.glob("*.jpg"))) == per_class for folder in folders)
    assert not (set((dest / "train" / "cat").iterdir()) & set((dest / "test" / "cat").iterdir()))
    return dest


@pytest.fixture(scope="module")
def smoke(subset: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str, float]:
    """(JSON document, markdown, wall seconds) of one ``--smoke`` run."""
    out = tmp_path_factory.mktemp("out")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "EDGESSL_CACHE": str(out / "cache")}
    env["PYTHONPATH"] = os.pathsep.join([str(BENCHMARKS.parent), env.get("PYTHONPATH", "")])
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "gpu_suite.py"), "--smoke", "--data", str(subset),
         "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=240, check=False,
    )  # fmt: skip
    seconds = time.monotonic() - start
    assert done.returncode == 0, done.stderr[-3000:]
    stem = out / "gpu_suite_cpu_smoke"
    return json.loads(stem.with_suffix(".json").read_text()), stem.with_suffix(".md").read_text(), seconds


def test_every_section_completes_well_inside_the_deadline(smoke) -> None:
    document, _, seconds = smoke
    assert document["mode"] == "smoke"
    assert [(name, record["status"]) for name, record in document["sections"].items()] == [
        (name, "complete") for name in ("environment", "throughput", "learning", "projection", "inference")
    ]
    assert document["elapsed_s"] < seconds < document["deadline_s"]
    assert all(0 < record["seconds"] <= record["slice_s"] for record in document["sections"].values())


def test_environment_records_versions_and_why_nvidia_smi_is_missing(smoke) -> None:
    env = smoke[0]["sections"]["environment"]
    assert env["torch"] == torch.__version__ and env["cuda_runtime"] == torch.version.cuda
    assert env["device"] == "cpu" and env["cuda_available"] is torch.cuda.is_available()
    assert env["torch_threads"] == 1
    if env["nvidia_smi"] is None:
        assert env["nvidia_smi_error"]
    assert "CPUExecutionProvider" in env["onnxruntime_providers"]


def test_throughput_rows_are_fp32_with_consistent_ratios_and_skips_said(smoke) -> None:
    record = smoke[0]["sections"]["throughput"]
    assert [(r["variant"], r["method"], r["backbone"]) for r in record["rows"]] == [
        ("fp32", method, "shufflenetv2") for method in gpu_suite.SMOKE.methods
    ]
    assert record["errors"] == [] and record["not_reached"] == []
    assert set(record["skipped"]) == {"bf16", "bf16+channels_last", "bf16+compile"}
    assert all("fp32 only" in reason for reason in record["skipped"].values())
    for row in record["rows"]:
        rates = [row[name] for name in ("end_to_end", "model_only", "torchvision", "views_only")]
        assert all(math.isfinite(rate) and rate > 0 for rate in rates)
        assert row["a_over_b"] == pytest.approx(row["end_to_end"] / row["model_only"])
        assert row["a_over_c"] == pytest.approx(row["end_to_end"] / row["torchvision"])
        assert 0 < row["predicted_a_over_b"] < 1
        assert row["dataset_on"] == "cpu" and row["images"] == 10 * TRAIN_PER_CLASS
        assert set(row["first_step_s"]) == {"end_to_end", "model_only", "torchvision", "views_only"}


def test_learning_trains_the_planned_epoch_and_scores_both_encoders(smoke) -> None:
    record = smoke[0]["sections"]["learning"]
    steps_per_epoch = 10 * TRAIN_PER_CLASS // record["batch"]
    assert (record["epochs_done"], record["steps"]) == (1, steps_per_epoch)
    assert record["seconds_per_epoch"] == pytest.approx(record["train_seconds"])
    assert record["test_images"] == 10 * TEST_PER_CLASS
    for accuracy in (record["knn_random_init"], record["knn_trained"]):  # multiples of one query in 40
        assert 0 <= accuracy <= 1 and (accuracy * 40) == pytest.approx(round(accuracy * 40))
    assert math.isfinite(record["final_loss"])


def test_projection_sums_measured_cells_and_withholds_the_verdict(smoke) -> None:
    record = smoke[0]["sections"]["projection"]
    rows = record["rows"]
    assert tuple((r["method"], r["backbone"]) for r in rows) == gpu_suite.SMOKE.projection_grid
    for row in rows:  # hours = epochs x images / rate
        assert row["projected_hours"] == pytest.approx(
            record["epochs"] * record["epoch_images"] / row["images_per_second"] / 3600
        )
    totals = record["totals"]["fp32"]
    assert totals["grid_hours"] == pytest.approx(sum(row["projected_hours"] for row in rows))
    assert (totals["cells_measured"], totals["cells"], totals["complete"]) == (len(rows), 25, False)
    assert totals["speedup_vs_study"] is None and totals["meets_goal"].startswith("not known")
    assert record["skipped"] == {}  # the smoke run asks for fp32 alone


def test_projection_verdict_once_the_grid_is_complete() -> None:
    fast, slow = [{"projected_hours": 0.4}] * 25, [{"projected_hours": 0.6}] * 25
    assert gpu_suite.projection_totals(fast, 25, "NVIDIA H200")["meets_goal"] is True
    assert gpu_suite.projection_totals(slow, 25, "NVIDIA H100 80GB HBM3")["meets_goal"] is False
    assert gpu_suite.projection_totals(fast, 25, "NVIDIA H200")["speedup_vs_study"] == pytest.approx(25.0)
    assert "not an H100-class" in gpu_suite.projection_totals(fast, 25, "Tesla P100-PCIE-16GB")["meets_goal"]


def test_inference_latency_rows_and_modelled_energy(smoke) -> None:
    record = smoke[0]["sections"]["inference"]
    rows = {(r["backend"], r["batch_size"]) for r in record["latency"]}
    assert rows == {(backend, batch) for backend in ("eager", "channels_last") for batch in (1, 32)}
    assert all(r["median_ms"] > 0 and r["p90_ms"] >= r["median_ms"] for r in record["latency"])
    assert "cuda" in record["skipped"]["onnxruntime-cuda"]
    energy = record["energy"]
    assert (
        energy["source"] == "tdp-model"
        and energy["joules_per_image"] > 0
        and energy["gpu_joules_per_image"] == 0
    )


def test_markdown_shows_every_section_and_its_numbers(smoke) -> None:
    document, text, _ = smoke
    for title, _ in gpu_suite_report.SECTIONS.values():
        assert f"## {title}" in text
    first = document["sections"]["throughput"]["rows"][0]
    assert f"| fp32 | simclr | shufflenetv2 | {first['end_to_end']:,.1f} |" in text
    assert f"{document['sections']['learning']['knn_trained']:.3f}" in text
    assert "skipped onnxruntime-cuda" in text and "not known: 4 of 25 cells measured" in text


def context(subset: Path, out: Path, budget: timebox.Budget) -> gpu_suite.Context:
    """What run_suite builds before its first section, preloaded modules included."""
    gpu_suite.preload(torch.device("cpu"))
    document = {"mode": "smoke", "deadline_s": 1.0, "sections": {name: {} for name in gpu_suite.SECTIONS}}
    return gpu_suite.Context(
        gpu_suite.SMOKE, torch.device("cpu"), subset, out, budget, document, out, "suite"
    )


def test_a_section_stops_at_its_slice_and_says_what_it_did_not_reach(subset: Path, tmp_path: Path) -> None:
    with timebox.Budget(60) as budget:
        ctx = context(subset, tmp_path, budget)
        start = time.monotonic()
        gpu_suite.run_section(ctx, "throughput", 0.05)  # far less than one cell takes
        assert time.monotonic() - start < 5
        assert budget.left() > 50  # the global clock runs on for the next section
    record = json.loads((tmp_path / "suite.json").read_text())["sections"]["throughput"]
    assert record["status"] == "stopped at its time slice" and record["rows"] == []
    assert record["not_reached"] == [f"fp32 {method}-shufflenetv2" for method in gpu_suite.SMOKE.methods]
    assert "not reached in the time slice: fp32 simclr-shufflenetv2" in (tmp_path / "suite.md").read_text()


def test_the_global_deadline_ends_the_run_with_valid_files(subset: Path, tmp_path: Path) -> None:
    start = time.monotonic()
    ctx = gpu_suite.run_suite(gpu_suite.SMOKE, torch.device("cpu"), subset, tmp_path, deadline_s=0.3)
    assert time.monotonic() - start < 10
    document = json.loads((tmp_path / f"{ctx.stem}.json").read_text())
    statuses = [record["status"] for record in document["sections"].values()]
    assert statuses[-3:] == ["not run: the global deadline had passed"] * 3
    allowed = ("complete", "stopped at the global deadline", "not run: the global deadline had passed")
    assert set(statuses) <= set(allowed), document["sections"]
    assert "Status: not run: the global deadline had passed." in (tmp_path / f"{ctx.stem}.md").read_text()


def test_missing_subset_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        gpu_suite.parse_args(["--smoke", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")])
    assert stop.value.code == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert "no CIFAR-10 subset at" in message and "benchmarks/cifar_subset.py" in message
    assert not (tmp_path / "out").exists()  # nothing written before the input is checked
