"""Outside weights: torchvision / timm / edgessl layouts, wrappers, and one-line errors for what does not
fit."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
import torchvision
from safetensors.torch import save_file

from edgessl.backbones import build_backbone, load_backbone_weights
from edgessl.errors import CheckpointError


def features_of(encoder: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return encoder.eval()(x)


@pytest.mark.parametrize(
    ("backbone", "make"),
    [
        ("shufflenetv2", lambda: torchvision.models.shufflenet_v2_x0_5()),
        ("squeezenet", lambda: torchvision.models.squeezenet1_1()),
        ("mobilenetv2", lambda: torchvision.models.mobilenet_v2()),  # its encoder keys equal torchvision's
    ],
)
def test_torchvision_state_dict_loads_every_tensor_and_skips_the_classifier(
    backbone, make, tmp_path: Path
) -> None:
    torch.manual_seed(1)
    source = make().eval()
    path = tmp_path / "w.safetensors"
    save_file(source.state_dict(), path)
    encoder = build_backbone(backbone)
    loaded = load_backbone_weights(encoder, path)
    assert loaded.layout.startswith("torchvision") and loaded.tensors == len(encoder.state_dict())
    assert loaded.skipped and all(key.startswith(("fc.", "classifier.")) for key in loaded.skipped)
    for key, tensor in source.state_dict().items():
        if key not in loaded.skipped:
            assert torch.equal(encoder.state_dict()[encoder.weight_layout.to_encoder[key]], tensor), key


def test_timm_state_dict_gives_timms_features(tmp_path: Path) -> None:
    torch.manual_seed(2)
    # with its 1000-class classifier
    source = timm.create_model("efficientnet_lite0", pretrained=False).eval()
    path = tmp_path / "lite0.safetensors"
    save_file(source.state_dict(), path)
    encoder = build_backbone("efficientnet_lite0")
    loaded = load_backbone_weights(encoder, path)
    assert loaded.layout == "timm efficientnet_lite0" and loaded.skipped == (
        "classifier.bias",
        "classifier.weight",
    )
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        expected = source.forward_head(source.forward_features(x), pre_logits=True)
    torch.testing.assert_close(features_of(encoder, x), expected)


def test_pth_with_ddp_prefix_and_nesting_and_the_encoders_own_layout(tmp_path: Path) -> None:
    torch.manual_seed(3)
    source = torchvision.models.resnet18()
    path = tmp_path / "ddp.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}, "epoch": 90}, path)
    encoder = build_backbone("resnet18")
    assert load_backbone_weights(encoder, path).layout == "torchvision resnet18"
    own = tmp_path / "own.safetensors"
    save_file(encoder.state_dict(), own)
    again = build_backbone("resnet18")
    assert load_backbone_weights(again, own).layout == "edgessl encoder"
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(features_of(again, x), features_of(encoder, x))


def test_wrong_backbone_lists_missing_and_unexpected_keys_on_one_line(tmp_path: Path) -> None:
    path = tmp_path / "r18.safetensors"
    save_file(torchvision.models.resnet18().state_dict(), path)
    with pytest.raises(CheckpointError) as error:
        load_backbone_weights(build_backbone("squeezenet"), path)
    message = str(error.value)
    assert "\n" not in message and "missing 50 keys" in message and "unexpected 122 keys" in message
    assert "bn1.bias" in message and "and 118 more" in message


def test_wrong_shape_and_unsafe_or_foreign_files_are_refused(tmp_path: Path) -> None:
    state = torchvision.models.resnet18().state_dict()
    state["conv1.weight"] = torch.zeros(64, 3, 3, 3)
    shaped = tmp_path / "shape.safetensors"
    save_file(state, shaped)
    with pytest.raises(
        CheckpointError,
        match=r"wrong shape for 1 keys \(features.0.weight \(64, 3, 3, 3\) vs \(64, 3, 7, 7\)\)",
    ):
        load_backbone_weights(build_backbone("resnet18"), shaped)
    pickled = tmp_path / "pickled.pth"
    # a module, not a tensor: weights_only refuses it
    torch.save({"conv1.weight": torch.nn.Conv2d(3, 64, 7)}, pickled)
    with pytest.raises(CheckpointError, match="cannot read weights"):
        load_backbone_weights(build_backbone("resnet18"), pickled)
    edgessl = tmp_path / "run.pt"
    torch.save({"format": "edgessl-checkpoint", "model": {}}, edgessl)
    with pytest.raises(CheckpointError, match="edgessl checkpoint"):
        load_backbone_weights(build_backbone("resnet18"), edgessl)
    with pytest.raises(CheckpointError, match="not found"):
        load_backbone_weights(build_backbone("resnet18"), tmp_path / "missing.safetensors")
