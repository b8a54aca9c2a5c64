"""WebDataset tar shards decoded into the decode-once cache: ``--data wds:PATTERN``.

``PATTERN`` lists shards with brace expansion, as WebDataset does
(``/data/shards/train-{000000..000099}.tar``), or a glob (``/data/shards/*.tar``).
With ``{split}`` in it (``/data/{split}-{0000..0009}.tar``) each split has its shards:
``train``; ``test``, else ``val``, else ``validation``; ``unlabeled``, else the train
shards without labels. Without ``{split}`` every shard is the train split. Needs the
``webdataset`` extra (``pip install 'edgessl[webdataset]'``).

Samples are grouped as WebDataset groups them (consecutive members sharing the key
before the first dot of the file name, with its folder; :func:`webdataset.tariterators.base_plus_ext`),
so a sample here is the sample a WebDataset pipeline yields. The image is the member
named by ``?image=`` (``--image-column``), else the first of ``jpg jpeg png webp bmp``
the sample has; the label is the integer text of ``?label=`` (default ``cls``), and a
split without one is unlabelled. Class names are ``"0".."K-1"`` (tar shards carry no
names).

Shards are read where they are: indexing walks the tar headers and records each
image member's offset and size, and workers ``pread`` only those bytes, so a build
reads each image once. Shards must be plain ``.tar`` (a compressed tar has no offsets
to read from); the cache key holds every shard's path, size and mtime.
"""

from __future__ import annotations

import functools
import glob
import hashlib
import io
import json
import os
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgessl.data.arrays import SplitArrays, check_split
from edgessl.data.cache import open_cache
from edgessl.data.decode import DEFAULT_IMAGE_SIZE, Decoded, try_decode
from edgessl.data.image_source import RowPlan, numbered_classes
from edgessl.data.schemes import SCHEMES, SchemeSpec
from edgessl.errors import ConfigError, DataError

SPLITS = ("unlabeled", "train", "test")
ROW_ORDER = ("train", "test", "unlabeled")  # the order splits take in the cache
SERVING = {"train": ("train",), "test": ("test", "val", "validation"), "unlabeled": ("unlabeled",)}
IMAGE_MEMBERS = ("jpg", "jpeg", "png", "webp", "bmp")
LABEL_MEMBER = "cls"
META_MEMBER = re.compile(r"__[^/]*__($|/)")  # webdataset's default skip_meta
HINT = "expected wds:/data/{split}-{000000..000009}.tar with KEY.jpg (and KEY.cls) members"


def import_webdataset() -> Any:
    try:
        import webdataset
    except ImportError:
        raise ConfigError(
            "--data wds: needs the webdataset package: pip install 'edgessl[webdataset]'"
        ) from None
    return webdataset


def expand(pattern: str) -> list[str]:
    """Shard paths of one pattern: brace expansion as WebDataset does it, then globbing."""
    import braceexpand  # installed with webdataset

    import_webdataset()
    paths = []
    for item in braceexpand.braceexpand(os.path.expanduser(pattern)):
        paths += sorted(glob.glob(item)) if glob.has_magic(item) else [item]
    return paths


def split_shards(pattern: str) -> dict[str, list[str]]:
    """edgessl's split -> its shards (``unlabeled`` absent: the train shards serve it)."""
    if "{split}" not in pattern:
        shards = expand(pattern)
        check_shards(shards, pattern)
        return {"train": shards}
    found = {}
    for split, names in SERVING.items():
        for name in names:
            shards = expand(pattern.replace("{split}", name))
            if any(os.path.exists(path) for path in shards):
                check_shards(shards, pattern.replace("{split}", name))
                found[split] = shards
                break
    if "train" not in found and "unlabeled" not in found:
        raise DataError(f"wds:{pattern} matches no train or unlabeled shards: {HINT}")
    return found


def check_shards(shards: list[str], pattern: str) -> None:
    missing = [path for path in shards if not os.path.isfile(path)]
    if not shards:
        raise DataError(f"wds:{pattern} matches no shard: {HINT}")
    if missing:
        raise DataError(
            f"wds:{pattern}: shard {missing[0]} does not exist "
            f"({len(missing)} of {len(shards)} missing): {HINT}"
        )
    compressed = [path for path in shards if not path.endswith(".tar")]
    if compressed:
        raise DataError(
            f"wds:{pattern}: {compressed[0]} is not a plain .tar; edgessl reads members in place, "
            "which a compressed shard does not allow: decompress it (e.g. gunzip) first"
        )


@dataclass(frozen=True)
class Member:
    """Where one sample's image bytes are in its shard: byte offset and size."""

    offset: int
    size: int


def index_shard(
    path: str, image: str | None, label: str
) -> Iterator[tuple[str, Member | None, bytes | None]]:
    """``(key, image member, label bytes)`` of each sample in one shard, grouped as WebDataset groups.

    Reads tar headers and label members only; an image member is recorded, not read.
    """
    from webdataset.tariterators import base_plus_ext

    key, members = None, {}
    with tarfile.open(path, "r:") as archive:
        for entry in archive:
            if not entry.isreg() or is_meta(entry.name):
                continue
            prefix, suffix = base_plus_ext(entry.name)
            if prefix is None:
                continue  # a name without an extension is no sample's member
            if prefix != key:
                if key is not None:
                    yield sample_of(key, members, archive, image, label)
                key, members = prefix, {}
            if suffix.lower() in members:
                raise DataError(f"{path}: {entry.name} appears twice in sample {prefix}: {HINT}")
            members[suffix.lower()] = entry
        if key is not None:
            yield sample_of(key, members, archive, image, label)


def is_meta(name: str) -> bool:
    """A ``__name__`` member WebDataset skips (its ``tar_file_iterator``'s metadata rule)."""
    from webdataset.tariterators import meta_prefix, meta_suffix

    top_level = "/" not in name and name.startswith(meta_prefix) and name.endswith(meta_suffix)
    return top_level or META_MEMBER.match(name) is not None


def sample_of(
    key: str, members: dict[str, tarfile.TarInfo], archive: tarfile.TarFile, image: str | None, label: str
) -> tuple[str, Member | None, bytes | None]:
    wanted = [image] if image is not None else list(IMAGE_MEMBERS)
    found = next((members[ext] for ext in wanted if ext in members), None)
    member = Member(found.offset_data, found.size) if found is not None else None
    extracted = archive.extractfile(members[label]) if label in members else None
    return key, member, extracted.read() if extracted is not None else None


@dataclass(frozen=True)
class ShardIndex:
    """Every row's key, shard, image offset and size, and label (-1 when none), in cache order."""

    keys: list[str]
    shards: np.ndarray  # int64 (N,), index into WebDatasetSource.paths
    offsets: np.ndarray  # int64 (N,)
    sizes: np.ndarray  # int64 (N,), -1: the sample has no image member
    labels: np.ndarray  # int64 (N,)
    splits: dict[str, tuple[int, int]]


@dataclass(frozen=True)
class WebDatasetSource:
    """Tar shards for the cache: rows train, test, then unlabeled-shard rows."""

    spec: SchemeSpec

    @property
    def description(self) -> str:
        return f"WebDataset shards wds:{self.spec.location}"

    @functools.cached_property
    def shards(self) -> dict[str, list[str]]:
        return split_shards(self.spec.location)

    @functools.cached_property
    def paths(self) -> list[str]:
        """Every shard once, in row order."""
        return [path for split in ROW_ORDER for path in self.shards.get(split, [])]

    def fingerprint(self) -> str:
        entries = []
        for path in self.paths:
            stat = os.stat(path)
            entries.append((os.path.abspath(path), stat.st_size, stat.st_mtime_ns))
        splits = {split: len(paths) for split, paths in self.shards.items()}
        options = [self.spec.image, self.spec.label, splits]
        return hashlib.sha256(json.dumps([self.spec.location, options, entries]).encode()).hexdigest()

    @functools.cached_property
    def index(self) -> ShardIndex:
        """Built once in the process that plans the cache and pickled to its workers with the source."""
        label = self.spec.label or LABEL_MEMBER
        number = {path: position for position, path in enumerate(self.paths)}
        keys, shards, offsets, sizes, labels = [], [], [], [], []
        splits = {}
        for split in ROW_ORDER:
            start = len(keys)
            for path in self.shards.get(split, []):
                for key, member, text in index_shard(path, self.spec.image, label):
                    keys.append(f"{path}:{key}")
                    shards.append(number[path])
                    offsets.append(member.offset if member else 0)
                    sizes.append(member.size if member else -1)
                    labels.append(-1 if split == "unlabeled" else parse_label(text, path, key, label))
            if split in self.shards:
                splits[split] = (start, len(keys))
        if "unlabeled" not in splits:
            splits["unlabeled"] = splits["train"]  # the train shards without labels: the same rows
        arrays = (np.array(values, dtype=np.int64) for values in (shards, offsets, sizes, labels))
        return ShardIndex(keys, *arrays, splits)

    def plan(self) -> RowPlan:
        index = self.index
        return RowPlan(index.keys, index.labels, index.splits, numbered_classes(index.labels))

    def decode_rows(self, rows: range, size: int) -> Iterator[Decoded]:
        index = self.index
        for row in rows:
            path = self.paths[int(index.shards[row])]
            what = index.keys[row]
            if index.sizes[row] < 0:
                yield f"{what} (the sample has no {self.spec.image or ' / '.join(IMAGE_MEMBERS)} member)"
                continue
            data = os.pread(shard_descriptor(path), int(index.sizes[row]), int(index.offsets[row]))
            yield try_decode(io.BytesIO(data), size, what)


@functools.lru_cache(maxsize=64)
def shard_descriptor(path: str) -> int:
    """One read-only descriptor per shard per worker process (closed when the worker exits)."""
    return os.open(path, os.O_RDONLY)


def parse_label(text: bytes | None, path: str, key: str, member: str) -> int:
    if text is None:
        return -1
    try:
        return int(text.decode().strip())
    except (UnicodeDecodeError, ValueError):
        raise DataError(f"{path}: {key}.{member} is not an integer class label: {HINT}") from None


@SCHEMES.register("wds")
def read_webdataset(spec: SchemeSpec, split: str, image_size: int | None = None) -> SplitArrays:
    """One split of WebDataset shards, as views of their decode-once cache at ``image_size`` (default 96)."""
    check_split("wds dataset", split, SPLITS)
    source = WebDatasetSource(spec)
    if split not in source.shards and not (split == "unlabeled" and "train" in source.shards):
        raise DataError(
            f"wds:{spec.location} has no shards for the '{split}' split "
            f"(it has: {', '.join(sorted(source.shards))}): {HINT}"
        )
    cached = open_cache(source, image_size or DEFAULT_IMAGE_SIZE)
    arrays = cached.split_arrays(
        Path(spec.location).parent.name or "wds", split, f"of wds:{spec.location}", HINT
    )
    if arrays.labels is not None and np.any(arrays.labels < 0):
        row = int(np.argmax(arrays.labels < 0))
        raise DataError(
            f"wds:{spec.location}: the {split} split's sample "
            f"{cached.names()[cached.splits[split][0] + row]} "
            f"has no .{spec.label or LABEL_MEMBER} label; "
            "evaluation needs a label in every train and test sample"
        )
    return arrays
