"""What an evaluation returns, and where a run keeps it: ``RUN/eval/<protocol>_<checkpoint>.json``.

Every result file records what it was computed from (checkpoint fingerprint, data,
image size, options), so a sweep skips exactly the work that was already done with the
same settings and redoes anything whose checkpoint or settings changed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from edgessl.files import write_json
from edgessl.runs import RunFolder


@dataclass
class EvalResult:
    """One protocol's verdict on one representation.

    ``accuracy`` is top-1 on the test split; for protocols that train (linear, finetune)
    it is the maximum over epochs, the study's Table 1 number, and ``details`` also holds
    the per-epoch ``curve``, ``max``, ``final`` and ``best_epoch``. ``predictions`` are the
    test-set predictions behind ``accuracy`` (for confusion matrices); they are not saved.
    """

    protocol: str
    accuracy: float
    details: dict[str, Any] = field(default_factory=dict)
    predictions: torch.Tensor | None = field(default=None, repr=False)


def result_path(checkpoint: Path, protocol: str) -> Path:
    """``RUN/eval/<protocol>_<checkpoint stem>.json``, e.g. ``knn_epoch_0010.json``."""
    return RunFolder.of(checkpoint).eval_dir / f"{protocol}_{checkpoint.stem}.json"


def fingerprint(checkpoint: Path) -> dict[str, int]:
    """Size, modification time and inode: changes whenever the trainer rewrites the file.

    Checkpoints are written to a temporary file and renamed, so a rewrite (``last.pt``
    every epoch, a run restarted in the same folder) always gets a new inode, even when
    size and a coarse file-system timestamp stay the same.
    """
    stat = checkpoint.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "inode": stat.st_ino}


def load_record(path: Path) -> dict[str, Any] | None:
    """A saved result, or None when absent or unreadable (a half-written file is redone)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def save_record(record: dict[str, Any], path: Path) -> None:
    """Write ``record`` atomically, so a killed sweep never leaves a truncated result behind."""
    write_json(path, record)


class Curve:
    """Test accuracy after every training epoch; reports the max (the study's number) and final.

    Keeps the predictions of the best epoch so that ``accuracy`` and ``predictions``
    of the returned :class:`EvalResult` always agree.
    """

    def __init__(self, test_labels: torch.Tensor) -> None:
        self.test_labels = test_labels.cpu()
        self.accuracies: list[float] = []
        self.best_predictions: torch.Tensor | None = None

    def record(self, predictions: torch.Tensor) -> float:
        predictions = predictions.cpu()
        accuracy = float((predictions == self.test_labels).float().mean())
        if not self.accuracies or accuracy > max(self.accuracies):
            self.best_predictions = predictions
        self.accuracies.append(accuracy)
        return accuracy

    def result(self, protocol: str, **details: Any) -> EvalResult:
        best = max(range(len(self.accuracies)), key=self.accuracies.__getitem__)
        summary = {
            "curve": self.accuracies,
            "max": self.accuracies[best],
            "final": self.accuracies[-1],
            "best_epoch": best + 1,
            "epochs": len(self.accuracies),
        }
        return EvalResult(protocol, self.accuracies[best], {**summary, **details}, self.best_predictions)
