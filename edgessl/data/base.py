"""The one thing every dataset hands over: uint8 images, labels, statistics.

Augmentation runs batched on the training device, so datasets never decode or
transform per sample at training time: they decode once into a uint8 array (for image
folders, Hugging Face datasets and WebDataset shards a memory map of the decode-once
cache, which every process on the machine shares), wrapped here as a tensor without a copy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from edgessl.data import arrays
from edgessl.data.arrays import RGB

if TYPE_CHECKING:
    from edgessl.data.cache import CacheStatus


@dataclass(frozen=True)
class ImageDataset:
    """Images ``(N, 3, H, W)`` uint8, optional int64 labels ``(N,)``, and what describes them.

    ``labels is None`` means unlabelled (pretext only): there is no placeholder label
    an evaluator could mistake for a class.
    """

    name: str
    split: str
    images: torch.Tensor
    labels: torch.Tensor | None
    class_names: tuple[str, ...]
    mean: RGB  # per-channel statistics of images / 255, used to normalise
    std: RGB
    skipped: tuple[str, ...] = field(default=())  # files that could not be decoded
    cache: CacheStatus | None = None  # how a decoded source's cache was got (built or reused)

    @classmethod
    def from_arrays(cls, split: arrays.SplitArrays) -> ImageDataset:
        """Wrap numpy arrays without copying (the tensors share their memory)."""
        labels = torch.from_numpy(split.labels) if split.labels is not None else None
        return cls(
            split.name,
            split.split,
            torch.from_numpy(split.images),
            labels,
            split.class_names,
            split.mean,
            split.std,
            split.skipped,
            split.cache,
        )

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4 or self.images.shape[1] != 3:
            raise ValueError(
                f"images must be uint8 (N, 3, H, W), got {self.images.dtype} {tuple(self.images.shape)}"
            )
        if self.labels is not None and self.labels.shape != (len(self.images),):
            raise ValueError(
                f"labels shape {tuple(self.labels.shape)} does not match {len(self.images)} images"
            )

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def is_labelled(self) -> bool:
        return self.labels is not None


def channel_stats(images: torch.Tensor) -> tuple[RGB, RGB]:
    """Exact per-channel mean and std of uint8 images (N, 3, H, W) scaled to [0, 1]."""
    return arrays.channel_stats(images.cpu().numpy())
