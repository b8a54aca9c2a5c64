"""SqueezeNet (Iandola et al., 2016) from torchvision.

``squeezenet`` is v1.1, the variant closest to the study's 3.20e8 FLOPs row. The
classifier (dropout, 1x1 conv to 1000 classes) is replaced by global average pooling
of the last fire module, giving 512 features.
"""

from __future__ import annotations

from collections.abc import Callable

from torchvision.models import SqueezeNet, squeezenet1_0, squeezenet1_1

from edgessl.backbones import BACKBONES
from edgessl.backbones.base import BackboneSpec, Encoder, replace_first_conv

_FEATURE_DIM = 512  # channels out of the last fire module in both versions


def _squeezenet_encoder(name: str, make: Callable[..., SqueezeNet], in_channels: int) -> Encoder:
    model = make(weights=None)
    replace_first_conv(model.features, in_channels)
    spec = BackboneSpec(name, f"torchvision {make.__name__}", in_study=name == "squeezenet")
    return Encoder(model.features, _FEATURE_DIM, spec, source=model)


@BACKBONES.register("squeezenet")
def build_squeezenet(in_channels: int = 3) -> Encoder:
    return _squeezenet_encoder("squeezenet", squeezenet1_1, in_channels)


@BACKBONES.register("squeezenet1_1")
def build_squeezenet1_1(in_channels: int = 3) -> Encoder:
    return _squeezenet_encoder("squeezenet1_1", squeezenet1_1, in_channels)


@BACKBONES.register("squeezenet1_0")
def build_squeezenet1_0(in_channels: int = 3) -> Encoder:
    return _squeezenet_encoder("squeezenet1_0", squeezenet1_0, in_channels)
