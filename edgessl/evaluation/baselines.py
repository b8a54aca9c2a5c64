"""Representations that learn nothing, to measure pretraining against.

A pretrained encoder is only worth its training if it beats what needs none: the
normalised pixels themselves (what kNN on the raw images sees) and the same encoder at
random initialisation (built by :func:`edgessl.methods.build_method` without training).
Both go through the same protocols as a trained model, so the numbers compare directly.
"""

from __future__ import annotations

from torch import nn

from edgessl.methods.base import RGB, Normalize, Representation


def pixel_representation(image_size: int, mean: RGB, std: RGB) -> Representation:
    """Each image's normalised pixels as its feature vector, ``3 * image_size**2`` long."""
    return Representation(Normalize(mean, std), nn.Flatten(), 3 * image_size * image_size)
