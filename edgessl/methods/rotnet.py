"""RotNet (Gidaris, Singh & Komodakis 2018, "Unsupervised Representation Learning by Predicting Image Rotations").

Every image of the batch is shown at 0, 90, 180 and 270 degrees in the same step (their
section 3, implementation details: all four rotated copies together beat one random rotation) and a linear head on
the pooled features classifies the rotation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from edgessl.augment import rotate_all_four, to_float
from edgessl.methods import METHODS
from edgessl.methods.base import RGB, Method, MethodConfig, OptimizerConfig, Representation

NUM_ROTATIONS = 4  # 0/90/180/270 degrees: the best rotation set in Gidaris et al. 2018, section 3.1


def _rotnet_optimizer() -> OptimizerConfig:
    # Gidaris et al. 2018, section 3.1 (CIFAR-10 setup): SGD, batch 128, momentum 0.9,
    # weight decay 5e-4, lr 0.1. They decay the rate in steps; the trainer's schedules are
    # cosine or constant, and cosine is used here.
    return OptimizerConfig(
        name="sgd",
        lr=0.1,
        reference_batch_size=128,
        weight_decay=5e-4,
        momentum=0.9,
        warmup_epochs=0,
        schedule="cosine",
    )


@dataclass
class RotNetConfig(MethodConfig):
    batch_size: int = 128  # Gidaris et al. 2018, section 3.1: 128 images (x4 rotations) per batch
    optimizer: OptimizerConfig = field(default_factory=_rotnet_optimizer)


@METHODS.register("rotnet")
class RotNet(Method):
    """4-way rotation classification with a plain linear head on the pooled encoder features.

    Views are the images themselves, rotated; no other augmentation (the paper's point is
    that rotation alone is the supervisory signal).
    """

    name = "rotnet"
    Config = RotNetConfig

    def __init__(self, backbone: str, config: RotNetConfig, image_size: int, mean: RGB, std: RGB) -> None:
        super().__init__(backbone, config, image_size, mean, std)
        self.encoder = self.build_encoder(backbone)
        self.head = nn.Linear(self.encoder.feature_dim, NUM_ROTATIONS)

    def make_views(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rotated, labels = rotate_all_four(images)  # rotate the uint8 batch: a quarter of the bytes
        return to_float(rotated), labels

    def loss(self, views: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        images, labels = views
        return F.cross_entropy(self.head(self.encoder(self.normalize(images))), labels)

    def representation(self) -> Representation:
        return Representation(self.normalize, self.encoder, self.encoder.feature_dim)
