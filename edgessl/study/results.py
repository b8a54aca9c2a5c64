"""What one finished cell of a study leaves behind, as plain data.

Table 1 and Figures 1-2 are pure functions of a list of :class:`CellResult`, so they
can be re-rendered (or tested) without training anything. Each cell's result is a
JSON file in its run folder, written only once the cell is finished; its presence is
what makes a resumed study skip the cell.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgessl.files import write_json

CELL_FILE = "study_cell.json"
STUDY_JSON = "study.json"  # the study folder's record of every finished unit (edgessl.study.render)


@dataclass(frozen=True)
class CellResult:
    """Accuracy curves and costs of one (method, backbone) cell trained with one seed.

    ``curves[protocol]`` holds ``(pretraining epoch, validation accuracy)`` pairs in
    epoch order: one per checkpoint. Costs are those of the learned representation
    (the encoder a user deploys), measured once per cell.
    """

    method: str
    backbone: str
    epochs: int  # pretraining epochs the cell reached
    steps: int  # optimiser steps the cell's pretraining took
    curves: dict[str, tuple[tuple[int, float], ...]]
    train_seconds: float
    params: int
    macs: float  # multiply-accumulates of one image at the study's image size (thop)
    macs_224: float  # the same at 224x224, the size the reference study's FLOPs row uses
    image_size: int
    energy_kwh: float | None = None
    co2_kg: float | None = None
    recipe: str = "paper"  # the method's hyper-parameter set (edgessl.methods.recipes)
    # A distilled cell's teacher, as its checkpoint records it (source, backbone, params, sha256,
    # train_seconds when it is an edgessl run); None for a method without one.
    teacher: dict[str, Any] | None = None
    seed: int = 0  # the pretraining seed of this run of the cell (StudyConfig.seeds)
    # Why the run diverged (its loss became NaN or infinite), or None. A diverged run is a result, not a
    # failure of the study: it is kept, counted in Table 1 and left out of every accuracy and cost.
    diverged: str | None = None

    @property
    def teacher_seconds(self) -> float | None:
        """The teacher's own pretraining time, when it was an edgessl run (None otherwise)."""
        return None if self.teacher is None else self.teacher.get("train_seconds")

    def max_accuracy(self, protocol: str) -> float | None:
        """Table 1's number: the best validation accuracy over all checkpoints."""
        curve = self.curves.get(protocol, ())
        return max(accuracy for _, accuracy in curve) if curve else None

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["curves"] = {
            protocol: [list(point) for point in curve] for protocol, curve in self.curves.items()
        }
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> CellResult:
        curves = {
            protocol: tuple((int(e), float(a)) for e, a in curve)
            for protocol, curve in values["curves"].items()
        }
        return cls(**{**values, "curves": curves})


def write_cell(result: CellResult, run_dir: Path) -> Path:
    """Write the cell file atomically: a study killed mid-write must not look finished."""
    path = run_dir / CELL_FILE
    write_json(path, result.to_dict())
    return path


def read_cell(run_dir: Path) -> CellResult | None:
    """The cell's result, or None when the cell has not finished (or its file is unreadable)."""
    path = run_dir / CELL_FILE
    if not path.is_file():
        return None
    try:
        return CellResult.from_dict(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError):
        return None  # a foreign or older file: the cell is redone, its training resumes
