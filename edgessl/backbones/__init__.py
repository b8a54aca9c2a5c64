"""Backbone registry: ``build_backbone(name)`` returns a randomly initialised :class:`Encoder`.

Registered names are the study's five networks in the variants it measured, further
torchvision variants, and any timm model as ``timm:<name>``.
"""

from __future__ import annotations

from collections.abc import Callable

from edgessl.backbones.base import BackboneSpec, Encoder, replace_first_conv
from edgessl.backbones.weights import LoadedWeights, load_backbone_weights, weights_representation
from edgessl.registry import Registry

EncoderFactory = Callable[[int], Encoder]  # in_channels -> Encoder

TIMM_PREFIX = "timm:"
BACKBONES: Registry[EncoderFactory] = Registry(
    "backbone", hint=f"Any timm model works as {TIMM_PREFIX}<name>."
)

# The study's FLOPs row of Table 1: multiply-accumulates at 224x224 (thop counts MACs).
STUDY_MACS_224: dict[str, float] = {
    "efficientnet_lite0": 3.90e8,
    "mobilenetv2": 3.27e8,
    "resnet18": 1.80e9,
    "shufflenetv2": 4.01e7,
    "squeezenet": 3.20e8,
}


def _register_families() -> None:
    # Importing a family module registers its names; kept in one place so the
    # registry is complete whichever entry point is used.
    from edgessl.backbones import mobilenet, resnet, shufflenet, squeezenet, timm_models  # noqa: F401


def build_backbone(name: str, in_channels: int = 3) -> Encoder:
    """A fresh, randomly initialised encoder for a registered name or ``timm:<model>``."""
    _register_families()
    if name.startswith(TIMM_PREFIX):
        from edgessl.backbones.timm_models import build_timm_encoder

        return build_timm_encoder(name[len(TIMM_PREFIX) :], in_channels)
    return BACKBONES.get(name)(in_channels)


def backbone_names() -> list[str]:
    _register_families()
    return BACKBONES.names()


__all__ = [
    "BACKBONES",
    "STUDY_MACS_224",
    "BackboneSpec",
    "Encoder",
    "LoadedWeights",
    "backbone_names",
    "build_backbone",
    "load_backbone_weights",
    "replace_first_conv",
    "weights_representation",
]
