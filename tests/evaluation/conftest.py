"""Tiny labelled image splits and a tiny convolutional representation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from edgessl.data.base import ImageDataset
from edgessl.methods.base import Normalize, Representation

COLOURS = torch.tensor([[220, 40, 40], [40, 200, 60], [50, 60, 230], [230, 220, 40]], dtype=torch.float32)


def colour_split(split: str, per_class: int, size: int, seed: int) -> ImageDataset:
    """Noisy images whose class is their dominant colour (4 classes): separable, not trivial at init."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(len(COLOURS)).repeat_interleave(per_class)
    base = COLOURS[labels].view(-1, 3, 1, 1).expand(-1, 3, size, size)
    noise = 60 * torch.randn(len(labels), 3, size, size, generator=generator)
    images = (base + noise).clamp(0, 255).to(torch.uint8)
    return ImageDataset("colours", split, images, labels, ("red", "green", "blue", "yellow"), (0.5,) * 3, (0.25,) * 3)


def tiny_representation(seed: int = 0, dim: int = 16) -> Representation:
    torch.manual_seed(seed)
    encoder = nn.Sequential(
        nn.Conv2d(3, dim, 3, padding=1), nn.BatchNorm2d(dim), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
    )
    return Representation(Normalize((0.5,) * 3, (0.25,) * 3), encoder, dim)


@pytest.fixture
def tiny_splits() -> tuple[ImageDataset, ImageDataset, Representation]:
    return colour_split("train", 16, 12, seed=1), colour_split("test", 10, 12, seed=2), tiny_representation()


@pytest.fixture
def make_representation():
    """``make_representation(seed)``: a fresh tiny representation (for checkpoints in tests)."""
    return tiny_representation
