"""The encoder contract every backbone fulfils."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from edgessl.backbones.layout import WeightLayout, weight_layout
from edgessl.errors import ConfigError

LARGEST_CHECKED_SIDE = 256  # sides tried when naming the smallest a network accepts


@dataclass(frozen=True)
class BackboneSpec:
    """What a registered backbone name stands for, shown by ``edgessl backbones``."""

    name: str
    variant: str  # the exact architecture, e.g. "torchvision shufflenet_v2_x0_5"
    in_study: bool = False  # one of the five networks the reference study measured


class Encoder(nn.Module):
    """Maps a normalised float batch (N, C, H, W) to pooled features (N, feature_dim).

    ``features`` keeps the spatial map (N, feature_dim, h, w) for methods that predict
    per position (Split-Brain); ``pool`` reduces it. Classifier heads are removed;
    weights are randomly initialised, never downloaded. ``source`` is the library network
    the modules came from: its key names are recorded as ``weight_layout`` so that
    :func:`~edgessl.backbones.load_backbone_weights` accepts files saved in that layout.
    """

    def __init__(
        self,
        features: nn.Module,
        feature_dim: int,
        spec: BackboneSpec,
        pool: nn.Module | None = None,
        source: nn.Module | None = None,
        head_prefixes: tuple[str, ...] = (),
    ) -> None:
        super().__init__()
        self.features = features
        self.pool = pool if pool is not None else nn.AdaptiveAvgPool2d(1)
        self.feature_dim = feature_dim
        self.spec = spec
        self.weight_layout: WeightLayout | None = (
            None if source is None else weight_layout(spec.variant, source, self, head_prefixes)
        )

    def forward_spatial(self, images: torch.Tensor) -> torch.Tensor:
        return self.features(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.forward_spatial(images)), 1)


def replace_first_conv(module: nn.Module, in_channels: int) -> None:
    """Swap the first Conv2d for one taking ``in_channels`` inputs, keeping its geometry.

    Split-Brain feeds each half of the network a subset of channels (L or ab).
    """
    for parent in module.modules():
        for child_name, child in parent.named_children():
            if isinstance(child, nn.Conv2d):
                if child.in_channels == in_channels:
                    return
                setattr(
                    parent,
                    child_name,
                    nn.Conv2d(
                        in_channels,
                        child.out_channels,
                        kernel_size=child.kernel_size,
                        stride=child.stride,
                        padding=child.padding,
                        dilation=child.dilation,
                        groups=1,
                        bias=child.bias is not None,
                    ),
                )
                return
    raise ValueError(f"{type(module).__name__} has no Conv2d to adapt")


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel, kept inside the model so exports take [0, 1] tuple[float, float,
    float]."""

    def __init__(self, mean: tuple[float, float, float], std: tuple[float, float, float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return (images - self.mean) / self.std


class Representation(nn.Module):
    """The learned feature extractor: float tuple[float, float, float] in [0, 1], (N, 3, H, W) ->
    (N, feature_dim).

    This is what evaluation, profiling of trained models and export consume.
    """

    def __init__(self, preprocess: nn.Module, encoder: nn.Module, feature_dim: int) -> None:
        super().__init__()
        self.preprocess = preprocess
        self.encoder = encoder
        self.feature_dim = feature_dim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.preprocess(images))


def smallest_side(network: nn.Module, start: int, stop: int) -> int | None:
    """The smallest square side in ``[start, stop]`` ``network`` turns RGB images into features at, or None.

    Tried on one blank image in eval mode without gradients, so neither the weights nor the
    BatchNorm statistics change.
    """
    training = network.training
    network.eval()
    try:
        with torch.no_grad():
            for side in range(start, stop + 1):
                try:
                    network(torch.zeros(1, 3, side, side))
                except RuntimeError:  # a pooling or convolution window larger than its input
                    continue
                return side
    finally:
        network.train(training)
    return None


def check_input_side(network: nn.Module, side: int, name: str) -> None:
    """A ConfigError, before any work, when ``side`` px images are too small for ``network`` (named
    ``name``)."""
    if smallest_side(network, side, side) is None:
        least = smallest_side(network, side + 1, LARGEST_CHECKED_SIDE)
        raise ConfigError(
            f"{name} cannot take {side} px images (a pooling or convolution window would be larger than "
            f"its input): use --image-size {least or LARGEST_CHECKED_SIDE} or more"
        )
