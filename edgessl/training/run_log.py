"""Per-step training metrics as JSON lines in ``RUN/metrics.jsonl``.

One object per optimiser step (``step``, ``epoch``, ``loss``, ``lr``, ``images_per_s``),
appended and flushed as the run goes, so a killed run keeps its curve. A resumed run
first drops the lines past the step it resumes from, so the file reads as one run.
"""

from __future__ import annotations

import errno
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgessl.errors import DiskFullError, TrainingDiverged

METRICS_FILE = "metrics.jsonl"


@dataclass
class PendingStep:
    """A step whose loss and diagnostics are still on the device; ``extra`` holds host values (monitor)."""

    step: int
    epoch: int
    lr: float
    loss: Any  # a 0-d tensor
    metrics: dict[str, Any]
    extra: dict[str, float] = field(default_factory=dict)


def read_back(pending: list[PendingStep], accelerator: Any, images_per_s: float) -> list[dict[str, Any]]:
    """The records of ``pending`` steps: one device sync, averaged over processes, up to the first
    non-finite loss.

    A non-finite loss is recorded as ``null`` and ends the list, so the log shows where
    the run went wrong and stops there.
    """
    import torch

    names = sorted(pending[0].metrics)
    stacked = torch.stack([torch.stack([p.loss, *(p.metrics[n] for n in names)]) for p in pending])
    if accelerator.num_processes > 1:
        stacked = accelerator.reduce(stacked, reduction="mean")
    records = []
    for item, (loss, *metrics) in zip(pending, stacked.tolist(), strict=True):
        finite = bool(np.isfinite(loss))
        record = {"step": item.step, "epoch": item.epoch, "loss": loss if finite else None, "lr": item.lr}
        records.append(
            {**record, "images_per_s": images_per_s, **dict(zip(names, metrics, strict=True)), **item.extra}
        )
        if not finite:
            records[-1]["nonfinite_loss"] = str(loss)
            break
    return records


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Every step record of a metrics file; any other line is skipped.

    A kill can tear the last line, and a damaged disk or an editor can leave bytes that
    are not UTF-8 or not JSON, or JSON that is not a step record (``[1, 2, 3]``): none of
    them may stop a resume or a plot, and none is a record.
    """
    records = []
    for line in Path(path).read_bytes().splitlines():
        try:
            record = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue
        if is_step_record(record):
            records.append(record)
    return records


def is_step_record(record: Any) -> bool:
    """A JSON object with an integer ``step``, as :class:`MetricsLog` writes them."""
    return (
        isinstance(record, dict)
        and isinstance(record.get("step"), int)
        and not isinstance(record.get("step"), bool)
    )


class MetricsLog:
    """Appends step records to a JSONL file; ``truncate_after(step)`` before resuming.

    Each write appends whole lines through one unbuffered ``write`` and, if the disk
    fills, cuts the file back to its previous end, so the log never ends in a torn line
    and closing it cannot fail a second time.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def truncate_after(self, step: int) -> None:
        """Keep only records with ``step <= step`` (those the resumed checkpoint includes)."""
        if not self.path.is_file():
            return
        kept = [record for record in read_metrics(self.path) if record["step"] <= step]
        text = "".join(json.dumps(record) + "\n" for record in kept)
        try:
            self.path.write_text(text)
        except OSError as exc:
            raise self._full(exc) from None

    def write(self, records: list[dict[str, Any]]) -> None:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        data = memoryview("".join(json.dumps(record) + "\n" for record in records).encode())
        end = os.lseek(self._fd, 0, os.SEEK_END)
        try:
            while data:
                data = data[os.write(self._fd, data) :]
        except OSError as exc:
            os.ftruncate(self._fd, end)
            raise self._full(exc) from None

    def _full(self, exc: OSError) -> Exception:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            return exc
        return DiskFullError(
            f"no space left to write {self.path}; free some space and continue with --resume "
            "(the log and the last checkpoint are intact)"
        )

    def has_records(self) -> bool:
        return self.path.is_file() and self.path.stat().st_size > 0

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def diverged(record: dict[str, Any], last: Path, saved_step: int) -> TrainingDiverged:
    """The error for a NaN/inf loss in ``record``: where it happened and which checkpoint survives."""
    kept = f"{last} (step {saved_step}) was kept" if saved_step else "no checkpoint was written"
    return TrainingDiverged(
        f"the loss became {record['nonfinite_loss']} at step {record['step']}; training stopped and {kept}. "
        "Try a lower --lr, --precision no (fp32), or a longer warm-up (--set optimizer.warmup_epochs=N)"
    )
