"""The base of every method trained on two augmented views of each image: SimCLR, MoCo v2, BYOL,
Barlow Twins and VICReg.

What they all do the same way lives here, so that a method's own file says only what its paper
adds: one encoder (the representation), built first, so that every method draws its initial
weights from the seed in the same order (encoder, then heads); the two views, made once per step
from two recipes (BYOL's asymmetric pair, or one recipe drawn twice as SimCLR's and MoCo v2's); and
the loss as a function of the two views by name.
"""

from __future__ import annotations

from abc import abstractmethod

import torch

from edgessl.augment import ViewAugment
from edgessl.methods.base import RGB, Method, MethodConfig, StepOutput


class TwoViewMethod(Method):
    """An encoder and a loss on two views of the batch; subclasses add heads, the loss and any targets.

    The recipes are kept as ``augment_first`` and ``augment_second`` (the same object for a symmetric
    method): plain attributes, which the throughput benchmark reads to rebuild the views.
    """

    def __init__(
        self,
        backbone: str,
        config: MethodConfig,
        image_size: int,
        mean: RGB,
        std: RGB,
        *,
        views: tuple[ViewAugment, ViewAugment],
    ) -> None:
        super().__init__(backbone, config, image_size, mean, std)
        self.encoder = self.build_encoder(backbone)
        self.augment_first, self.augment_second = views

    def make_views(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.augment_first(images, self.image_size), self.augment_second(images, self.image_size)

    def features(self, view: torch.Tensor) -> torch.Tensor:
        """The encoder's features of float views in [0, 1], normalised on the way in."""
        return self.encoder(self.normalize(view))

    def loss(self, views: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor | StepOutput:
        return self.pair_loss(*views)

    @abstractmethod
    def pair_loss(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor | StepOutput:
        """The loss on the batch's first and second views (``make_views``' pair, in that order)."""
