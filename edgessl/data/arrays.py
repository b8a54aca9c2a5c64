"""The torch-free core of the data layer: what every reader shares (``SplitArrays``, the registry, resizing).

``edgessl eval --onnx`` runs with numpy and onnxruntime only (as on a phone), so the
readers that decode CIFAR, STL-10, image folders and the built-in ``shapes10`` return
plain numpy arrays (:mod:`edgessl.data.reading` picks the reader for a spec);
:func:`edgessl.data.load_dataset` wraps them into torch tensors for training. Importing
this module (or any reader) never imports torch.

Resizing happens here, once, inside the readers, always with PIL's antialiased bilinear
filter: :func:`resize_images` for STL-10's 96x96 arrays, at decode time for image files
of any size (shapes10 is drawn at the requested size). The torch path reuses these
arrays unchanged, so ONNX and torch evaluation see bit-identical pixels.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgessl.errors import ConfigError, DataError, UnknownNameError
from edgessl.registry import Registry

if TYPE_CHECKING:
    from edgessl.data.cache import CacheStatus

RGB = tuple[float, float, float]
STATS_CHUNK_PIXELS = 1 << 22  # pixels per channel per histogram pass (32 MB of int64 for bincount)

# (split, root, image_size) -> SplitArrays; image_size None keeps the native size.
ArrayReader = Callable[[str, "Path | None", "int | None"], "SplitArrays"]

DATASETS: Registry[ArrayReader] = Registry(
    "dataset", hint="A path to an image folder (root/<class>/*.png|jpg) works too."
)
NATIVE_SIZES: dict[str, int] = {}  # a registered dataset's side when no image size is asked


def register_dataset(name: str, native_size: int) -> Callable[[ArrayReader], ArrayReader]:
    """Register a reader under ``name`` with the side its files hold (what a resolved run records)."""
    NATIVE_SIZES[name] = native_size
    return DATASETS.register(name)


@dataclass(frozen=True)
class SplitArrays:
    """One split as numpy: uint8 images ``(N, 3, H, W)``, int64 labels ``(N,)`` or None.

    ``labels is None`` whenever unlabelled images are included, so no placeholder label
    can be mistaken for a class. ``skipped`` lists files that could not be decoded;
    ``cache`` says how a decoded source's cache was got (built or reused, how long).
    """

    name: str
    split: str
    images: np.ndarray
    labels: np.ndarray | None
    class_names: tuple[str, ...]
    mean: RGB  # per-channel statistics of images / 255, used to normalise
    std: RGB
    skipped: tuple[str, ...] = field(default=())
    cache: CacheStatus | None = None

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim != 4 or self.images.shape[1] != 3:
            raise ValueError(
                f"images must be uint8 (N, 3, H, W), got {self.images.dtype} {self.images.shape}"
            )
        if self.labels is not None and (
            self.labels.dtype != np.int64 or self.labels.shape != (len(self.images),)
        ):
            raise ValueError(
                f"labels must be int64 ({len(self.images)},), got {self.labels.dtype} {self.labels.shape}"
            )

    def __len__(self) -> int:
        return len(self.images)


def channel_stats(images: np.ndarray) -> tuple[RGB, RGB]:
    """Exact per-channel mean and (population) std of uint8 images scaled to [0, 1]."""
    return stats_from_counts(channel_counts(images))


def channel_counts(images: np.ndarray) -> np.ndarray:
    """``(3, 256)`` histogram of each channel's values, a chunk of images at a time.

    Histograms give exact statistics in bounded extra memory (a float64 copy of 100,000
    STL-10 images would need 22 GB, and ``np.bincount`` copies its input to int64), and
    the counts of several row ranges add up (the image cache sums the splits training sees).
    """
    pixels_per_image = int(np.prod(images.shape[2:]))
    chunk = max(1, STATS_CHUNK_PIXELS // max(1, pixels_per_image))
    counts = np.zeros((3, 256), dtype=np.float64)
    for start in range(0, len(images), chunk):
        block = np.asarray(images[start : start + chunk])
        for channel in range(3):
            counts[channel] += np.bincount(block[:, channel].reshape(-1), minlength=256)
    return counts


def stats_from_counts(counts: np.ndarray) -> tuple[RGB, RGB]:
    """Mean and std of values ``0..255 / 255`` from their ``(3, 256)`` histogram."""
    values = np.arange(256, dtype=np.float64) / 255.0
    means = counts @ values / counts.sum(axis=1)
    stds = np.sqrt(np.sum(counts * (values[None] - means[:, None]) ** 2, axis=1) / counts.sum(axis=1))
    return tuple(means.tolist()), tuple(stds.tolist())  # type: ignore[return-value]


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """Resize uint8 ``(N, 3, H, W)`` to ``(N, 3, size, size)`` with PIL, bilinear + antialias.

    One PIL call per image (about 1 ms at 96 -> 64 on a loaded 2-core VM). A vectorised
    numpy version as two dense matrix products was measured slower: each output pixel
    would multiply all 96 inputs instead of PIL's few filter taps.
    """
    from PIL import Image

    if images.shape[-2:] == (size, size):
        return images
    out = np.empty((len(images), 3, size, size), dtype=np.uint8)
    for index, image in enumerate(images):
        resized = Image.fromarray(np.ascontiguousarray(image.transpose(1, 2, 0))).resize(
            (size, size), Image.Resampling.BILINEAR
        )
        out[index] = np.asarray(resized).transpose(2, 0, 1)
    return out


def default_data_root() -> Path:
    """Where registered datasets' files are when no root is given: ``$EDGESSL_DATA``, default ``./data``."""
    return Path(os.environ.get("EDGESSL_DATA", "data")).expanduser()


def whole_records(path: Path, record_bytes: int, dataset: str, full_records: int, source: str) -> int:
    """Number of ``record_bytes``-byte records in the existing file ``path``.

    Any whole number is accepted (a subset); an empty or partial file is a DataError
    naming the full size, since a file cut mid-record is a broken copy, not a subset.
    """
    size = path.stat().st_size
    if size == 0 or size % record_bytes:
        raise DataError(
            f"{dataset} file {path} is truncated: {size:,} bytes is not a whole number of "
            f"{record_bytes}-byte records (the full file has {full_records * record_bytes:,} bytes); "
            f"copy it again from {source}"
        )
    return size // record_bytes


def check_split(dataset: str, split: str, splits: Iterable[str]) -> None:
    """Raise the closest-match error for a split the dataset does not have."""
    choices = list(splits)
    if split not in choices:
        raise UnknownNameError(f"{dataset} split", split, choices)


def check_image_size(image_size: int | None) -> None:
    if image_size is not None and image_size < 8:
        raise ConfigError(f"image size {image_size} is too small: use 8 pixels or more (e.g. 32, 64, 96)")
