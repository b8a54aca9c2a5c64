"""A torchvision ResNet-18 state dict saved as safetensors exports, evaluates and profiles through the CLI.

The reference is torchvision's own network (its classifier replaced by the identity)
on the same real CIFAR-10 images, so a key that was mapped wrong cannot pass.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from safetensors.torch import save_file

from edgessl.cli import main
from edgessl.data.reading import read_split_arrays
from edgessl.export.metadata import read_metadata
from edgessl.export.ort_eval import knn_predict, onnx_features, open_session

SIZE, K = 32, 20
IMAGENET = ("0.485,0.456,0.406", "0.229,0.224,0.225")


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(0)
    network = torchvision.models.resnet18().eval()
    path = tmp_path_factory.mktemp("weights") / "resnet18_local.safetensors"
    save_file(network.state_dict(), path)
    network.fc = torch.nn.Identity()
    return path, network


def torchvision_features(network: torch.nn.Module, images: np.ndarray) -> np.ndarray:
    mean, std = (torch.tensor([float(v) for v in text.split(",")]).view(1, 3, 1, 1) for text in IMAGENET)
    with torch.no_grad():
        return network((torch.from_numpy(images).float() / 255.0 - mean) / std).numpy()


def test_safetensors_resnet18_exports_and_evaluates(
    weights, cifar10_small: Path, tmp_path: Path, capsys
) -> None:
    path, network = weights
    spec = str(cifar10_small)
    out = tmp_path / "exported"
    normalisation = ["--mean", IMAGENET[0], "--std", IMAGENET[1]]
    assert (
        main(
            [
                "export",
                "--weights",
                str(path),
                "--backbone",
                "resnet18",
                "--data",
                spec,
                "--image-size",
                str(SIZE),
                "--out",
                str(out),
                *normalisation,
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert (
        "120 tensors in torchvision resnet18 layout" in printed and "skipped 2 classifier tensors" in printed
    )
    exported = out / "resnet18_local_resnet18.onnx"
    meta = read_metadata(exported)
    assert (meta.backbone, meta.method, meta.image_size, meta.checkpoint) == (
        "resnet18",
        "weights",
        SIZE,
        str(path),
    )
    test = read_split_arrays(spec, "test", image_size=SIZE)
    expected = torchvision_features(network, test.images[:32])
    got = onnx_features(open_session(exported), test.images[:32])
    assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max()

    assert (
        main(
            [
                "eval",
                "--weights",
                str(path),
                "--backbone",
                "resnet18",
                "--data",
                spec,
                "--image-size",
                str(SIZE),
                "--protocol",
                "knn",
                "--k",
                str(K),
                "--device",
                "cpu",
                "--json",
                *normalisation,
            ]
        )
        == 0
    )
    record = json.loads(capsys.readouterr().out)[0]
    train = read_split_arrays(spec, "train", image_size=SIZE)
    predictions = knn_predict(
        torchvision_features(network, train.images),
        train.labels,
        torchvision_features(network, test.images),
        10,
        k=K,
    )
    assert record["accuracy"] == pytest.approx(
        float((predictions == test.labels).mean()), abs=1 / len(test.labels)
    )
    assert record["backbone"] == "resnet18" and record["checkpoint_file"] == path.name


def test_profile_records_the_weights_and_bad_weights_are_one_line(weights, tmp_path: Path, capsys) -> None:
    path, _ = weights
    report_file = tmp_path / "profile.json"
    assert (
        main(
            [
                "profile",
                "--backbone",
                "resnet18",
                "--weights",
                str(path),
                "--image-size",
                "32",
                "--batch-sizes",
                "1",
                "--backends",
                "eager",
                "--repeats",
                "1",
                "--warmup",
                "0",
                "--threads",
                "1",
                "--method",
                "none",
                "--json",
                str(report_file),
            ]
        )
        == 0
    )
    assert json.loads(report_file.read_text())["backbones"][0]["weights"].startswith(
        f"{path.name}: 120 tensors"
    )
    assert main(["eval", "--weights", str(path), "--backbone", "mobilenetv2", "--data", "shapes10"]) == 1
    err = capsys.readouterr().err.strip()
    assert (
        len(err.splitlines()) == 1
        and "does not fit backbone 'mobilenetv2'" in err
        and "missing 312 keys" in err
    )
    out = tmp_path / "never"
    # no --backbone
    assert main(["export", "--weights", str(path), "--data", "shapes10", "--out", str(out)]) == 2
    assert (
        main(
            [
                "export",
                "--weights",
                str(path),
                "--backbone",
                "resnet18",
                "--data",
                "shapes10",
                "--mean",
                "0.5,0.5",
                "--std",
                "1,1,1",
                "--out",
                str(out),
            ]
        )
        == 2
    )
    assert "--mean takes three numbers" in capsys.readouterr().err
    assert not out.exists()
