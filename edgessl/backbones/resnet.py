"""ResNet (He et al., 2016) from torchvision; ``resnet18`` is the study's heavy baseline."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn
from torchvision.models import ResNet, resnet18, resnet34, resnet50

from edgessl.backbones import BACKBONES
from edgessl.backbones.base import BackboneSpec, Encoder, replace_first_conv


def _resnet_encoder(name: str, make: Callable[..., ResNet], in_channels: int, in_study: bool) -> Encoder:
    model = make(weights=None)
    replace_first_conv(model, in_channels)
    features = nn.Sequential(
        model.conv1,
        model.bn1,
        model.relu,
        model.maxpool,
        model.layer1,
        model.layer2,
        model.layer3,
        model.layer4,
    )
    return Encoder(
        features,
        model.fc.in_features,
        BackboneSpec(name, f"torchvision {make.__name__}", in_study),
        source=model,
    )


@BACKBONES.register("resnet18")
def build_resnet18(in_channels: int = 3) -> Encoder:
    return _resnet_encoder("resnet18", resnet18, in_channels, in_study=True)


@BACKBONES.register("resnet34")
def build_resnet34(in_channels: int = 3) -> Encoder:
    return _resnet_encoder("resnet34", resnet34, in_channels, in_study=False)


@BACKBONES.register("resnet50")
def build_resnet50(in_channels: int = 3) -> Encoder:
    return _resnet_encoder("resnet50", resnet50, in_channels, in_study=False)
