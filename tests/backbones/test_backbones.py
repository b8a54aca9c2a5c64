"""Backbone registry: shapes, feature dims, input channels, names and errors."""

from __future__ import annotations

import pytest
import torch

from edgessl.backbones import backbone_names, build_backbone
from edgessl.errors import UnknownNameError

STUDY_FEATURE_DIMS = {
    "efficientnet_lite0": 1280,
    "mobilenetv2": 1280,
    "resnet18": 512,
    "shufflenetv2": 1024,
    "squeezenet": 512,
}


@pytest.mark.parametrize("name", backbone_names())
def test_every_backbone_pools_to_its_feature_dim(name: str) -> None:
    encoder = build_backbone(name).eval()
    with torch.no_grad():
        features = encoder(torch.randn(2, 3, 64, 64))
    assert features.shape == (2, encoder.feature_dim)
    assert torch.isfinite(features).all()


@pytest.mark.parametrize(("name", "dim"), STUDY_FEATURE_DIMS.items())
def test_study_backbones_have_the_studied_feature_dims(name: str, dim: int) -> None:
    encoder = build_backbone(name)
    assert encoder.feature_dim == dim
    assert encoder.spec.in_study


def test_study_names_are_the_variants_the_study_measured() -> None:
    assert build_backbone("shufflenetv2").spec.variant == "torchvision shufflenet_v2_x0_5"
    assert build_backbone("squeezenet").spec.variant == "torchvision squeezenet1_1"
    assert build_backbone("efficientnet_lite0").spec.variant == "timm efficientnet_lite0"
    assert not build_backbone("shufflenetv2_x1_0").spec.in_study


@pytest.mark.parametrize("in_channels", [1, 2])
@pytest.mark.parametrize("name", list(STUDY_FEATURE_DIMS))
def test_backbones_accept_other_channel_counts(name: str, in_channels: int) -> None:
    encoder = build_backbone(name, in_channels=in_channels).eval()
    with torch.no_grad():
        spatial = encoder.forward_spatial(torch.randn(2, in_channels, 64, 64))
        pooled = encoder(torch.randn(2, in_channels, 64, 64))
    assert spatial.ndim == 4 and spatial.shape[0] == 2
    assert pooled.shape == (2, encoder.feature_dim)


def test_timm_prefix_builds_any_timm_model_without_download() -> None:
    encoder = build_backbone("timm:mobilenetv4_conv_small").eval()
    with torch.no_grad():
        assert encoder(torch.randn(1, 3, 64, 64)).shape == (1, encoder.feature_dim)
    assert encoder.spec.name == "timm:mobilenetv4_conv_small"


def test_random_initialisation_differs_between_builds() -> None:
    first, second = build_backbone("shufflenetv2"), build_backbone("shufflenetv2")
    weight_first = next(first.parameters())
    assert weight_first.shape == next(second.parameters()).shape
    assert not torch.equal(weight_first, next(second.parameters()))


def test_unknown_backbone_names_the_closest_match() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'shufflenetv2'") as error:
        build_backbone("shufflenet_v2")
    assert "timm:<name>" in str(error.value)


def test_unknown_timm_model_is_a_user_error() -> None:
    with pytest.raises(UnknownNameError, match="unknown timm model 'mobilenetv9_tiny'"):
        build_backbone("timm:mobilenetv9_tiny")
