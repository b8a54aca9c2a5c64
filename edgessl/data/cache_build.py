"""Building a cache folder: a source decoded by worker processes into ``<key>.partial/``, resumably.

Building runs in worker processes, a chunk of rows per task; each worker writes its
rows straight into the file, so peak memory is one image per worker however large the
dataset. A finished chunk is recorded in ``done.jsonl``, so a build that is killed
resumes where it stopped. Unreadable rows are then dropped (the kept rows move down, so
each split stays one contiguous range), the channel statistics and the sampled checksums
are computed, and ``index.json`` is written last: a folder without it is not a cache.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from edgessl.data.arrays import RGB, channel_counts, stats_from_counts
from edgessl.data.cache_rows import CACHE_FORMAT, RowFile, row_checksum, sampled_rows
from edgessl.data.image_source import ImageSource, RowPlan
from edgessl.errors import DataError

CHUNK_ROWS = 512  # rows per worker task: the unit a killed build resumes from
IN_PROCESS_ROWS = 2 * CHUNK_ROWS  # smaller sources decode in the calling process (no pool start-up)
STATS_SPLITS = ("unlabeled", "train")  # the images training and the kNN bank see; never test


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
