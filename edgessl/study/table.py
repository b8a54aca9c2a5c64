"""Table 1 of the reference study, for any grid: accuracy per method x backbone, then costs.

Rows: the maximum validation accuracy over pretraining checkpoints per method (labelled with
the recipe its cells trained with, :mod:`edgessl.methods.recipes`); then, per
backbone and averaged over the methods trained on it, the representation's MACs (thop's
multiply-accumulates; FLOPs = 2 x MACs, both shown because papers mix them up — the
reference study's "FLOPs" row is in fact MACs at 224x224), parameters, training time,
energy and CO2. Columns are backbones, as in the study.
"""

from __future__ import annotations

import csv
import io
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from edgessl.study.results import CellResult

MISSING = "n/a"


@dataclass(frozen=True)
class TableRow:
    label: str
    values: tuple[float | None, ...]  # one per column; None where the cell has no value
    fmt: str  # format spec of the rendered values, e.g. ".3f"

    def formatted(self) -> list[str]:
        return [MISSING if value is None else format(value, self.fmt) for value in self.values]


@dataclass(frozen=True)
class StudyTable:
    title: str
    columns: tuple[str, ...]  # backbones
    rows: tuple[TableRow, ...]

    def to_markdown(self) -> str:
        header = ["", *self.columns]
        lines = [
            f"**{self.title}**",
            "",
            "| " + " | ".join(header) + " |",
            "|" + "|".join(["---"] + ["---:"] * len(self.columns)) + "|",
        ]
        lines += ["| " + " | ".join([row.label, *row.formatted()]) + " |" for row in self.rows]
        return "\n".join(lines) + "\n"

    def to_csv(self) -> str:
        """Unrounded values, so the CSV can be re-analysed; empty where a value is missing."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["row", *self.columns])
        for row in self.rows:
            writer.writerow([row.label, *("" if value is None else repr(value) for value in row.values)])
        return buffer.getvalue()


def _mean(values: Sequence[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return statistics.fmean(known) if known else None


def _ordered(names: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(names))


# (label, format, value of one cell): averaged per backbone over its methods.
CostRow = tuple[str, str, Callable[[CellResult], "float | None"]]


def cost_rows(image_size: int) -> list[CostRow]:
    size = f"{image_size}x{image_size}"
    return [
        (f"Avg. MACs @{size} (thop multiply-accumulates)", ".3E", lambda cell: cell.macs),
        (f"Avg. FLOPs @{size} (= 2 x MACs)", ".3E", lambda cell: 2 * cell.macs),
        ("Avg. MACs @224x224 (the study's 'FLOPs' row)", ".3E", lambda cell: cell.macs_224),
        ("Avg. params (M)", ".3f", lambda cell: cell.params / 1e6),
        ("Avg. training time (s)", ".1f", lambda cell: cell.train_seconds),
        # a distilled cell also cost its teacher's pretraining: shown beside, and added in, so no row hides it
        ("Avg. teacher training time (s)", ".1f", lambda cell: cell.teacher_seconds),
        (
            "Avg. training time incl. teacher (s)",
            ".1f",
            lambda cell: cell.train_seconds + (cell.teacher_seconds or 0.0),
        ),
        ("Avg. energy (kWh)", ".3g", lambda cell: cell.energy_kwh),
        ("Avg. CO2 (kg CO2eq)", ".3g", lambda cell: cell.co2_kg),
    ]


def method_label(method: str, recipes: Sequence[str], teachers: Sequence[str] = ()) -> str:
    """``simclr (short recipe)``, ``seed (short recipe; teacher simclr resnet18)``: a method's row says which
    hyper-parameters its numbers come from, and what a distilled row learned from."""
    names = sorted(set(recipes))
    parts = [f"{' / '.join(names)} recipe"] if names else []
    if teachers:
        parts.append(f"teacher {' / '.join(sorted(set(teachers)))}")
    return f"{method} ({'; '.join(parts)})" if parts else method


def teacher_name(cell: CellResult) -> str | None:
    if cell.teacher is None:
        return None
    trained = f"{cell.teacher['method']} " if cell.teacher.get("method") else ""
    return f"{trained}{cell.teacher.get('backbone')}"


def build_table(
    cells: Sequence[CellResult],
    protocol: str,
    methods: Sequence[str] | None = None,
    backbones: Sequence[str] | None = None,
) -> StudyTable:
    """Table 1 from finished cells; a method or backbone absent from ``cells`` shows n/a."""
    methods = _ordered(methods or [cell.method for cell in cells])
    backbones = _ordered(backbones or [cell.backbone for cell in cells])
    by_key = {(cell.method, cell.backbone): cell for cell in cells}
    rows = [
        TableRow(
            method_label(
                method,
                [cell.recipe for cell in cells if cell.method == method],
                [name for cell in cells if cell.method == method and (name := teacher_name(cell))],
            ),
            tuple(
                by_key[method, backbone].max_accuracy(protocol) if (method, backbone) in by_key else None
                for backbone in backbones
            ),
            ".3f",
        )
        for method in methods
    ]
    image_size = cells[0].image_size if cells else 0
    for label, fmt, value in cost_rows(image_size):
        per_backbone = tuple(
            _mean([value(cell) for cell in cells if cell.backbone == backbone]) for backbone in backbones
        )
        rows.append(TableRow(label, per_backbone, fmt))
    title = f"Max validation accuracy ({protocol}) per pretext method x backbone, and costs per backbone"
    return StudyTable(title, backbones, tuple(rows))
