"""Checkpoint sweeps: every checkpoint, in epoch order, resumable, with CSV and PNG."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from edgessl.checkpoints import load_checkpoint, save_checkpoint
from edgessl.errors import ConfigError, DataError
from edgessl.evaluation import evaluate_checkpoints, sweep_run


def test_sweep_is_ordered_by_epoch_resumes_and_writes_csv_and_png(
    tmp_path: Path, counters, write_run
) -> None:
    write_run(tmp_path)
    counters.tiny_data()
    counters.interrupt_at = 3
    with pytest.raises(KeyboardInterrupt):
        evaluate_checkpoints(tmp_path, "shapes10", ["knn"], device="cpu", k=10)
    assert counters.runs == [("knn", "epoch_0005.pt"), ("knn", "epoch_0010.pt")]
    assert sorted(p.name for p in (tmp_path / "eval").glob("*.json")) == [
        "knn_epoch_0005.json",
        "knn_epoch_0010.json",
    ]

    counters.interrupt_at, counters.runs, counters.loads, counters.data_loads = None, [], [], []
    result = sweep_run(tmp_path, "shapes10", ["knn"], device="cpu", k=10)
    assert counters.data_loads == [("shapes10", "train"), ("shapes10", "test")]  # once per sweep
    assert counters.runs == [("knn", "epoch_0015.pt"), ("knn", "epoch_0020.pt")]  # the first two were reused
    assert counters.loads == ["epoch_0015.pt", "epoch_0020.pt"]
    assert [r["epoch"] for r in result.records] == [5, 10, 15, 20]
    assert [Path(r["checkpoint"]).name for r in result.records] == [
        f"epoch_{e:04d}.pt" for e in (5, 10, 15, 20)
    ]

    with result.csv_files["knn"].open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["epoch"]) for row in rows] == [5, 10, 15, 20]
    assert [float(row["accuracy"]) for row in rows] == [r["accuracy"] for r in result.records]
    for row in rows:  # each accuracy's test-set interval: SciPy's Wilson interval of its correct count
        from scipy.stats import binomtest

        total = int(row["test_images"])
        wilson = binomtest(round(float(row["accuracy"]) * total), total).proportion_ci(method="wilson")
        assert (float(row["ci_low"]), float(row["ci_high"])) == pytest.approx((wilson.low, wilson.high))
    assert (
        all(row["test_images"] == rows[-1]["test_images"] for row in rows)
        and int(rows[-1]["test_images"]) > 0
    )
    with Image.open(result.png_files["knn"]) as picture:
        assert picture.size == (600, 400)
    saved = json.loads((tmp_path / "eval" / "knn_epoch_0015.json").read_text())
    assert saved["epoch"] == 15 and saved["details"]["k"] == 10 and saved["options"]["k"] == 10

    counters.runs = []
    again = evaluate_checkpoints(tmp_path, "shapes10", ["knn"], device="cpu", k=10)
    assert counters.runs == [] and [r["accuracy"] for r in again] == [r["accuracy"] for r in result.records]
    evaluate_checkpoints(tmp_path / "checkpoints" / "epoch_0010.pt", "shapes10", ["knn"], device="cpu", k=3)
    assert counters.runs == [("knn", "epoch_0010.pt")]  # other settings: evaluated again, in RUN/eval


def test_rewritten_checkpoint_is_evaluated_again(tmp_path: Path, counters, write_run) -> None:
    write_run(tmp_path)
    counters.tiny_data()
    only = tmp_path / "checkpoints" / "epoch_0005.pt"
    evaluate_checkpoints(only, "shapes10", ["knn"], device="cpu", k=5)
    state = load_checkpoint(only)
    state["model"] = {
        name: value + 0.5 if value.is_floating_point() else value for name, value in state["model"].items()
    }
    save_checkpoint(state, only)  # e.g. a run restarted from scratch in the same folder
    evaluate_checkpoints(only, "shapes10", ["knn"], device="cpu", k=5)
    assert counters.runs == [("knn", "epoch_0005.pt")] * 2


def test_options_must_belong_to_a_requested_protocol(tmp_path: Path, write_run) -> None:
    write_run(tmp_path)
    with pytest.raises(ConfigError, match="epochs"):
        evaluate_checkpoints(tmp_path, "shapes10", ["knn"], epochs=3)


def test_checkpoints_of_a_real_method_load_and_evaluate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, colour_data
) -> None:
    """The real path: save_checkpoint of a Method, load_representation, kNN on its features."""
    from edgessl.evaluation import sweep as sweep_module
    from edgessl.methods import build_method

    size, mean, std = 32, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    for epoch in (2, 1):
        torch.manual_seed(epoch)
        method = build_method("rotnet", "shufflenetv2_x0_5", size, mean, std)
        metadata = {
            "method": "rotnet", "backbone": "shufflenetv2_x0_5", "method_config": {}, "train_config": {},
            "dataset": "colours", "image_size": size, "mean": list(mean), "std": list(std), "epoch": epoch,
            "step": epoch, "train_seconds": 0.0, "energy": {}, "edgessl_version": "test",
        }  # fmt: skip
        save_checkpoint(
            {"metadata": metadata, "model": method.state_dict()},
            tmp_path / f"checkpoints/epoch_{epoch:04d}.pt",
        )
    sizes = []

    def tiny(spec, root=None, image_size=None):
        sizes.extend([image_size, image_size])
        return colour_data("train", 6, image_size, seed=0), colour_data("test", 6, image_size, seed=1)

    monkeypatch.setattr(sweep_module, "load_labelled_splits", tiny)
    records = evaluate_checkpoints(tmp_path, "colours", ["knn"], device="cpu", k=5)
    assert [(r["epoch"], r["method"], r["backbone"]) for r in records] == [
        (1, "rotnet", "shufflenetv2_x0_5"), (2, "rotnet", "shufflenetv2_x0_5")
    ]  # fmt: skip
    assert sizes == [32, 32] and all(0.0 <= r["accuracy"] <= 1.0 for r in records)


def write_cifar10_files(root: Path, seed: int, test_images: int = 10) -> Path:
    """``root/cifar-10-batches-bin`` in the official binary format: 4 random images per train file."""
    folder = root / "cifar-10-batches-bin"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)

    def records(count: int) -> bytes:
        labels = (np.arange(count) % 10).astype(np.uint8)[:, None]
        return np.concatenate([labels, rng.integers(0, 256, (count, 3072), dtype=np.uint8)], axis=1).tobytes()

    for batch in range(1, 6):
        (folder / f"data_batch_{batch}.bin").write_bytes(records(4))
    (folder / "test_batch.bin").write_bytes(records(test_images))
    return root


def test_d6_a_saved_result_is_reused_only_for_the_same_data(tmp_path: Path, counters, write_run) -> None:
    write_run(tmp_path / "run")
    only = tmp_path / "run" / "checkpoints" / "epoch_0005.pt"
    a, b = write_cifar10_files(tmp_path / "a", seed=0), write_cifar10_files(tmp_path / "b", seed=1)
    first = evaluate_checkpoints(only, "cifar10", ["knn"], a, device="cpu", k=5)
    shutil.copytree(a, tmp_path / "a-moved")
    moved = evaluate_checkpoints(only, "cifar10", ["knn"], tmp_path / "a-moved", device="cpu", k=5)
    assert len(counters.runs) == 1 and moved == first  # the same data elsewhere: reused
    evaluate_checkpoints(only, "cifar10", ["knn"], b, device="cpu", k=5)  # other data, same spec
    assert len(counters.runs) == 2
    test_file = b / "cifar-10-batches-bin" / "test_batch.bin"
    test_file.write_bytes(b"")
    with pytest.raises(DataError, match="is truncated"):
        evaluate_checkpoints(only, "cifar10", ["knn"], b, device="cpu", k=5)
    write_cifar10_files(b, seed=1, test_images=9)  # one test image fewer
    evaluate_checkpoints(only, "cifar10", ["knn"], b, device="cpu", k=5)
    assert len(counters.runs) == 3
