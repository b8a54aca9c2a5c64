"""What a decoded source gives the decode-once cache: a content key, its rows in cache order, a decoder.

Image folders, Hugging Face datasets and WebDataset shards each are an :class:`ImageSource`;
the cache (:mod:`edgessl.data.cache`, :mod:`edgessl.data.cache_build`) knows them only
through it, so it never learns a folder layout, a dataset column or a tar member.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from edgessl.data.decode import Decoded


@dataclass(frozen=True)
class RowPlan:
    """What a source will decode, in cache order: one name and label per row, and each split's rows.

    ``splits`` maps a split to ``(start, stop)``; two splits either share a range (the
    pretext split that is the train split without labels) or do not overlap.
    """

    names: list[str]
    labels: np.ndarray  # int64 (N,), -1 = unlabelled
    splits: dict[str, tuple[int, int]]
    class_names: tuple[str, ...]


def numbered_classes(labels: np.ndarray) -> tuple[str, ...]:
    """``"0".."K-1"`` for plain integer labels (-1 = unlabelled), when a source stores no class names."""
    labelled = labels[labels >= 0]
    return tuple(str(index) for index in range(int(labelled.max()) + 1 if len(labelled) else 0))


class ImageSource(Protocol):
    """A dataset the cache can decode: its content key, its rows, and a decoder that runs in a worker.

    A source must be picklable (it is sent once to each worker process).
    """

    description: str  # "image folder /data/x", for messages

    def fingerprint(self) -> str:
        """Changes whenever the content could have changed (names, sizes, mtimes, versions)."""
        ...

    def plan(self) -> RowPlan: ...

    def decode_rows(self, rows: range, size: int) -> Iterator[Decoded]:
        """The images of ``rows`` at ``size``, in order; a string for an input that cannot be decoded."""
        ...
