"""Export from a real checkpoint: a run folder exports its LAST epoch; int8 on briefly trained SimCLR
features.

Needs the methods (written separately): skipped with the reason until SimCLR is registered.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from edgessl import __version__
from edgessl.checkpoints import save_checkpoint
from edgessl.cli import main
from edgessl.data.reading import read_split_arrays
from edgessl.export.metadata import read_metadata
from edgessl.export.options import ExportOptions
from edgessl.export.pipeline import export_checkpoint
from edgessl.runs import epoch_checkpoint_name

SIZE = 32
INT8_KNN_BOUND_TRAINED = (
    0.05  # |kNN(fp32) - kNN(int8)| after 2 SimCLR steps (barely trained), 200 test images
)


def simclr_or_skip(train, backbone: str):
    try:
        from edgessl.methods import build_method

        return build_method("simclr", backbone, SIZE, train.mean, train.std)
    except (ImportError, KeyError) as exc:
        pytest.skip(f"SimCLR is not available yet ({exc})")


@pytest.fixture(scope="module")
def run_folder(cifar10_small: Path, tmp_path_factory) -> tuple[Path, str]:
    spec = str(cifar10_small)
    train = read_split_arrays(spec, "train", image_size=SIZE)
    torch.manual_seed(0)
    method = simclr_or_skip(train, "squeezenet")
    optimizer = torch.optim.Adam(method.parameters(), lr=1e-3)
    images = torch.from_numpy(train.images)
    run = tmp_path_factory.mktemp("run")
    for epoch in (1, 2):
        method.train()
        # one SimCLR step per epoch (steps are slow on CPU)
        for batch in images[torch.randperm(len(images))[:16]].split(16):
            loss = method(batch).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        metadata = {
            "method": "simclr",
            "backbone": "squeezenet",
            "method_config": {},
            "train_config": {},
            "dataset": spec,
            "image_size": SIZE,
            "mean": list(train.mean),
            "std": list(train.std),
            "epoch": epoch,
            "step": epoch,
            "edgessl_version": __version__,
        }
        save_checkpoint(
            {"metadata": metadata, "model": method.state_dict()},
            run / "checkpoints" / epoch_checkpoint_name(epoch),
        )
    return run, spec


def test_run_folder_exports_last_epoch_with_int8_within_bound(run_folder, tmp_path):
    run, _ = run_folder
    result = export_checkpoint(run, ExportOptions(out_dir=tmp_path, int8=True, k=20))
    assert result.checkpoint.endswith("epoch_0002.pt") and result.metadata.epoch == 2
    assert result.files["fp32"].name == "simclr_squeezenet_e0002.onnx"
    assert read_metadata(result.files["fp32"]).method == "simclr"
    assert result.parity["fp32"].max_relative < 1e-4
    assert abs(result.int8.knn_drop) <= INT8_KNN_BOUND_TRAINED, result.int8


def test_cli_exports_checkpoint_file(run_folder, tmp_path, capsys):
    run, spec = run_folder
    checkpoint = run / "checkpoints" / epoch_checkpoint_name(1)
    assert (
        main(["export", str(checkpoint), "--out", str(tmp_path), "--data", spec, "--fixed-batch", "2"]) == 0
    )
    printed = capsys.readouterr().out
    assert "epoch 1" in printed and "relative" in printed
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "simclr_squeezenet_e0001.onnx",
        "simclr_squeezenet_e0001_b2.onnx",
    ]
    assert np.isfinite(read_metadata(tmp_path / "simclr_squeezenet_e0001.onnx").mean).all()
