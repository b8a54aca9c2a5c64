"""How the library an encoder was built from names its tensors, recorded when the encoder is built.

:mod:`edgessl.backbones.weights` uses it to accept state dicts saved by torchvision or timm.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class WeightLayout:
    """How the library an encoder came from names its tensors."""

    library: str  # "torchvision resnet18", "timm efficientnet_lite0"
    to_encoder: dict[str, str]  # library key -> encoder key
    # library modules the encoder dropped (its classifier): "fc.", "classifier."
    head_prefixes: tuple[str, ...]


def weight_layout(
    library: str, source: nn.Module, encoder: nn.Module, head_prefixes: tuple[str, ...] = ()
) -> WeightLayout:
    """The layout of ``source`` (the library's whole network) as seen from ``encoder``, matched by tensor
    identity.

    Library keys whose tensor the encoder does not hold belong to modules it dropped;
    their top-level module names become ``head_prefixes`` (with any given explicitly, as
    timm builds its networks without a classifier).
    """
    by_tensor = {id(tensor): key for key, tensor in encoder.state_dict(keep_vars=True).items()}
    to_encoder, dropped = {}, set(head_prefixes)
    for key, tensor in source.state_dict(keep_vars=True).items():
        if id(tensor) in by_tensor:
            to_encoder[key] = by_tensor[id(tensor)]
        else:
            dropped.add(key.split(".")[0] + ".")
    return WeightLayout(library, to_encoder, tuple(sorted(dropped)))
