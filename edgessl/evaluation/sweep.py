"""Evaluate every checkpoint of a run, resumably, and plot accuracy against pretraining epochs.

A run folder means all of its ``checkpoints/epoch_NNNN.pt`` in epoch order (see
:func:`edgessl.checkpoints.list_checkpoints`). Each (checkpoint, protocol)
result is saved as soon as it is computed, so a killed sweep resumes where it stopped;
a saved result is reused only when the checkpoint file, the data, the image size and
every protocol option are unchanged. The data is keyed by what it holds, not by how it
is named: a hash of the train and test splits' pixels, labels and class names, so
another ``--data-root``, a replaced or truncated file, or an image added to or removed
from a folder is evaluated afresh, while the same data moved elsewhere is reused.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgessl.checkpoints import load_checkpoint, load_representation
from edgessl.data import load_labelled_splits
from edgessl.data.base import ImageDataset
from edgessl.devices import resolve_device
from edgessl.errors import ConfigError
from edgessl.evaluation.features import FeatureCache
from edgessl.evaluation.protocols import PROTOCOLS, evaluate_representation, options_for
from edgessl.evaluation.results import (
    fingerprint,
    load_record,
    result_path,
    save_record,
)
from edgessl.runs import RunFolder, list_checkpoints
from edgessl.stats import Interval, wilson_interval

Record = dict[str, Any]
IDENTITY_ROWS = 4096  # images hashed per update: bounded memory for a memory-mapped split
CSV_COLUMNS = (
    "epoch", "protocol", "accuracy", "ci_low", "ci_high", "test_images", "final", "method", "backbone",
    "data", "checkpoint",
)  # fmt: skip


class SplitCache:
    """The labelled train and test splits and their content hash, loaded once per image size for the
    whole sweep."""

    def __init__(self, data: str, data_root: str | Path | None) -> None:
        self.data, self.data_root = data, data_root
        self._splits: dict[int | None, tuple[ImageDataset, ImageDataset]] = {}
        self._identities: dict[int | None, str] = {}

    def get(self, image_size: int | None) -> tuple[ImageDataset, ImageDataset]:
        if image_size not in self._splits:
            self._splits[image_size] = load_labelled_splits(self.data, self.data_root, image_size)
        return self._splits[image_size]

    def identity(self, image_size: int | None) -> str:
        if image_size not in self._identities:
            self._identities[image_size] = splits_identity(*self.get(image_size))
        return self._identities[image_size]


def splits_identity(*splits: ImageDataset) -> str:
    """SHA-256 of each split's shape, class names, labels and every pixel (about 1 s per GB)."""
    digest = hashlib.sha256()
    for split in splits:
        images = split.images.numpy()
        digest.update(repr((images.shape, split.class_names)).encode())
        digest.update(split.labels.numpy().tobytes() if split.labels is not None else b"unlabelled")
        for start in range(0, len(images), IDENTITY_ROWS):
            digest.update(np.ascontiguousarray(images[start : start + IDENTITY_ROWS]).data)
    return digest.hexdigest()


def evaluation_size(checkpoint: Path, image_size: int | None) -> int:
    """The size a checkpoint is evaluated at: ``image_size``, else its pretraining size (read from its
    metadata)."""
    if image_size is not None:
        return image_size
    return int(load_checkpoint(checkpoint, mmap=True)["metadata"]["image_size"])


def settings_key(
    checkpoint: Path, data: str, data_identity: str, image_size: int | None, options: dict[str, Any]
) -> Record:
    """Everything a saved result depends on; a saved result is reused only if all of it matches."""
    return {
        "checkpoint_file": checkpoint.name,
        "fingerprint": fingerprint(checkpoint),
        "data": data,
        "data_identity": data_identity,
        "image_size": image_size,
        "options": options,
    }


def reusable(record: Record | None, key: Record) -> bool:
    return record is not None and all(record.get(name) == value for name, value in key.items())


def evaluate_checkpoints(
    run_or_checkpoint: str | Path,
    data: str,
    protocols: Sequence[str],
    data_root: str | Path | None = None,
    image_size: int | None = None,
    device: str | torch.device | None = None,
    *,
    on_record: Callable[[Record, bool], None] | None = None,
    **options: Any,
) -> list[Record]:
    """One record per (checkpoint, protocol), ordered by epoch then by ``protocols``.

    Records are saved as ``RUN/eval/<protocol>_<checkpoint>.json``; those already saved
    with the same settings are loaded instead of recomputed. ``image_size`` None
    evaluates at each checkpoint's pretraining size. ``options`` go to the protocols
    that know them (``k`` to knn, ``epochs`` to linear and finetune, ...).
    ``on_record(record, reused)`` is called as each record becomes available.
    """
    protocols = list(dict.fromkeys(protocols))
    if not protocols:
        raise ConfigError(f"name at least one protocol ({', '.join(PROTOCOLS.names())})")
    per_protocol = options_for(protocols, options)
    resolved = {
        name: dataclasses.asdict(PROTOCOLS.get(name).make_options(values))
        for name, values in per_protocol.items()
    }
    splits = SplitCache(data, data_root)
    device = resolve_device(device)
    records: list[Record] = []
    for checkpoint in list_checkpoints(run_or_checkpoint):
        size = evaluation_size(checkpoint, image_size)
        identity = splits.identity(size)
        keys = {
            name: settings_key(checkpoint, data, identity, image_size, resolved[name]) for name in protocols
        }
        saved = {name: load_record(result_path(checkpoint, name)) for name in protocols}
        todo = [name for name in protocols if not reusable(saved[name], keys[name])]
        fresh = (
            evaluate_one(
                checkpoint,
                todo,
                splits.get(size),
                device,
                per_protocol=per_protocol,
                keys=keys,
                on_record=on_record,
            )
            if todo
            else {}
        )
        for name in protocols:
            record = fresh.get(name) or saved[name]
            if name not in fresh and on_record is not None:
                on_record(record, True)
            records.append(record)
    return records


def evaluate_one(
    checkpoint: Path,
    protocols: list[str],
    splits: tuple[ImageDataset, ImageDataset],
    device: torch.device,
    *,
    per_protocol: dict[str, dict[str, Any]],
    keys: dict[str, Record],
    on_record: Callable[[Record, bool], None] | None,
) -> dict[str, Record]:
    """Load one checkpoint once and run (and save) each protocol on it, on ``splits`` (train, test) at its
    size."""
    loaded = load_representation(checkpoint)
    meta = loaded.metadata
    train, test = splits
    features = FeatureCache(loaded.model, device)  # shared by the protocols of this checkpoint
    records = {}
    for name in protocols:
        started = time.perf_counter()
        result = evaluate_representation(
            loaded.model, train, test, name, device, features=features, **per_protocol[name]
        )
        record = {
            **keys[name],
            "protocol": name,
            "epoch": loaded.epoch,
            "accuracy": result.accuracy,
            "details": result.details,
            "checkpoint": str(checkpoint),
            "method": meta.get("method"),
            "backbone": meta.get("backbone"),
            "eval_image_size": test.image_size,
            "test_images": len(test),  # the accuracy's denominator: its test-set sampling interval
            "device": str(device),
            "seconds": round(time.perf_counter() - started, 3),
        }
        save_record(record, result_path(checkpoint, name))
        records[name] = record
        if on_record is not None:
            on_record(record, False)
    return records


@dataclass(frozen=True)
class SweepResult:
    """All records of a sweep and the files written for each protocol."""

    records: list[Record]
    csv_files: dict[str, Path]
    png_files: dict[str, Path]


def sweep_run(
    run: str | Path,
    data: str,
    protocols: Sequence[str],
    data_root: str | Path | None = None,
    image_size: int | None = None,
    device: str | torch.device | None = None,
    *,
    on_record: Callable[[Record, bool], None] | None = None,
    **options: Any,
) -> SweepResult:
    """Evaluate every checkpoint of ``run``, then write ``RUN/eval/sweep_<protocol>.csv`` and ``.png``."""
    records = evaluate_checkpoints(
        run, data, protocols, data_root, image_size, device, on_record=on_record, **options
    )
    out = sweep_folder(Path(run))
    csv_files, png_files = {}, {}
    for protocol in dict.fromkeys(protocols):
        rows = [record for record in records if record["protocol"] == protocol]
        csv_files[protocol] = write_csv(rows, out / f"sweep_{protocol}.csv")
        png_files[protocol] = plot_sweep(rows, out / f"sweep_{protocol}.png")
    return SweepResult(records, csv_files, png_files)


def sweep_folder(run: Path) -> Path:
    """``RUN/eval`` for a run folder, its ``checkpoints/`` folder, or one of its checkpoints."""
    return RunFolder.of(run).eval_dir


def test_interval(record: Record) -> Interval | None:
    """The 95% Wilson interval of the record's accuracy over its test images (None for records saved
    before they counted them). It is one run's test-set sampling error; seeds add their own spread."""
    total = record.get("test_images")
    if not total:
        return None
    return wilson_interval(round(record["accuracy"] * total), int(total))


def csv_row(record: Record) -> dict[str, Any]:
    interval = test_interval(record)
    return {
        **{column: record.get(column) for column in CSV_COLUMNS},
        "ci_low": interval.low if interval else None,
        "ci_high": interval.high if interval else None,
        "final": record["details"].get("final", record["accuracy"]),
    }


def write_csv(records: list[Record], path: Path) -> Path:
    """One row per checkpoint: epoch, accuracy (max over downstream epochs where trained), final."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(csv_row(record) for record in records)
    return path


def plot_sweep(records: list[Record], path: Path) -> Path:
    """Accuracy against pretraining epochs (the study's Figure 1 for one cell), as a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    epochs = [record["epoch"] for record in records]
    # linear / finetune report max and final
    trained = any("final" in record["details"] for record in records)
    accuracies = [100 * record["accuracy"] for record in records]
    label = "max over downstream epochs" if trained else "accuracy"
    intervals = [test_interval(record) for record in records]
    if records and all(intervals):
        below = [max(0.0, a - 100 * i.low) for a, i in zip(accuracies, intervals, strict=True)]
        above = [max(0.0, 100 * i.high - a) for a, i in zip(accuracies, intervals, strict=True)]
        axes.errorbar(epochs, accuracies, yerr=[below, above], marker="o", capsize=3,
                      label=f"{label} (95% Wilson interval over {records[0]['test_images']} "
                            "test images)")  # fmt: skip
    else:
        axes.plot(epochs, accuracies, marker="o", label=label)
    if trained:
        axes.plot(
            epochs,
            [100 * record["details"]["final"] for record in records],
            marker=".",
            linestyle="--",
            label="last downstream epoch",
        )
    if axes.get_legend_handles_labels()[0] and (trained or all(intervals)):
        axes.legend(fontsize="small")
    first = records[0] if records else {}
    axes.set_title(
        f"{first.get('method')} / {first.get('backbone')} on {first.get('data')}: {first.get('protocol')}"
    )
    axes.set_xlabel("pretraining epochs")
    axes.set_ylabel("test accuracy (%)")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path
