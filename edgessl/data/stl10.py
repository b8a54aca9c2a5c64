"""STL-10 from its official binary files, through numpy memory maps (no torch, no PIL decode).

Layout (``stl10_binary/`` from http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz):
``{train,test}_X.bin`` and ``unlabeled_X.bin`` hold uint8 images of 3x96x96 bytes, each
channel stored column-major (Matlab order); ``{train,test}_y.bin`` hold one uint8 label
1..10 per image; ``class_names.txt`` one name per line. Full sizes: 5,000 train, 8,000
test, 100,000 unlabelled images.

Subsets are accepted: files are checked by size (whole images, one label per image),
never by the md5 of the full files that torchvision's ``STL10`` insists on.

Splits: ``unlabeled`` (pretext), ``train`` (downstream training), ``test`` (downstream
validation), ``train+unlabeled``; labels are None whenever unlabelled images are included.

Where the files are: ``root`` is the folder holding ``stl10_binary/`` or that folder
itself; without ``root``, ``$EDGESSL_DATA`` (default ``./data``). With
``EDGESSL_DOWNLOAD=1`` (or :func:`download_stl10`) missing files are downloaded through
torchvision when online.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgessl.data.arrays import (
    SplitArrays,
    check_split,
    default_data_root,
    register_dataset,
    resize_images,
    whole_records,
)
from edgessl.errors import DataError

NATIVE_SIZE = 96
IMAGE_BYTES = 3 * NATIVE_SIZE * NATIVE_SIZE  # 27,648
FOLDER = "stl10_binary"
ARCHIVE_URL = "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz"

# The official class_names.txt, used when a subset ships without it.
CLASS_NAMES = ("airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck")

# The widely used per-channel statistics of the STL-10 training images / 255 (the values
# public STL-10 training scripts normalise with; lightning-bolts' stl10_normalization
# rounds them to (0.43, 0.42, 0.39) / (0.27, 0.26, 0.27)). Fixed rather than computed so
# every subset normalises like the full dataset; the real 356-image subset in
# ../shared/data/stl10-mini gives mean (0.439, 0.434, 0.393), std (0.262, 0.257, 0.265):
# within 0.014 and 0.007 (tests/data/test_stl10.py checks it).
MEAN = (0.4467, 0.4398, 0.4066)
STD = (0.2603, 0.2566, 0.2713)

# part -> (images file, labels file or None, images in the full dataset)
PARTS: dict[str, tuple[str, str | None, int]] = {
    "train": ("train_X.bin", "train_y.bin", 5_000),
    "test": ("test_X.bin", "test_y.bin", 8_000),
    "unlabeled": ("unlabeled_X.bin", None, 100_000),
}
SPLITS: dict[str, tuple[str, ...]] = {
    "unlabeled": ("unlabeled",),
    "train": ("train",),
    "test": ("test",),
    "train+unlabeled": ("train", "unlabeled"),
}


def binary_folder(root: Path | None) -> Path:
    """The ``stl10_binary`` folder, given it or its parent (``None``: ``$EDGESSL_DATA``)."""
    root = default_data_root() if root is None else root
    if root.name == FOLDER or any((root / images_file).is_file() for images_file, _, _ in PARTS.values()):
        return root
    return root / FOLDER


def download_requested() -> bool:
    return os.environ.get("EDGESSL_DOWNLOAD", "").strip().lower() in ("1", "true", "yes")


def download_stl10(root: Path | None = None) -> Path:
    """Download and extract the full STL-10 (2.6 GB) through torchvision; returns ``stl10_binary``."""
    from torchvision.datasets import STL10  # lazy: only this explicit path needs torch

    folder = binary_folder(root)
    try:
        STL10(str(folder.parent), split="train+unlabeled", download=True)
    except (OSError, RuntimeError) as exc:  # no network, disk full, bad archive
        raise DataError(
            f"could not download STL-10 into {folder.parent}: {exc}; "
            f"download {ARCHIVE_URL} by hand and extract it there"
        ) from exc
    return folder


def _missing_message(path: Path, full_images: int) -> str:
    return (
        f"STL-10 file {path} not found (expected {full_images * IMAGE_BYTES:,} bytes for the full dataset, "
        f"or any whole number of {IMAGE_BYTES}-byte images for a subset): extract {ARCHIVE_URL} so that "
        f"{path.parent} holds it, point --data-root or EDGESSL_DATA at its parent, "
        "or set EDGESSL_DOWNLOAD=1 to download it (online)"
    )


def _checked_size(path: Path, unit: int, full_count: int) -> int:
    """Number of records of ``unit`` bytes in ``path``; a DataError if missing or partial."""
    if not path.is_file():
        raise DataError(_missing_message(path, full_count))
    return whole_records(path, unit, "STL-10", full_count, ARCHIVE_URL)


def map_images(path: Path, full_count: int) -> np.ndarray:
    """A read-only ``(N, 3, 96, 96)`` uint8 view of one ``*_X.bin`` through a memory map.

    Each channel is stored column-major, so the view swaps the last two axes; nothing
    is read until the caller copies it.
    """
    count = _checked_size(path, IMAGE_BYTES, full_count)
    stored = np.memmap(path, dtype=np.uint8, mode="r", shape=(count, 3, NATIVE_SIZE, NATIVE_SIZE))
    return stored.transpose(0, 1, 3, 2)


def read_labels(path: Path, image_count: int, full_count: int) -> np.ndarray:
    """Labels 0..9 as int64 from one ``*_y.bin`` (stored 1..10), one per image."""
    count = _checked_size(path, 1, full_count)
    if count != image_count:
        raise DataError(
            f"STL-10 file {path} holds {count} labels but its images file holds {image_count} images; "
            "copy both files of the split from the same source"
        )
    labels = np.fromfile(path, dtype=np.uint8).astype(np.int64)
    if labels.min() < 1 or labels.max() > len(CLASS_NAMES):
        raise DataError(f"STL-10 file {path} has labels outside 1..10; it is not an STL-10 labels file")
    return labels - 1


def read_class_names(folder: Path) -> tuple[str, ...]:
    path = folder / "class_names.txt"
    if not path.is_file():
        return CLASS_NAMES
    names = tuple(line.strip() for line in path.read_text().splitlines() if line.strip())
    if len(names) != len(CLASS_NAMES):
        raise DataError(
            f"{path} lists {len(names)} class names, STL-10 has {len(CLASS_NAMES)}; "
            f"copy it again from {ARCHIVE_URL}"
        )
    return names


def _ensure_files(folder: Path, parts: tuple[str, ...], root: Path | None) -> None:
    missing = [name for part in parts for name in PARTS[part][:2] if name and not (folder / name).is_file()]
    if missing and download_requested():
        download_stl10(root)


@register_dataset("stl10", NATIVE_SIZE)
def read_stl10(split: str, root: Path | None, image_size: int | None) -> SplitArrays:
    """One STL-10 split at 96x96 (or resized to ``image_size`` with PIL, see :mod:`edgessl.data.arrays`)."""
    check_split("stl10", split, SPLITS)
    folder = binary_folder(root)
    _ensure_files(folder, SPLITS[split], root)
    views, labels = [], None
    for part in SPLITS[split]:
        images_file, labels_file, full_count = PARTS[part]
        views.append(map_images(folder / images_file, full_count))
        if labels_file is not None and len(SPLITS[split]) == 1:
            labels = read_labels(folder / labels_file, len(views[-1]), full_count)
    images = np.concatenate(views)  # the one copy from disk into memory
    if image_size is not None:
        images = resize_images(images, image_size)
    return SplitArrays("stl10", split, images, labels, read_class_names(folder), MEAN, STD)
