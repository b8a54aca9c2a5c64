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

Building runs in worker processes, a chunk of rows per task; each worker writes its
rows straight into the file, so peak memory is one image per worker however large the
dataset. A finished chunk is recorded in ``done.jsonl``, so a build that is killed
resumes where it stopped. The build happens in ``<key>.partial/`` under an exclusive
``flock`` on ``<key>.lock``: the first process builds, the others wait for the lock and
then map the finished folder, which appears by one atomic rename. A cache that fails
its checks (missing file, wrong size, index that does not parse, a sampled row whose
checksum differs) is rebuilt, never read as images.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import multiprocessing
import os
import shutil
import tempfile
import time
import warnings
import zlib
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from edgessl.data.arrays import RGB, SplitArrays, channel_counts, stats_from_counts
from edgessl.errors import DataError

CACHE_FORMAT = 1  # bump when the layout of a cache folder changes
CHUNK_ROWS = 512  # rows per worker task: the unit a killed build resumes from
SAMPLED_ROWS = 64  # rows whose checksum every load verifies
IN_PROCESS_ROWS = 2 * CHUNK_ROWS  # smaller sources decode in the calling process (no pool start-up)
STATS_SPLITS = ("unlabeled", "train")  # the images training and the kNN bank see; never test

Decoded = np.ndarray | str  # a (3, size, size) uint8 image, or why the input could not be decoded


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


# ----------------------------------------------------------------------------- reading


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


def row_checksum(images: np.ndarray, row: int) -> int:
    return zlib.crc32(np.ascontiguousarray(images[row]).data)


def sampled_rows(count: int) -> list[int]:
    """Rows spread evenly over the file, first and last included (a truncation or a zeroed region shows)."""
    return sorted({int(row) for row in np.linspace(0, count - 1, min(count, SAMPLED_ROWS))})


# ----------------------------------------------------------------------------- building


def build_cache(source: ImageSource, size: int, partial: Path) -> int:
    """Decode ``source`` into ``partial`` (resuming a killed build there); the number of rows resumed."""
    plan = source.plan()
    count = len(plan.names)
    if count == 0:
        raise DataError(f"{source.description} has no images")
    shape = (count, 3, size, size)
    done = resume_state(partial, shape)
    images_path = partial / "images.u8"
    if not done:
        partial.mkdir(parents=True, exist_ok=True)
        with images_path.open("wb") as handle:
            handle.truncate(int(np.prod(shape)))  # sparse until written
        (partial / "shape.json").write_text(json.dumps(list(shape)))
    resumed = sum(rows.stop - rows.start for rows in done)
    with (partial / "done.jsonl").open("a") as log:
        for rows, skipped in decode_chunks(source, size, images_path, shape, remaining_chunks(count, done)):
            done[rows] = skipped
            log.write(json.dumps({"rows": [rows.start, rows.stop], "skipped": skipped}) + "\n")
            log.flush()
            os.fsync(log.fileno())  # the rows' pages were flushed by the worker before it returned
    skipped = {int(row): reason for reasons in done.values() for row, reason in reasons}
    finish(source, plan, partial, shape, skipped)
    return resumed


def remaining_chunks(count: int, done: dict[range, list[list]]) -> list[range]:
    """The rows no finished chunk covers, cut into chunks of ``CHUNK_ROWS``."""
    gaps, position = [], 0
    for start, stop in merged([(rows.start, rows.stop) for rows in done]) + [(count, count)]:
        if start > position:
            gaps.append((position, start))
        position = max(position, stop)
    return [
        range(a, min(a + CHUNK_ROWS, stop)) for start, stop in gaps for a in range(start, stop, CHUNK_ROWS)
    ]


def resume_state(partial: Path, shape: tuple[int, ...]) -> dict[range, list[list]]:
    """The chunks a killed build finished, ``{rows: [[row, reason], ...]}``; empty (and cleared) when
    none are usable."""
    try:
        if json.loads((partial / "shape.json").read_text()) != list(shape):
            raise ValueError("another shape")
        if (partial / "images.u8").stat().st_size != int(np.prod(shape)):
            raise ValueError("another size")
        done = {}
        for line in (partial / "done.jsonl").read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:  # the line being written when the build was killed
                continue
            done[range(*record["rows"])] = record["skipped"]
        return done
    except (OSError, ValueError, KeyError, TypeError):
        shutil.rmtree(partial, ignore_errors=True)
        return {}


def decode_chunks(
    source: ImageSource, size: int, images_path: Path, shape: tuple[int, ...], chunks: list[range]
) -> Iterator[tuple[range, list[list]]]:
    """``(rows, skipped rows)`` as each chunk is written: in worker processes, or here for a small source."""
    workers = min(decode_workers(), len(chunks))
    if workers <= 1 or sum(len(rows) for rows in chunks) <= IN_PROCESS_ROWS:
        start_worker(source, size, images_path, shape)
        try:
            for rows in chunks:
                yield rows, decode_chunk(rows)
        finally:
            os.close(_WORKER.pop("file").descriptor)
        return
    # forkserver: the workers start from a clean interpreter, not a fork of one with torch's threads
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=start_worker, initargs=(source, size, images_path, shape)
    ) as pool:
        futures = {pool.submit(decode_chunk, rows): rows for rows in chunks}
        for future in as_completed(futures):
            yield futures[future], future.result()


def decode_workers() -> int:
    """Worker processes: the cores this process may use (``EDGESSL_DECODE_WORKERS`` overrides)."""
    configured = os.environ.get("EDGESSL_DECODE_WORKERS")
    return int(configured) if configured else len(os.sched_getaffinity(0))


@dataclass(frozen=True)
class RowFile:
    """``images.u8`` read and written a block of rows at a time with ``pread``/``pwrite``.

    Building never maps the file: pages a process maps count towards its RSS, and a
    builder that mapped a 35 GB file would look (and, under memory pressure, act) 35 GB large.
    """

    descriptor: int
    row_shape: tuple[int, ...]

    @property
    def row_bytes(self) -> int:
        return int(np.prod(self.row_shape))

    def read(self, start: int, stop: int) -> np.ndarray:
        wanted = (stop - start) * self.row_bytes
        data = os.pread(self.descriptor, wanted, start * self.row_bytes)
        if len(data) != wanted:
            raise DataError(f"the image cache file ended early: read {len(data):,} of {wanted:,} bytes")
        return np.frombuffer(data, dtype=np.uint8).reshape(stop - start, *self.row_shape)

    def write(self, start: int, block: np.ndarray) -> None:
        view, offset = memoryview(np.ascontiguousarray(block)).cast("B"), start * self.row_bytes
        while view:  # pwrite may write less than asked
            written = os.pwrite(self.descriptor, view, offset)
            view, offset = view[written:], offset + written


_WORKER: dict = {}  # per worker process: the source, the size and the open file (set by start_worker)


def start_worker(source: ImageSource, size: int, images_path: Path, shape: tuple[int, ...]) -> None:
    _WORKER.update(source=source, size=size, file=RowFile(os.open(images_path, os.O_WRONLY), shape[1:]))


def decode_chunk(rows: range) -> list[list]:
    """Decode ``rows`` and write them as one block (one chunk in memory); ``[[row, reason]]`` of those
    skipped."""
    source, size, file = _WORKER["source"], _WORKER["size"], _WORKER["file"]
    block = np.zeros((len(rows), *file.row_shape), dtype=np.uint8)
    skipped = []
    for offset, decoded in enumerate(source.decode_rows(rows, size)):
        if isinstance(decoded, str):
            skipped.append([rows.start + offset, decoded])
        else:
            block[offset] = decoded
    file.write(rows.start, block)
    os.fdatasync(file.descriptor)  # on disk before done.jsonl says so
    return skipped


def finish(
    source: ImageSource, plan: RowPlan, partial: Path, shape: tuple[int, ...], skipped: dict[int, str]
) -> None:
    """Drop skipped rows, compute statistics and checksums, and write the index last."""
    keep = np.ones(shape[0], dtype=bool)
    keep[list(skipped)] = False
    if not keep.any():
        raise DataError(
            f"none of the {shape[0]} images of {source.description} could be decoded, e.g. {skipped[0]}"
        )
    descriptor = os.open(partial / "images.u8", os.O_RDWR)
    try:
        file = RowFile(descriptor, shape[1:])
        kept = compact(file, keep)
        os.ftruncate(descriptor, kept * file.row_bytes)
        position = np.concatenate([[0], np.cumsum(keep)])  # old row -> new row
        splits = {name: (int(position[a]), int(position[b])) for name, (a, b) in plan.splits.items()}
        mean, std = range_stats(file, [splits[name] for name in STATS_SPLITS if name in splits])
        checksums = [[row, row_checksum(file.read(row, row + 1), 0)] for row in sampled_rows(kept)]
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    np.save(partial / "labels.npy", plan.labels[keep].astype(np.int64))
    (partial / "names.txt").write_text("".join(f"{name}\n" for name, ok in zip(plan.names, keep) if ok))
    index = {
        "format": CACHE_FORMAT,
        "source": source.description,
        "shape": [kept, *shape[1:]],
        "splits": splits,
        "class_names": list(plan.class_names),
        "mean": list(mean),
        "std": list(std),
        "skipped": [reason for _, reason in sorted(skipped.items())],
        "checksums": checksums,
    }
    for name in ("shape.json", "done.jsonl"):
        (partial / name).unlink()
    (partial / "index.json").write_text(json.dumps(index))


def compact(file: RowFile, keep: np.ndarray) -> int:
    """Move the kept rows down over the skipped ones, in order, a chunk at a time; the number kept."""
    write = 0
    for start, stop in kept_runs(keep):
        for block in range(start, stop, CHUNK_ROWS):
            end = min(block + CHUNK_ROWS, stop)
            if write != block:
                file.write(write, file.read(block, end))
            write += end - block
    return write


def kept_runs(keep: np.ndarray) -> list[tuple[int, int]]:
    """``[(start, stop)]`` of the runs of True in ``keep``."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], keep.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def range_stats(file: RowFile, ranges: Sequence[tuple[int, int]]) -> tuple[RGB, RGB]:
    """Channel statistics over the union of row ranges (each row counted once), a chunk at a time."""
    counts = np.zeros((3, 256), dtype=np.float64)
    for start, stop in merged(ranges):
        for block in range(start, stop, CHUNK_ROWS):
            counts += channel_counts(file.read(block, min(block + CHUNK_ROWS, stop)))
    return stats_from_counts(counts)


def merged(ranges: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for start, stop in sorted(r for r in ranges if r[1] > r[0]):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], stop))
        else:
            out.append((start, stop))
    return out
