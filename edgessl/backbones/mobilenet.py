"""MobileNetV2 (Sandler et al., 2018), width 1.0: torchvision ``mobilenet_v2``."""

from __future__ import annotations

from torchvision.models import mobilenet_v2

from edgessl.backbones import BACKBONES
from edgessl.backbones.base import BackboneSpec, Encoder, replace_first_conv


@BACKBONES.register("mobilenetv2")
def build_mobilenetv2(in_channels: int = 3) -> Encoder:
    model = mobilenet_v2(weights=None)
    replace_first_conv(model.features, in_channels)
    spec = BackboneSpec("mobilenetv2", "torchvision mobilenet_v2 (width 1.0)", in_study=True)
    return Encoder(model.features, model.last_channel, spec, source=model)
