"""Backbones from timm: EfficientNet-lite0 (the study's) and any ``timm:<name>``.

timm builds the network without a head (``num_classes=0``) and pools globally, so every
timm model fits the :class:`Encoder` contract; ``pretrained=False`` keeps tests and
users off the network.
"""

from __future__ import annotations

import timm
import torch
from torch import nn

from edgessl.backbones import BACKBONES
from edgessl.backbones.base import BackboneSpec, Encoder
from edgessl.errors import UnknownNameError


class _TimmFeatures(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(images)


class _TimmHead(nn.Module):
    """timm's own pooling (and conv head, for MobileNetV3/V4) without the classifier.

    Holds the model through a plain attribute so its weights are registered once, by
    ``_TimmFeatures``.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.__dict__["_model"] = model

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self._model.forward_head(features, pre_logits=True)


def build_timm_encoder(model_name: str, in_channels: int = 3, registered_as: str | None = None) -> Encoder:
    if not timm.is_model(model_name):
        raise UnknownNameError(
            "timm model",
            model_name,
            timm.list_models(),
            hint='List them all with: python -c "import timm; print(timm.list_models())"',
            listed=5,
        )
    model = timm.create_model(model_name, pretrained=False, num_classes=0, in_chans=in_channels)
    name = registered_as or f"timm:{model_name}"
    spec = BackboneSpec(name, f"timm {model_name}", in_study=registered_as == "efficientnet_lite0")
    # Models with a conv head (MobileNetV3/V4) pool to head_hidden_size, not num_features.
    feature_dim = getattr(model, "head_hidden_size", None) or model.num_features
    # built without it (num_classes=0); its weights are skipped
    classifier = model.pretrained_cfg.get("classifier")
    heads = (f"{classifier}.",) if classifier else ()
    return Encoder(
        _TimmFeatures(model), feature_dim, spec, pool=_TimmHead(model), source=model, head_prefixes=heads
    )


@BACKBONES.register("efficientnet_lite0")
def build_efficientnet_lite0(in_channels: int = 3) -> Encoder:
    return build_timm_encoder("efficientnet_lite0", in_channels, registered_as="efficientnet_lite0")
