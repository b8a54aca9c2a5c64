"""Datasets by name: ``load_dataset("stl10", "train", root=...)`` -> :class:`ImageDataset`.

A dataset spec is a registered name (``stl10``, ``shapes10``) or a path to an image
folder. Splits: ``unlabeled`` (pretext), ``train`` (downstream training), ``test``
(downstream validation); STL-10 also has ``train+unlabeled``.

Two layers: :mod:`edgessl.data.reading` reads any dataset into numpy without torch (the
ONNX-only evaluator uses it directly), and :func:`load_dataset` wraps that into torch
tensors. Importing this package does not import torch; ``ImageDataset`` and
``channel_stats`` load :mod:`edgessl.data.base` (and torch) on first use.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgessl.data.arrays import DATASETS, SplitArrays
from edgessl.data.reading import native_image_size, read_labelled_splits, read_split_arrays

if TYPE_CHECKING:
    from edgessl.data.base import ImageDataset, channel_stats

DEFAULT_DATASET = "shapes10"


def load_dataset(
    spec: str, split: str, root: str | Path | None = None, image_size: int | None = None
) -> ImageDataset:
    """Load ``split`` of a registered dataset, or of the image folder at path ``spec``, as tensors."""
    from edgessl.data.base import ImageDataset

    return ImageDataset.from_arrays(read_split_arrays(spec, split, root, image_size))


def load_labelled_splits(
    spec: str, root: str | Path | None = None, image_size: int | None = None, purpose: str = "evaluation"
) -> tuple[ImageDataset, ImageDataset]:
    """:func:`~edgessl.data.reading.read_labelled_splits` as tensors: the labelled train and test splits."""
    from edgessl.data.base import ImageDataset

    train, test = read_labelled_splits(spec, root, image_size, purpose)
    return ImageDataset.from_arrays(train), ImageDataset.from_arrays(test)


def dataset_names() -> list[str]:
    return DATASETS.names()


def __getattr__(name: str) -> Any:
    # Lazy so that ``import edgessl.data.reading`` (which runs this file) stays torch-free.
    if name in ("ImageDataset", "channel_stats"):
        from edgessl.data import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DATASETS",
    "DEFAULT_DATASET",
    "ImageDataset",
    "SplitArrays",
    "channel_stats",
    "dataset_names",
    "load_dataset",
    "load_labelled_splits",
    "native_image_size",
    "read_labelled_splits",
    "read_split_arrays",
]
