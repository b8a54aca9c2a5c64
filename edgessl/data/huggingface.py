"""Hugging Face ``datasets`` decoded into the decode-once cache: ``--data hf:PATH_OR_NAME``.

``PATH_OR_NAME`` is a folder written by ``save_to_disk``, a parquet file or a folder of
data files (split by file name as on the hub: ``train-*.parquet``, ``test-*.parquet``),
or, online, a hub name (``hf:tanganke/stl10``). Needs the ``hf`` extra
(``pip install 'edgessl[hf]'``).

Splits: ``train`` is the dataset's train split; ``test`` its test split, else its
validation split (as an image folder's ``val/``); ``unlabeled`` its unlabeled split,
else the train split without labels. A dataset without splits is the train split.

Columns: the image column is ``?image=`` (``--image-column``), else the one column of
``datasets.Image`` type; the label column is ``?label=`` (``--label-column``), else the
one ``ClassLabel`` column (whose names become the class names), else none, and the
dataset is unlabelled. Images are read as the bytes the dataset stores
(``Image(decode=False)``) and decoded by :mod:`edgessl.data.decode` exactly as an image
file is, so a dataset made from an image folder caches that folder's pixels.

The cache key holds the location, the columns, each split's fingerprint and row count,
and the name, size and mtime of every Arrow file behind it: a re-saved dataset is a
new cache.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
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
TEST_SPLITS = ("test", "validation", "valid", "val")  # the first one present serves as test
HINT = "name the columns with --image-column / --label-column (or hf:PATH?image=COLUMN&label=COLUMN)"


def import_datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise ConfigError(
            "--data hf: needs the Hugging Face datasets package: pip install 'edgessl[hf]'"
        ) from None
    return datasets


@functools.lru_cache(maxsize=4)
def open_splits(location: str) -> dict[str, Any]:
    """``{split name: datasets.Dataset}`` of a saved folder, data files or a hub name (once per process)."""
    datasets = import_datasets()
    path = Path(location).expanduser()
    if not path.exists() and (location.startswith(("/", ".", "~")) or location.count("/") > 1):
        raise DataError(f"hf:{location}: no such folder or file (a hub name is OWNER/NAME)")
    try:
        if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
            loaded = datasets.load_from_disk(str(path))
        elif path.is_file():
            kind = path.suffix.lstrip(".").lower()
            loaded = datasets.load_dataset("json" if kind == "jsonl" else kind, data_files=str(path))
        else:
            loaded = datasets.load_dataset(str(path) if path.exists() else location)
    except (OSError, ValueError, datasets.exceptions.DatasetNotFoundError) as exc:
        raise DataError(f"cannot open hf:{location}: {exc}") from None
    return dict(loaded) if isinstance(loaded, datasets.DatasetDict) else {"train": loaded}


def choose_splits(available: dict[str, Any], location: str) -> dict[str, str]:
    """edgessl's split -> the dataset's split that serves it (``unlabeled`` absent: the train rows)."""
    chosen = {}
    if "train" in available:
        chosen["train"] = "train"
    test = next((name for name in TEST_SPLITS if name in available), None)
    if test is not None:
        chosen["test"] = test
    if "unlabeled" in available:
        chosen["unlabeled"] = "unlabeled"
    if "train" not in chosen and "unlabeled" not in chosen:
        raise DataError(
            f"hf:{location} has the splits {', '.join(sorted(available))}: edgessl reads train, "
            f"test (or validation) and unlabeled"
        )
    return chosen


def image_column(features: dict[str, Any], wanted: str | None, where: str) -> str:
    """The column holding images: ``wanted``, else the one ``datasets.Image`` column."""
    datasets = import_datasets()
    images = [name for name, feature in features.items() if isinstance(feature, datasets.Image)]
    if wanted is not None:
        if wanted not in features:
            raise DataError(f"{where} has no column '{wanted}' (its columns: {', '.join(features)})")
        if wanted not in images:
            raise DataError(f"{where}: column '{wanted}' is {features[wanted]}, not an Image column")
        return wanted
    if len(images) != 1:
        found = f"several ({', '.join(images)})" if images else "none"
        raise DataError(f"{where} has {found} Image columns: {HINT}")
    return images[0]


def label_column(features: dict[str, Any], wanted: str | None, where: str) -> str | None:
    """The column holding class labels: ``wanted``, else the one ``ClassLabel`` column, else None."""
    datasets = import_datasets()
    if wanted is not None:
        if wanted not in features:
            raise DataError(f"{where} has no column '{wanted}' (its columns: {', '.join(features)})")
        return wanted
    classes = [name for name, feature in features.items() if isinstance(feature, datasets.ClassLabel)]
    if len(classes) > 1:
        raise DataError(f"{where} has several ClassLabel columns ({', '.join(classes)}): {HINT}")
    return classes[0] if classes else None


@dataclass(frozen=True)
class HuggingFaceSource:
    """A ``datasets`` dataset for the cache: rows train, test, then unlabeled-split rows.

    Holds only the spec, so it pickles small; each worker process opens the dataset
    itself (memory-mapped Arrow files, nothing copied).
    """

    spec: SchemeSpec

    @property
    def description(self) -> str:
        return f"Hugging Face dataset hf:{self.spec.location}"

    @functools.cached_property
    def layout(self) -> tuple[dict[str, str], str, str | None]:
        """(edgessl split -> dataset split, image column, label column), checked against every split read."""
        available = open_splits(self.spec.location)
        chosen = choose_splits(available, self.spec.location)
        first = available[chosen.get("train", chosen.get("unlabeled"))]
        where = f"hf:{self.spec.location}"
        image = image_column(first.features, self.spec.image, where)
        label = label_column(first.features, self.spec.label, where)
        for split, name in chosen.items():
            features = available[name].features
            needed = [image] + ([label] if label and split != "unlabeled" else [])
            missing = [column for column in needed if column not in features]
            if missing:
                raise DataError(f"{where} split '{name}' has no column '{missing[0]}': {HINT}")
        return chosen, image, label

    def fingerprint(self) -> str:
        available = open_splits(self.spec.location)
        chosen, image, label = self.layout
        parts: list[Any] = [self.spec.location, image, label]
        for split, name in sorted(chosen.items()):
            dataset = available[name]
            files = []
            for entry in dataset.cache_files:
                stat = os.stat(entry["filename"])
                files.append((entry["filename"], stat.st_size, stat.st_mtime_ns))
            parts.append([split, name, dataset.num_rows, getattr(dataset, "_fingerprint", ""), files])
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()

    def plan(self) -> RowPlan:
        return self.row_plan

    @functools.cached_property
    def row_plan(self) -> RowPlan:
        available = open_splits(self.spec.location)
        chosen, _, label = self.layout
        names: list[str] = []
        labels: list[np.ndarray] = []
        splits: dict[str, tuple[int, int]] = {}
        for split in ("train", "test", "unlabeled"):
            if split not in chosen:
                continue
            dataset = available[chosen[split]]
            start = len(names)
            names += [f"{chosen[split]}[{index}]" for index in range(dataset.num_rows)]
            labels.append(self.split_labels(dataset, split, label))
            splits[split] = (start, len(names))
        if "unlabeled" not in splits and "train" in splits:
            splits["unlabeled"] = splits["train"]  # the train split without labels: the same rows
        rows = np.concatenate(labels)
        labelled = [available[chosen[split]] for split in ("train", "test") if split in chosen]
        feature = labelled[0].features[label] if label is not None and labelled else None
        names_of = getattr(feature, "names", None)  # a ClassLabel's names; plain integers get numbers
        return RowPlan(names, rows, splits, tuple(names_of) if names_of else numbered_classes(rows))

    def split_labels(self, dataset: Any, split: str, label: str | None) -> np.ndarray:
        """int64 labels of one split; -1 for the unlabeled split and for an unlabelled dataset."""
        if label is None or split == "unlabeled":
            return np.full(dataset.num_rows, -1, dtype=np.int64)
        values = np.asarray(dataset.with_format("arrow")[label].to_numpy(zero_copy_only=False))
        if not np.issubdtype(values.dtype, np.integer):
            raise DataError(
                f"hf:{self.spec.location} column '{label}' holds {values.dtype} values, "
                f"not class indices: {HINT}"
            )
        if len(values) and values.min() < 0:
            row = int(np.argmin(values))
            raise DataError(
                f"hf:{self.spec.location} split '{dataset.split}' row {row} has label {values[row]}: "
                "a labelled split needs a class index in every row"
            )
        return values.astype(np.int64)

    def decode_rows(self, rows: range, size: int) -> Iterator[Decoded]:
        """Each row's stored bytes (or the file its path names) decoded as an image file is."""
        available = open_splits(self.spec.location)
        chosen, image, _ = self.layout
        for split, (start, stop) in self.row_plan.splits.items():
            if split == "unlabeled" and "unlabeled" not in chosen:
                continue  # the train rows, decoded under "train"
            first, last = max(rows.start, start), min(rows.stop, stop)
            if first >= last:
                continue
            table = available[chosen[split]].with_format("arrow")[first - start : last - start]
            for offset, stored in enumerate(table.column(image).to_pylist()):
                what = f"hf:{self.spec.location} {chosen[split]}[{first - start + offset}]"
                yield decode_stored(stored, size, what)


def decode_stored(stored: dict[str, Any] | None, size: int, what: str) -> Decoded:
    """An ``Image`` feature's stored value, ``{"bytes": ..., "path": ...}``, decoded (or why not)."""
    if not stored or (stored.get("bytes") is None and not stored.get("path")):
        return f"{what} (no image stored)"
    data = stored.get("bytes")
    return try_decode(io.BytesIO(data) if data is not None else stored["path"], size, what)


@SCHEMES.register("hf")
def read_huggingface(spec: SchemeSpec, split: str, image_size: int | None = None) -> SplitArrays:
    """One split of a Hugging Face dataset, as views of its decode-once cache at ``image_size`` (default
    96)."""
    check_split("hf dataset", split, SPLITS)
    source = HuggingFaceSource(spec)
    chosen, _, _ = source.layout
    if split not in chosen and not (split == "unlabeled" and "train" in chosen):
        serving = {"train": "train", "test": "test or validation", "unlabeled": "unlabeled or train"}
        raise DataError(
            f"hf:{spec.location} has no {serving[split]} split to serve as '{split}' (its splits: "
            f"{', '.join(sorted(open_splits(spec.location)))})"
        )
    cached = open_cache(source, image_size or DEFAULT_IMAGE_SIZE)
    return cached.split_arrays(
        Path(spec.location).name or spec.location, split, f"of hf:{spec.location}", HINT
    )
