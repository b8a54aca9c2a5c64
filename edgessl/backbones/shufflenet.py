"""ShuffleNetV2 (Ma et al., 2018) from torchvision.

``shufflenetv2`` is the x0.5 width: its 4.1e7 MACs at 224x224 match the study's
FLOPs row (4.01e7); the x1.0 network would be 1.5e8.
"""

from __future__ import annotations

from torch import nn
from torchvision.models import (
    shufflenet_v2_x0_5,
    shufflenet_v2_x1_0,
    shufflenet_v2_x1_5,
    shufflenet_v2_x2_0,
)

from edgessl.backbones import BACKBONES
from edgessl.backbones.base import BackboneSpec, Encoder, replace_first_conv

_WIDTHS = {
    "x0_5": shufflenet_v2_x0_5,
    "x1_0": shufflenet_v2_x1_0,
    "x1_5": shufflenet_v2_x1_5,
    "x2_0": shufflenet_v2_x2_0,
}


def _shufflenet_encoder(name: str, width: str, in_channels: int) -> Encoder:
    make = _WIDTHS[width]
    model = make(weights=None)
    replace_first_conv(model, in_channels)
    features = nn.Sequential(
        model.conv1, model.maxpool, model.stage2, model.stage3, model.stage4, model.conv5
    )
    spec = BackboneSpec(name, f"torchvision {make.__name__}", in_study=name == "shufflenetv2")
    return Encoder(features, model.fc.in_features, spec, source=model)


def _register(name: str, width: str) -> None:
    BACKBONES.register(name)(lambda in_channels=3: _shufflenet_encoder(name, width, in_channels))


_register("shufflenetv2", "x0_5")
for _width in _WIDTHS:
    _register(f"shufflenetv2_{_width}", _width)
