"""CIFAR-10 and CIFAR-100 from their official binary archives, through numpy memory maps.

Never the "python version" (``cifar-10-batches-py``): its batches are pickles, and
unpickling a data file can run any code in it. The binary version holds the same images:

* CIFAR-10 (``cifar-10-batches-bin/`` from https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz):
  ``data_batch_1.bin`` .. ``data_batch_5.bin`` (10,000 images each) and ``test_batch.bin``
  (10,000); each record is 3,073 bytes: the label 0..9, then 3,072 pixel bytes (the red
  plane, then green, then blue, each 32 rows of 32). ``batches.meta.txt`` names the classes.
* CIFAR-100 (``cifar-100-binary/`` from https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz):
  ``train.bin`` (50,000) and ``test.bin`` (10,000); each record is 3,074 bytes: the coarse
  label 0..19, the fine label 0..99, then the same 3,072 pixel bytes. The fine labels are
  the classes; ``fine_label_names.txt`` names them.

Subsets are accepted: each file may hold any whole number of records (checked by size),
and every label byte is checked against its range, so a CIFAR-100 file read as CIFAR-10
(or any other file) is a clear error rather than wrong labels.

Splits: ``train``, ``test``, and ``unlabeled`` = the train images without labels (the
pretext split: CIFAR has no unlabelled images, and pretraining never sees test images).

Where the files are: ``root`` is the folder holding ``cifar-10-batches-bin/`` (or
``cifar-100-binary/``) or that folder itself; without ``root``, ``$EDGESSL_DATA``
(default ``./data``). Native size 32x32; ``image_size`` resizes with PIL as for STL-10.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from edgessl.data.arrays import (
    RGB,
    SplitArrays,
    check_split,
    default_data_root,
    register_dataset,
    resize_images,
    whole_records,
)
from edgessl.errors import DataError
from edgessl.textfiles import read_text

NATIVE_SIZE = 32
IMAGE_BYTES = 3 * NATIVE_SIZE * NATIVE_SIZE  # 3,072
SPLITS = {"train": "train", "test": "test", "unlabeled": "train"}  # split -> part of the archive

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
# The official fine_label_names.txt, in label order (used when a subset ships without it).
# fmt: off
CIFAR100_CLASSES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
    "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
    "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
    "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard",
    "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle",
    "mountain", "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear",
    "pickup_truck", "pine_tree", "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon",
    "ray", "road", "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail",
    "snake", "spider", "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone",
    "television", "tiger", "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale",
    "willow_tree", "wolf", "woman", "worm",
)
# fmt: on


@dataclass(frozen=True)
class CifarFormat:
    """One CIFAR archive's layout: its files, its record format and its statistics."""

    dataset: str  # as named in messages
    folder: str  # the archive's folder
    pickled_folder: str  # the python version's folder, named when found instead
    archive_url: str
    label_ranges: tuple[int, ...]  # the label bytes before the pixels, and how many values each takes
    class_byte: int  # which label byte is the class
    parts: dict[str, tuple[tuple[str, int], ...]]  # part -> ((file, records in the full archive), ...)
    names_file: str
    class_names: tuple[str, ...]
    # Per-channel statistics of the full training set / 255 (population std over all pixels),
    # fixed rather than computed so that any subset normalises like the full dataset;
    # tests/data/test_cifar.py checks CIFAR-10's against 5,000 real training images.
    mean: RGB
    std: RGB

    @property
    def record_bytes(self) -> int:
        return len(self.label_ranges) + IMAGE_BYTES


FORMATS = {
    "cifar10": CifarFormat(
        dataset="CIFAR-10",
        folder="cifar-10-batches-bin",
        pickled_folder="cifar-10-batches-py",
        archive_url="https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
        label_ranges=(10,),
        class_byte=0,
        parts={
            "train": tuple((f"data_batch_{index}.bin", 10_000) for index in range(1, 6)),
            "test": (("test_batch.bin", 10_000),),
        },
        names_file="batches.meta.txt",
        class_names=CIFAR10_CLASSES,
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2470, 0.2435, 0.2616),
    ),
    "cifar100": CifarFormat(
        dataset="CIFAR-100",
        folder="cifar-100-binary",
        pickled_folder="cifar-100-python",
        archive_url="https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
        label_ranges=(20, 100),
        class_byte=1,
        parts={"train": (("train.bin", 50_000),), "test": (("test.bin", 10_000),)},
        names_file="fine_label_names.txt",
        class_names=CIFAR100_CLASSES,
        mean=(0.5071, 0.4865, 0.4409),
        std=(0.2673, 0.2564, 0.2762),
    ),
}


def archive_folder(form: CifarFormat, root: Path | None) -> Path:
    """The archive's folder, given it or its parent (``None``: ``$EDGESSL_DATA``)."""
    root = default_data_root() if root is None else root
    files = [name for part in form.parts.values() for name, _ in part]
    if root.name == form.folder or any((root / name).is_file() for name in files):
        return root
    return root / form.folder


def missing_message(form: CifarFormat, path: Path, full_records: int) -> str:
    parent = path.parent.parent  # what --data-root named, or the archive folder's parent
    places = (parent / form.pickled_folder, parent)
    pickled = next((place for place in places if place.name == form.pickled_folder and place.is_dir()), None)
    if pickled is not None:
        return (
            f"{form.dataset} file {path} not found; {pickled} is the pickled python version, which edgessl "
            f"never reads (unpickling a data file can run code in it): extract the binary version "
            f"{form.archive_url} beside it"
        )
    return (
        f"{form.dataset} file {path} not found (expected {full_records * form.record_bytes:,} bytes for the "
        f"full dataset, or any whole number of {form.record_bytes}-byte records for a subset): extract "
        f"{form.archive_url} so that {path.parent} holds it, "
        "or point --data-root or EDGESSL_DATA at its parent"
    )


def check_labels(form: CifarFormat, path: Path, labels: np.ndarray) -> None:
    """Every label byte within its range; otherwise the file is not this archive's."""
    for column, limit in enumerate(form.label_ranges):
        bad = np.flatnonzero(labels[:, column] >= limit)
        if len(bad):
            raise DataError(
                f"{path} is not a {form.dataset} binary file: record {bad[0]} has label byte "
                f"{labels[bad[0], column]} at offset {column}, outside 0..{limit - 1}"
            )


def read_part(form: CifarFormat, folder: Path, part: str) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, 3, 32, 32)`` and class labels of one part, copied once from the memory maps."""
    maps = []
    for name, full_records in form.parts[part]:
        path = folder / name
        if not path.is_file():
            raise DataError(missing_message(form, path, full_records))
        count = whole_records(path, form.record_bytes, form.dataset, full_records, form.archive_url)
        records = np.memmap(path, dtype=np.uint8, mode="r", shape=(count, form.record_bytes))
        check_labels(form, path, records[:, : len(form.label_ranges)])
        maps.append(records)
    images = np.empty((sum(len(m) for m in maps), 3, NATIVE_SIZE, NATIVE_SIZE), dtype=np.uint8)
    labels = np.empty(len(images), dtype=np.int64)
    start = 0
    for records in maps:
        stop = start + len(records)
        images[start:stop] = records[:, len(form.label_ranges) :].reshape(-1, 3, NATIVE_SIZE, NATIVE_SIZE)
        labels[start:stop] = records[:, form.class_byte]
        start = stop
    return images, labels


def read_class_names(form: CifarFormat, folder: Path) -> tuple[str, ...]:
    path = folder / form.names_file
    if not path.is_file():
        return form.class_names
    text = read_text(path, f"{form.dataset} class names file", DataError)
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    if len(names) != len(form.class_names):
        raise DataError(
            f"{path} lists {len(names)} class names, {form.dataset} has {len(form.class_names)}; "
            f"copy it again from {form.archive_url}"
        )
    return names


def read_cifar(name: str, split: str, root: Path | None, image_size: int | None) -> SplitArrays:
    """One split of CIFAR-10 or CIFAR-100 at 32x32 (or resized to ``image_size``)."""
    check_split(name, split, SPLITS)
    form = FORMATS[name]
    folder = archive_folder(form, root)
    images, labels = read_part(form, folder, SPLITS[split])
    if image_size is not None:
        images = resize_images(images, image_size)
    return SplitArrays(
        name,
        split,
        images,
        None if split == "unlabeled" else labels,
        read_class_names(form, folder),
        form.mean,
        form.std,
    )


for _name in FORMATS:
    register_dataset(_name, NATIVE_SIZE)(partial(read_cifar, _name))
