"""Image folders decoded once and cached as uint8: the ``FolderSource`` of the decode-once cache.

Which files make each split is :mod:`edgessl.data.folder_layout`'s job; this module
decodes the files a layout names. Every image is resized to ``image_size`` (default 96,
STL-10's size) by centre-cropping to a square and resizing with PIL
(:mod:`edgessl.data.decode`), decoded once into the memory-mapped cache of
:mod:`edgessl.data.cache`, keyed by the folder's absolute path, the image size, and
every file's name, size and mtime. Files that cannot be decoded are skipped with one
warning naming them and listed in ``SplitArrays.skipped``. Mean/std are computed over
the images training and the kNN bank see (the ``unlabeled`` and ``train`` splits, never
``test``), so every split normalises alike without the test images informing it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgessl.data.arrays import SplitArrays, check_split
from edgessl.data.cache import open_cache
from edgessl.data.decode import DEFAULT_IMAGE_SIZE, Decoded, try_decode
from edgessl.data.folder_layout import LAYOUT_HINT, SPLITS, FolderLayout, discover, resolved_folder
from edgessl.data.image_source import RowPlan


@dataclass(frozen=True)
class FolderSource:
    """An image folder for the decode-once cache: rows train, test, then ``unlabeled/``-only files."""

    root: Path
    layout: FolderLayout

    @property
    def description(self) -> str:
        return f"image folder {self.root}"

    def fingerprint(self) -> str:
        """Every file's name, size and mtime: a changed, added or removed file is a new cache."""
        prefix = str(self.root) + os.sep
        entries = []
        for name in self.layout.files():
            stat = os.stat(prefix + name)
            entries.append((name, stat.st_size, stat.st_mtime_ns))
        return hashlib.sha256(json.dumps([str(self.root), entries]).encode()).hexdigest()

    def plan(self) -> RowPlan:
        return self.row_plan

    @functools.cached_property
    def row_plan(self) -> RowPlan:
        """Computed once per process (workers decode many chunks of it)."""
        train, test = self.layout.labelled["train"], self.layout.labelled["test"]
        labelled = train + test
        names, labels = [name for name, _ in labelled], [label for _, label in labelled]
        splits = {"train": (0, len(train)), "test": (len(train), len(labelled))}
        if self.layout.unlabeled == [name for name, _ in train]:
            splits["unlabeled"] = splits["train"]  # the train split without labels: the same rows
        else:
            splits["unlabeled"] = (len(names), len(names) + len(self.layout.unlabeled))
            names += self.layout.unlabeled
            labels += [-1] * len(self.layout.unlabeled)
        return RowPlan(names, np.array(labels, dtype=np.int64), splits, self.layout.class_names)

    def decode_rows(self, rows: range, size: int) -> Iterator[Decoded]:
        names = self.row_plan.names
        for row in rows:
            yield try_decode(str(self.root / names[row]), size, str(self.root / names[row]))


def read_image_folder(root: Path, split: str, image_size: int | None = None) -> SplitArrays:
    """One split of the image folder ``root``, as uint8 arrays (views of the cache's map) at
    ``image_size`` (default 96)."""
    check_split("image-folder", split, SPLITS)
    root = resolved_folder(root)
    layout = discover(root)
    cached = open_cache(FolderSource(root, layout), image_size or DEFAULT_IMAGE_SIZE)
    return cached.split_arrays(root.name, split, f"of image folder {root}", LAYOUT_HINT)
