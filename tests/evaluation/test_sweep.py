"""Checkpoint sweeps: every checkpoint, in epoch order, resumable, with CSV and PNG."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from edgessl.errors import ConfigError
from edgessl.evaluation import evaluate_checkpoints, sweep_run
from edgessl.evaluation import sweep as sweep_module
from edgessl.training.checkpoint import LoadedRepresentation, load_checkpoint, save_checkpoint

EPOCHS = (10, 5, 20, 15)  # written out of order: the sweep must sort by epoch
IMAGE_SIZE = 16


def write_run(run: Path, make_representation) -> None:
    """A run folder with four epoch checkpoints and last.pt, each holding different weights."""
    for epoch in (*EPOCHS, None):
        model = make_representation(seed=epoch or 20)
        metadata = {
            "method": "tiny", "backbone": "tinyconv", "method_config": {}, "train_config": {}, "dataset": "shapes10",
            "image_size": IMAGE_SIZE, "mean": [0.5] * 3, "std": [0.25] * 3, "epoch": epoch or 20, "step": 0,
            "train_seconds": 1.0, "energy": {}, "edgessl_version": "test",
        }
        name = f"epoch_{epoch:04d}.pt" if epoch else "last.pt"
        save_checkpoint({"metadata": metadata, "model": model.state_dict()}, run / "checkpoints" / name)


class Counters:
    """Counts checkpoint loads and protocol runs; can interrupt the sweep at the n-th run."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, make_representation) -> None:
        self.loads: list[str] = []
        self.runs: list[tuple[str, str]] = []
        self.interrupt_at: int | None = None
        real_evaluate = sweep_module.evaluate_representation

        def load(path: Path) -> LoadedRepresentation:
            self.loads.append(Path(path).name)
            state = load_checkpoint(path)
            model = make_representation()
            model.load_state_dict(state["model"])
            return LoadedRepresentation(model.eval(), {**state["metadata"], "checkpoint": str(path)})

        def evaluate(model, train, test, protocol, device=None, **options):
            if self.interrupt_at is not None and len(self.runs) + 1 == self.interrupt_at:
                raise KeyboardInterrupt
            self.runs.append((protocol, self.loads[-1]))
            return real_evaluate(model, train, test, protocol, device, **options)

        monkeypatch.setattr(sweep_module, "load_representation", load)
        monkeypatch.setattr(sweep_module, "evaluate_representation", evaluate)


def test_sweep_is_ordered_by_epoch_resumes_and_writes_csv_and_png(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_representation) -> None:
    write_run(tmp_path, make_representation)
    counters = Counters(monkeypatch, make_representation)
    counters.interrupt_at = 3
    with pytest.raises(KeyboardInterrupt):
        evaluate_checkpoints(tmp_path, "shapes10", ["knn"], device="cpu", k=10)
    assert counters.runs == [("knn", "epoch_0005.pt"), ("knn", "epoch_0010.pt")]
    assert sorted(p.name for p in (tmp_path / "eval").glob("*.json")) == ["knn_epoch_0005.json", "knn_epoch_0010.json"]

    counters.interrupt_at, counters.runs, counters.loads = None, [], []
    result = sweep_run(tmp_path, "shapes10", ["knn"], device="cpu", k=10)
    assert counters.runs == [("knn", "epoch_0015.pt"), ("knn", "epoch_0020.pt")]  # the first two were reused
    assert counters.loads == ["epoch_0015.pt", "epoch_0020.pt"]
    assert [r["epoch"] for r in result.records] == [5, 10, 15, 20]
    assert len({r["accuracy"] for r in result.records}) > 1  # different weights, different results

    with result.csv_files["knn"].open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["epoch"]) for row in rows] == [5, 10, 15, 20]
    assert [float(row["accuracy"]) for row in rows] == [r["accuracy"] for r in result.records]
    with Image.open(result.png_files["knn"]) as picture:
        assert picture.size == (600, 400)
    saved = json.loads((tmp_path / "eval" / "knn_epoch_0015.json").read_text())
    assert saved["epoch"] == 15 and saved["details"]["k"] == 10 and saved["options"]["k"] == 10

    counters.runs = []
    again = evaluate_checkpoints(tmp_path, "shapes10", ["knn"], device="cpu", k=10)
    assert counters.runs == [] and [r["accuracy"] for r in again] == [r["accuracy"] for r in result.records]
    evaluate_checkpoints(tmp_path / "checkpoints" / "epoch_0010.pt", "shapes10", ["knn"], device="cpu", k=3)
    assert counters.runs == [("knn", "epoch_0010.pt")]  # other settings: evaluated again, in RUN/eval


def test_rewritten_checkpoint_is_evaluated_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_representation) -> None:
    write_run(tmp_path, make_representation)
    counters = Counters(monkeypatch, make_representation)
    only = tmp_path / "checkpoints" / "epoch_0005.pt"
    evaluate_checkpoints(only, "shapes10", ["knn"], device="cpu", k=5)
    state = load_checkpoint(only)
    state["model"] = {name: value + 0.5 if value.is_floating_point() else value for name, value in state["model"].items()}
    save_checkpoint(state, only)  # e.g. a run restarted from scratch in the same folder
    evaluate_checkpoints(only, "shapes10", ["knn"], device="cpu", k=5)
    assert counters.runs == [("knn", "epoch_0005.pt")] * 2


def test_options_must_belong_to_a_requested_protocol(tmp_path: Path, make_representation) -> None:
    write_run(tmp_path, make_representation)
    with pytest.raises(ConfigError, match="epochs"):
        evaluate_checkpoints(tmp_path, "shapes10", ["knn"], epochs=3)
