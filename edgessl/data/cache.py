"""The decode-once image cache: every source decoded once into one memory-mapped uint8 file per machine.

Image folders, Hugging Face ``datasets`` and WebDataset shards are compressed images;
training reads random batches of pixels many times. So each (source content, size) is
decoded once into ``$EDGESSL_CACHE/images/<key>/`` (default ``~/.cache/edgessl``):

* ``images.u8``: raw uint8 ``(N, 3, size, size)``, C order, no header, so any process
  maps it (``np.memmap(path, np.uint8, "r", shape=index["shape"])``) and every process
  and run on the machine shares the same pages of the OS page cache;
* ``labels.npy``: int64 per row, -1 for unlabelled rows;
* ``names.txt``: what each row was decoded from (a file name, a row, a shard member);
* ``index.json``: shape, each split's contiguous row range, class names, the channel
  statistics of the images training sees, the skipped inputs, and checksums of a sample
  of rows, written last.

Each split is a contiguous range of rows (sources order their rows train, test, then
unlabelled-only), so a split is a view of the map and nothing is copied.

This module opens a cache: it maps a finished folder, or has :mod:`edgessl.data.cache_build`
build it. The build happens in ``<key>.partial/`` under an exclusive ``flock`` on
``<key>.lock``: the first process builds, the others wait for the lock and then map the
finished folder, which appears by one atomic rename. A cache that fails its checks
(missing file, wrong size, index that does not parse, a sampled row whose checksum
differs) is rebuilt, never read as images.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgessl.data.arrays import RGB, SplitArrays
from edgessl.data.cache_build import build_cache
from edgessl.data.cache_rows import CACHE_FORMAT, row_checksum
from edgessl.data.image_source import ImageSource
from edgessl.errors import DataError


@dataclass(frozen=True)
class CacheStatus:
    """How this process got the cache: ``built`` it (with how many rows resumed from a killed build) or
    reused it."""

    path: Path
    built: bool
    seconds: float
    resumed_rows: int = 0

    def describe(self) -> str:
        """``"cache built in 41.2s (1,024 rows resumed)"`` or ``"cache reused in 0.3s"``: what the start
        line says."""
        how = "built" if self.built else "reused"
        resumed = f" ({self.resumed_rows:,} rows resumed)" if self.resumed_rows else ""
        return f"cache {how} in {self.seconds:.1f}s{resumed}"


@dataclass(frozen=True)
class CachedImages:
    """A finished cache mapped into memory: rows, labels, split ranges, statistics."""

    images: np.ndarray  # (N, 3, S, S) uint8 memory map
    labels: np.ndarray  # (N,) int64, -1 = unlabelled
    splits: dict[str, tuple[int, int]]
    class_names: tuple[str, ...]
    mean: RGB
    std: RGB
    skipped: tuple[str, ...]
    status: CacheStatus

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """The images (a view of the map) and labels of one split."""
        start, stop = self.splits[name]
        return self.images[start:stop], self.labels[start:stop]

    def split_arrays(self, dataset: str, split: str, where: str, hint: str) -> SplitArrays:
        """One split as :class:`SplitArrays` (views of the map), warning once about skipped inputs."""
        if self.skipped:
            shown = "; ".join(self.skipped[:10]) + (
                f"; and {len(self.skipped) - 10} more" if len(self.skipped) > 10 else ""
            )
            warnings.warn(f"skipped {len(self.skipped)} unreadable image(s): {shown}", stacklevel=3)
        images, labels = self.split(split)
        if not len(images):
            raise DataError(f"the '{split}' split {where} has no readable images: {hint}")
        return SplitArrays(
            dataset,
            split,
            images,
            None if split == "unlabeled" else labels,
            self.class_names,
            self.mean,
            self.std,
            self.skipped,
            self.status,
        )

    def names(self) -> list[str]:
        """What each row was decoded from (read on demand: a million names take a while)."""
        return (self.status.path / "names.txt").read_text().splitlines()


def cache_root() -> Path:
    return Path(os.environ.get("EDGESSL_CACHE", Path.home() / ".cache" / "edgessl")).expanduser() / "images"


def cache_key(source: ImageSource, size: int) -> str:
    key = json.dumps([CACHE_FORMAT, type(source).__name__, source.fingerprint(), size])
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def open_cache(source: ImageSource, size: int) -> CachedImages:
    """The cache of ``source`` at ``size``: mapped when it exists, else built (once per machine) and
    mapped."""
    started = time.perf_counter()
    root = writable_root()
    final = root / cache_key(source, size)
    cached = map_cache(final, started, built=False)
    if cached is not None:
        return cached
    with exclusive_lock(final.with_suffix(".lock")):  # another process may be building it: wait
        cached = map_cache(final, started, built=False)
        if cached is not None:
            return cached
        if final.exists():
            warnings.warn(f"the image cache {final} is damaged: rebuilding it", stacklevel=3)
            shutil.rmtree(final)
        resumed = build_cache(source, size, final.with_suffix(".partial"))
        os.replace(final.with_suffix(".partial"), final)
    cached = map_cache(final, started, built=True, resumed_rows=resumed)
    if cached is None:
        raise DataError(
            f"the image cache {final} failed its checks right after it was built: is the disk full?"
        )
    return cached


def writable_root() -> Path:
    """The cache folder, or a temporary one (with a warning) when it cannot be written."""
    root = cache_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root):
            return root
    except OSError as exc:
        fallback = Path(tempfile.gettempdir()) / f"edgessl-images-{os.getuid()}"
        warnings.warn(
            f"cannot write the image cache {root} ({exc}); using {fallback}: "
            "set EDGESSL_CACHE to a writable folder",
            stacklevel=3,
        )
        fallback.mkdir(parents=True, exist_ok=True)
        return fallback


@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """An ``flock`` the kernel releases when its holder dies, so a killed build never blocks the next."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def map_cache(folder: Path, started: float, built: bool, resumed_rows: int = 0) -> CachedImages | None:
    """The finished cache in ``folder`` as a memory map, or None when absent or failing any check."""
    try:
        index = json.loads((folder / "index.json").read_text())
        shape = tuple(index["shape"])
        if index["format"] != CACHE_FORMAT or len(shape) != 4 or shape[1] != 3:
            return None
        if (folder / "images.u8").stat().st_size != int(np.prod(shape)):
            return None
        images = np.memmap(folder / "images.u8", dtype=np.uint8, mode="c", shape=shape)
        labels = np.load(folder / "labels.npy", allow_pickle=False)
        if labels.dtype != np.int64 or labels.shape != shape[:1]:
            return None
        if any(row_checksum(images, int(row)) != crc for row, crc in index["checksums"]):
            return None
        splits = {name: (int(a), int(b)) for name, (a, b) in index["splits"].items()}
        status = CacheStatus(folder, built, time.perf_counter() - started, resumed_rows)
        return CachedImages(
            images,
            labels,
            splits,
            tuple(index["class_names"]),
            tuple(index["mean"]),  # type: ignore[arg-type]
            tuple(index["std"]),  # type: ignore[arg-type]
            tuple(index["skipped"]),
            status,
        )
    except (OSError, EOFError, ValueError, KeyError, TypeError):  # np.load of an empty file is an EOFError
        return None
