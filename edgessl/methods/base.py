"""The contract between a self-supervised method and the trainer.

A method is a small ``nn.Module``: how views are made from a uint8 batch, the loss on
those views, which modules follow others by momentum, and which module is the learned
representation. It knows nothing about devices, loops or checkpoints; the trainer
knows no method by name.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from edgessl.backbones import Encoder, build_backbone

RGB = tuple[float, float, float]


@dataclass
class OptimizerConfig:
    """Optimiser and schedule; every method overrides the defaults with its paper's."""

    name: str = "adam"  # one of edgessl.training.optim.OPTIMIZERS
    lr: float = 1e-3  # for the method's reference batch size, scaled linearly with it
    reference_batch_size: int = 256
    weight_decay: float = 0.0
    momentum: float = 0.9  # SGD / LARS only
    warmup_epochs: int = 0
    schedule: str = "cosine"  # "cosine" or "constant", after warmup


@dataclass
class MethodConfig:
    """Hyper-parameters shared by all methods; subclasses add their own fields."""

    batch_size: int = 256
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel, kept inside the model so exports take [0, 1] RGB."""

    def __init__(self, mean: RGB, std: RGB) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return (images - self.mean) / self.std


class Representation(nn.Module):
    """The learned feature extractor: float RGB in [0, 1], (N, 3, H, W) -> (N, feature_dim).

    This is what evaluation, profiling of trained models and export consume.
    """

    def __init__(self, preprocess: nn.Module, encoder: nn.Module, feature_dim: int) -> None:
        super().__init__()
        self.preprocess = preprocess
        self.encoder = encoder
        self.feature_dim = feature_dim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.preprocess(images))


class Method(nn.Module, ABC):
    """Base class of self-supervised methods; see the module docstring for the contract.

    ``forward(images)`` returns the loss so that distributed wrappers (DDP through
    accelerate) see every parameter used in the step.
    """

    name: ClassVar[str]
    Config: ClassVar[type[MethodConfig]] = MethodConfig

    def __init__(self, backbone: str, config: MethodConfig, image_size: int, mean: RGB, std: RGB) -> None:
        super().__init__()
        self.backbone_name = backbone
        self.config = config
        self.image_size = image_size
        self.normalize = Normalize(mean, std)

    @staticmethod
    def build_encoder(backbone: str, in_channels: int = 3) -> Encoder:
        return build_backbone(backbone, in_channels)

    @abstractmethod
    def make_views(self, images: torch.Tensor) -> Any:
        """Batched augmentation of a uint8 (N, 3, H, W) batch on its device; no gradients."""

    @abstractmethod
    def loss(self, views: Any) -> torch.Tensor:
        """The scalar training loss on views made by :meth:`make_views`."""

    @abstractmethod
    def representation(self) -> Representation:
        """The module whose features are evaluated and exported (shares weights with self)."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            views = self.make_views(images)
        return self.loss(views)

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """(online, target) pairs where target follows online by EMA; none by default."""
        return []

    def momentum(self, progress: float) -> float:
        """EMA coefficient at ``progress`` in [0, 1] of training (1.0 = target frozen)."""
        return 1.0

    @torch.no_grad()
    def after_optimizer_step(self, progress: float) -> None:
        """Move every momentum target towards its online module."""
        tau = self.momentum(progress)
        for online, target in self.momentum_pairs():
            for p_online, p_target in zip(online.parameters(), target.parameters(), strict=True):
                p_target.lerp_(p_online.detach(), 1.0 - tau)
            for b_online, b_target in zip(online.buffers(), target.buffers(), strict=True):
                b_target.copy_(b_online)


def cosine_momentum(base: float, progress: float) -> float:
    """BYOL's schedule: tau = 1 - (1 - base) * (cos(pi * progress) + 1) / 2, from base to 1."""
    return 1.0 - (1.0 - base) * (math.cos(math.pi * progress) + 1.0) / 2.0
