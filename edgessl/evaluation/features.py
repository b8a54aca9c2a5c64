"""Frozen features of a representation, computed in chunks without gradients.

Datasets hold uint8 images on the CPU; only one chunk at a time is converted to float
and moved to the device, so a 100,000-image split never needs a float copy in memory.
"""

from __future__ import annotations

import torch
from torch import nn

from edgessl.devices import resolve_device


def to_unit_float(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 ``(N, 3, H, W)`` -> float32 in [0, 1] on ``device`` (what a Representation takes)."""
    return images.to(device, non_blocking=True).float().div_(255.0)


@torch.no_grad()
def extract_features(
    model: nn.Module,
    images_uint8: torch.Tensor,
    batch_size: int = 256,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """``(N, D)`` float32 features of ``model`` on uint8 images, in eval mode and chunks.

    The model is moved to ``device`` and put in eval mode (BatchNorm uses its running
    statistics) for the pass, then its previous training flag is restored. Features are
    returned on ``device``.
    """
    device = resolve_device(device)
    was_training = model.training
    model.to(device).eval()
    try:
        chunks = [model(to_unit_float(batch, device)).float() for batch in images_uint8.split(batch_size)]
    finally:
        model.train(was_training)
    if not chunks:
        return torch.empty(0, int(getattr(model, "feature_dim", 0)), device=device)
    return torch.cat(chunks).flatten(1)


class FeatureCache:
    """A model on a device and its frozen features per dataset, each computed once.

    kNN and the linear probe of one checkpoint read the same features: a sweep with
    both protocols makes one forward pass over each split instead of two.
    """

    def __init__(
        self, model: nn.Module, device: str | torch.device | None = None, batch_size: int = 256
    ) -> None:
        self.model = model
        self.device = resolve_device(device)
        self.batch_size = batch_size
        self._features: dict[int, tuple[object, torch.Tensor]] = {}

    def __call__(self, dataset) -> torch.Tensor:  # dataset: edgessl.data.ImageDataset
        """``(N, D)`` features of ``dataset.images`` on ``self.device``."""
        key = id(dataset)  # the dataset is kept alongside, so its id cannot be reused
        if key not in self._features:
            self._features[key] = (
                dataset,
                extract_features(self.model, dataset.images, self.batch_size, self.device),
            )
        return self._features[key][1]
