"""Split-Brain autoencoder (Zhang, Isola & Efros 2017, "Split-Brain Autoencoders: Unsupervised
Learning by Cross-Channel Prediction").

Images go to CIE Lab. One sub-network sees L and classifies every position's ab into the
in-gamut ab bins of size 10; the other sees ab and classifies L into 50 bins of size 2;
each is trained with cross-entropy (their section 3.2, the classification loss they found
best). The representation is both sub-networks' pooled features concatenated.

How the backbone is split: the paper halves the channels of one AlexNet, so the two
halves together cost one network. torchvision/timm networks cannot be halved generically
(grouped, depthwise and residual layers fix their widths), so here "split" means two
full-width copies of the backbone, one taking 1 channel (L) and one taking 2 (ab) — each
built by ``build_backbone(name, in_channels)``. That doubles parameters, compute and
training memory relative to the other methods, and the representation is 2 x feature_dim wide.

Predictions come from a hypercolumn (Hariharan et al. 2015; Larsson et al. 2016 colorize from
one): the last map at each of the sub-network's final ``hypercolumn_levels`` resolutions,
each through a 1x1 convolution, upsampled bilinearly to 1/4 of the input side and summed
(a linear classifier on the upsampled, concatenated maps, computed without building them).
They are compared to targets quantised from the Lab image averaged to that grid
(colorization networks predict at reduced resolution: Zhang et al. 2016 at 1/4). Targets
are hard: each position's nearest bin. Why not the final map alone: a stride-32 backbone
leaves 3x3 positions at 96 px (1x1 at 32 px) to predict a 24x24 target, so the loss could
only learn blurred colour (Zhang et al. 2016 dilate their colorization network to keep 1/4
resolution). A hypercolumn of the stride-32, -16 and
-8 maps gives 12x12 at 96 px and trains every stage directly, without changing the backbone
(dilation would change the architecture being evaluated). Backbones whose features are not a
plain ``nn.Sequential`` (timm) use their final map only.

The in-gamut ab bins are computed, not copied: every 24-bit sRGB colour is converted to Lab
(kornia, D65) and the 10 x 10 ab cells centred on multiples of 10 that are hit are kept.
This gives 261 cells spanning a in [-90, 100] and b in [-110, 90] — the same extent as the
313 points Zhang et al. released (``pts_in_hull.npy``); their set also counts cells near the
gamut's edge that no sRGB colour reaches (its provenance is not documented), so the
classifier here has 261 ab classes instead of 313.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import ClassVar

import kornia
import torch
from torch import nn
from torch.nn import functional as F

from edgessl.augment import ViewAugment
from edgessl.config import PositiveFraction, PositiveInt
from edgessl.methods import METHODS
from edgessl.methods.base import RGB, Method, MethodConfig, OptimizerConfig, Representation
from edgessl.methods.recipes import PAPER, PAPER_RECIPE, SHORT, SHORT_REGIME, Recipe

AB_BIN_SIZE = 10.0  # Zhang et al. 2017, section 3.2 (from Zhang et al. 2016): ab grid of size 10
L_BIN_SIZE = 2.0  # Zhang et al. 2017, section 3.2: L in 50 bins of size 2
L_BINS = 50
L_RANGE = 100.0  # CIE L* is in [0, 100]
AB_SCALE = 110.0  # |a|, |b| < 110 for sRGB: scales the ab input to about [-1, 1]


@functools.lru_cache(maxsize=1)
def ab_bin_centres() -> torch.Tensor:
    """(Q, 2) float32 centres (multiples of 10) of the ab cells hit by some 24-bit sRGB colour.

    Computed once per process (about 3 s on one CPU core): 2^24 colours through kornia's
    rgb_to_lab, marking an occupancy grid of cells.
    """
    levels = torch.arange(256, dtype=torch.float32) / 255
    offset = 13  # |a|, |b| <= 128 in kornia's Lab: cells -13..13
    occupied = torch.zeros(2 * offset + 1, 2 * offset + 1, dtype=torch.bool)
    for red in levels.split(16):  # 16 red levels x 65,536 green-blue pairs per chunk
        grid = torch.stack(torch.meshgrid(red, levels, levels, indexing="ij")).reshape(1, 3, -1, 1)
        cells = torch.round(kornia.color.rgb_to_lab(grid)[0, 1:, :, 0] / AB_BIN_SIZE).to(torch.int64) + offset
        occupied[cells[0], cells[1]] = True
    return (occupied.nonzero() - offset).to(torch.float32) * AB_BIN_SIZE


def quantize_ab(ab: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """(N, 2, h, w) ab -> (N, h, w) int64 index of the nearest bin centre."""
    flat = ab.permute(0, 2, 3, 1).reshape(-1, 2)
    return torch.cdist(flat, centres.to(flat)).argmin(dim=1).view(ab.shape[0], *ab.shape[2:])


def quantize_l(lightness: torch.Tensor) -> torch.Tensor:
    """(N, 1, h, w) L in [0, 100] -> (N, h, w) int64 bin in 0..49 (L = 100 joins the top bin)."""
    return (lightness[:, 0] / L_BIN_SIZE).floor().clamp_(0, L_BINS - 1).to(torch.int64)


class LabInput(nn.Module):
    """RGB in [0, 1] -> Lab scaled to about [-1, 1]: L / 50 - 1, ab / 110 (fixed, colour-space statistics)."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        lab = kornia.color.rgb_to_lab(images)
        return torch.cat([lab[:, :1] / (L_RANGE / 2) - 1, lab[:, 1:] / AB_SCALE], dim=1)


class SplitBrainEncoder(nn.Module):
    """Scaled Lab (N, 3, H, W) -> both sub-networks' pooled features concatenated (N, 2 x dim)."""

    def __init__(self, l_net: nn.Module, ab_net: nn.Module) -> None:
        super().__init__()
        self.l_net = l_net
        self.ab_net = ab_net

    def forward(self, lab: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.l_net(lab[:, :1]), self.ab_net(lab[:, 1:])], dim=1)


def pyramid_maps(encoder: nn.Module, images: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """The last map at each of the final ``levels`` resolutions of ``encoder.features``, coarsest last."""
    features = encoder.features
    if levels == 1 or not isinstance(features, nn.Sequential):
        return [encoder.forward_spatial(images)]
    maps: list[torch.Tensor] = []
    x = images
    for layer in features:
        x = layer(x)
        if maps and maps[-1].shape[-2:] == x.shape[-2:]:
            maps[-1] = x
        else:
            maps.append(x)
    return maps[-levels:]


@torch.no_grad()
def pyramid_widths(encoder: nn.Module, in_channels: int, image_size: int, levels: int) -> list[int]:
    """Channels of each :func:`pyramid_maps` map at ``image_size``, from one probe pass in eval mode."""
    was_training = encoder.training
    encoder.eval()
    try:
        probe = torch.zeros(1, in_channels, image_size, image_size)
        return [m.shape[1] for m in pyramid_maps(encoder, probe, levels)]
    finally:
        encoder.train(was_training)


class HypercolumnClassifier(nn.Module):
    """Sum of 1x1-conv logits of several maps, each upsampled to the target grid."""

    def __init__(self, widths: list[int], classes: int) -> None:
        super().__init__()
        self.levels = nn.ModuleList(nn.Conv2d(width, classes, kernel_size=1) for width in widths)

    def forward(self, maps: list[torch.Tensor], grid: tuple[int, int]) -> torch.Tensor:
        return sum(
            F.interpolate(level(m), size=grid, mode="bilinear", align_corners=False)
            for level, m in zip(self.levels, maps, strict=True)
        )


def _splitbrain_optimizer() -> OptimizerConfig:
    # Zhang et al. 2017 train as their colorization paper (Zhang et al. 2016, section 3):
    # Adam, beta (0.9, 0.99), weight decay 1e-3, lr 3e-5, batch 40.
    return OptimizerConfig(
        name="adam",
        lr=3e-5,
        reference_batch_size=40,
        weight_decay=1e-3,
        warmup_epochs=0,
        schedule="cosine",
        kwargs={"betas": (0.9, 0.99)},
    )


@dataclass
class SplitBrainConfig(MethodConfig):
    batch_size: PositiveInt = 40  # Zhang et al. 2016, section 3 (followed by Zhang et al. 2017)
    optimizer: OptimizerConfig = field(default_factory=_splitbrain_optimizer)
    # predictions and targets at 1/4 of the input side (Zhang et al. 2016, section 2)
    target_stride: PositiveInt = 4
    hypercolumn_levels: PositiveInt = 3  # the stride-32, -16 and -8 maps (see the module docstring)
    # Zhang et al. 2016: 176px crops of 256px images, as a fraction of the area
    crop_scale: PositiveFraction = (176 / 256) ** 2


@METHODS.register("splitbrain")
class SplitBrain(Method):
    """Two sub-networks predicting ab from L and L from ab, both as per-position classification."""

    name = "splitbrain"
    Config = SplitBrainConfig
    recipes: ClassVar[dict[str, Recipe]] = {
        PAPER: PAPER_RECIPE,
        SHORT: Recipe(
            SHORT_REGIME,
            {"batch_size": 256, "optimizer": {"lr": 1e-3, "reference_batch_size": 256}},
            (
                (
                    "no short schedule is published: Zhang et al.'s 3e-5 at batch 40 is for about 450,000 "
                    "steps; Adam's own default lr 1e-3 (Kingma & Ba 2015) at batch 256, measured against the "
                    "paper's in "
                    "benchmarks/results/recipes.md"
                ),
            ),
        ),
    }

    def __init__(self, backbone: str, config: SplitBrainConfig, image_size: int, mean: RGB, std: RGB) -> None:
        super().__init__(backbone, config, image_size, mean, std)
        self.to_lab = LabInput()
        self.l_net = self.build_encoder(backbone, in_channels=1)
        self.ab_net = self.build_encoder(backbone, in_channels=2)
        self.register_buffer("ab_centres", ab_bin_centres().clone(), persistent=False)
        levels = config.hypercolumn_levels
        self.ab_classifier = HypercolumnClassifier(
            pyramid_widths(self.l_net, 1, image_size, levels), len(self.ab_centres)
        )
        self.l_classifier = HypercolumnClassifier(pyramid_widths(self.ab_net, 2, image_size, levels), L_BINS)
        # Colour augmentations would corrupt the targets: only a fixed-area crop and flips.
        self.augment = ViewAugment(
            crop_scale=(config.crop_scale, config.crop_scale),
            crop_ratio=(1.0, 1.0),
            jitter_p=0.0,
            grayscale_p=0.0,
            blur_p=0.0,
        )

    def make_views(self, images: torch.Tensor) -> torch.Tensor:
        """Scaled Lab crops (N, 3, S, S)."""
        return self.to_lab(self.augment(images, self.image_size))

    def targets(self, lab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(ab bins, L bins), each (N, S/stride, S/stride), from the Lab image averaged to that grid."""
        coarse = F.avg_pool2d(lab, self.config.target_stride, ceil_mode=True)
        lightness = (coarse[:, :1] + 1) * (L_RANGE / 2)
        return quantize_ab(coarse[:, 1:] * AB_SCALE, self.ab_centres), quantize_l(lightness)

    def loss(self, lab: torch.Tensor) -> torch.Tensor:
        ab_target, l_target = self.targets(lab)
        grid = ab_target.shape[1:]
        levels = self.config.hypercolumn_levels
        ab_logits = self.ab_classifier(pyramid_maps(self.l_net, lab[:, :1], levels), grid)
        l_logits = self.l_classifier(pyramid_maps(self.ab_net, lab[:, 1:], levels), grid)
        return F.cross_entropy(ab_logits, ab_target) + F.cross_entropy(l_logits, l_target)

    representation_source: ClassVar[dict[str, str]] = {
        "preprocess": "to_lab",
        "encoder.l_net": "l_net",
        "encoder.ab_net": "ab_net",
    }

    @classmethod
    def build_representation(
        cls, backbone: str, config: SplitBrainConfig, image_size: int, mean: RGB, std: RGB
    ) -> Representation:
        l_net, ab_net = cls.build_encoder(backbone, in_channels=1), cls.build_encoder(backbone, in_channels=2)
        return Representation(LabInput(), SplitBrainEncoder(l_net, ab_net), 2 * l_net.feature_dim)

    def representation(self) -> Representation:
        return Representation(
            self.to_lab, SplitBrainEncoder(self.l_net, self.ab_net), 2 * self.l_net.feature_dim
        )
