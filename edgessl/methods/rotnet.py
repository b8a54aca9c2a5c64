"""RotNet (Gidaris, Singh & Komodakis 2018, "Unsupervised Representation Learning by Predicting Image
Rotations").

Every image of the batch is shown at 0, 90, 180 and 270 degrees in the same step (their
section 3, implementation details: all four rotated copies together beat one random rotation)
and a linear head on
the pooled features classifies the rotation. Before rotating, each image gets the random
crop (zero padding of 1/8 of the side) and horizontal flip of the released CIFAR-10 code
(gidariss/FeatureLearningRotNet, ``dataloader.py``: ``RandomCrop(32, padding=4)``,
``RandomHorizontalFlip()``), so the network does not see the same pixels every epoch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from edgessl.augment import rotate_all_four, to_float
from edgessl.augment.functional import padded_random_crop
from edgessl.config import Fraction, PositiveInt
from edgessl.methods import METHODS
from edgessl.methods.base import RGB, Method, MethodConfig, OptimizerConfig
from edgessl.methods.recipes import PAPER, PAPER_RECIPE, SHORT, SHORT_REGIME, Recipe

NUM_ROTATIONS = 4  # 0/90/180/270 degrees: the best rotation set in Gidaris et al. 2018, section 3.1


def _rotnet_optimizer() -> OptimizerConfig:
    # Gidaris et al. 2018, section 3.1 (CIFAR-10 setup) and the released config
    # CIFAR10_RotNet_NIN4blocks.py: SGD with Nesterov momentum 0.9, batch 128, weight decay
    # 5e-4, lr 0.1, divided by 5 after 30, 60 and 80 of 100 epochs (the "step" schedule).
    return OptimizerConfig(
        name="sgd",
        lr=0.1,
        reference_batch_size=128,
        weight_decay=5e-4,
        momentum=0.9,
        warmup_epochs=0,
        schedule="step",
        kwargs={"nesterov": True},
    )


@dataclass
class RotNetConfig(MethodConfig):
    batch_size: PositiveInt = 128  # Gidaris et al. 2018, section 3.1: 128 images (x4 rotations) per batch
    optimizer: OptimizerConfig = field(default_factory=_rotnet_optimizer)
    crop_padding: Fraction = 0.125  # the released code's RandomCrop(32, padding=4): 1/8 of the side
    hflip_p: Fraction = 0.5  # the released code's RandomHorizontalFlip()


@METHODS.register("rotnet")
class RotNet(Method):
    """4-way rotation classification with a plain linear head on the pooled encoder features.

    Views are the images, randomly translated and flipped as the released code, then rotated.
    """

    name = "rotnet"
    Config = RotNetConfig
    recipes: ClassVar[dict[str, Recipe]] = {
        PAPER: PAPER_RECIPE,
        SHORT: Recipe(
            f"{SHORT_REGIME}: the paper's own CIFAR-10 recipe, unchanged",
            {},
            (
                (
                    "Gidaris et al. 2018 already train CIFAR-10 for 100 epochs, at batch 128; measured here, "
                    "batch 256 at the linearly scaled lr 0.2 stayed at the chance loss (ln 4) for 40 epochs "
                    "(benchmarks/results/recipes.md), so the short recipe keeps batch 128 and lr 0.1"
                ),
            ),
        ),
    }

    def __init__(self, backbone: str, config: RotNetConfig, image_size: int, mean: RGB, std: RGB) -> None:
        super().__init__(backbone, config, image_size, mean, std)
        self.encoder = self.build_encoder(backbone)
        self.head = nn.Linear(self.encoder.feature_dim, NUM_ROTATIONS)

    def make_views(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        padding = round(self.config.crop_padding * images.shape[-1])
        moved = padded_random_crop(images, padding, self.config.hflip_p)  # uint8: a quarter of the bytes
        rotated, labels = rotate_all_four(moved)
        return to_float(rotated), labels

    def loss(self, views: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        images, labels = views
        return F.cross_entropy(self.head(self.encoder(self.normalize(images))), labels)
