"""Datasets by name: ``load_dataset("stl10", "train", root=...)`` -> :class:`ImageDataset`.

A dataset spec is a registered name (``stl10``, ``shapes10``) or a path to an image
folder. Splits: ``unlabeled`` (pretext), ``train`` (downstream training), ``test``
(downstream validation); STL-10 also has ``train+unlabeled``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from edgessl.data.base import ImageDataset, channel_stats
from edgessl.registry import Registry

# (split, root, image_size) -> ImageDataset; image_size None keeps the native size.
DatasetLoader = Callable[[str, "Path | None", "int | None"], ImageDataset]

DATASETS: Registry[DatasetLoader] = Registry("dataset")
DEFAULT_DATASET = "shapes10"


def _register_datasets() -> None:
    from edgessl.data import image_folder, stl10, synthetic  # noqa: F401


def load_dataset(spec: str, split: str, root: str | Path | None = None, image_size: int | None = None) -> ImageDataset:
    """Load ``split`` of a registered dataset, or of the image folder at path ``spec``."""
    _register_datasets()
    if spec not in DATASETS and Path(spec).is_dir():
        from edgessl.data.image_folder import load_image_folder

        return load_image_folder(Path(spec), split, image_size)
    loader = DATASETS.get(spec)
    return loader(split, Path(root) if root is not None else None, image_size)


def dataset_names() -> list[str]:
    _register_datasets()
    return DATASETS.names()


__all__ = ["DATASETS", "DEFAULT_DATASET", "ImageDataset", "channel_stats", "dataset_names", "load_dataset"]
