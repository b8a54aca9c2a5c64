"""Table 1 of the reference study, for any grid: accuracy per method x backbone, with its
uncertainty over seeds, then costs.

Rows: per method (labelled with the recipe its cells trained with,
:mod:`edgessl.methods.recipes`), the maximum validation accuracy over pretraining
checkpoints, as the mean over seeds with the half-width of its 95% Student-t interval and
the number of seeds (``0.412 ± 0.031 (3)``); a last column gives the method's interquartile
mean over every backbone and seed with a stratified-bootstrap interval
(:mod:`edgessl.stats`). A "best" row names, per column, the method with the highest mean
only when its interval lies above every other method's; otherwise it lists the methods
whose intervals overlap the leader's as tied. Then, per
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

from edgessl.stats import Interval, iqm_interval, mean_interval
from edgessl.study.results import CellResult

MISSING = "n/a"
ACROSS = "all backbones (IQM)"  # the aggregate column of the accuracy rows
BEST = "best (95% CIs separate)"
DIVERGED = "diverged runs (NaN loss; not in the numbers above)"

Value = float | Interval | str | None  # a table entry: a cost, an accuracy with its interval, a name


@dataclass(frozen=True)
class TableRow:
    label: str
    values: tuple[Value, ...]  # one per column; None where the cell has no value
    fmt: str  # format spec of the rendered numbers, e.g. ".3f"
    # "accuracy" (a method's intervals), "best" (names), "note" (diverged runs) or "cost" (per-backbone means)
    kind: str = "cost"

    def formatted(self) -> list[str]:
        return [format_value(value, self.fmt) for value in self.values]


def format_value(value: Value, fmt: str) -> str:
    if value is None:
        return MISSING
    if isinstance(value, Interval):
        return value.format(fmt)
    if isinstance(value, str):
        return value
    return format(value, fmt)


def csv_fields(value: Value) -> list[str]:
    """``estimate, ci_low, ci_high, n`` of one entry, unrounded (empty where it has none)."""
    if value is None:
        return ["", "", "", ""]
    if isinstance(value, Interval):
        bounds = [repr(value.low), repr(value.high)] if value.known else ["", ""]
        return [repr(value.estimate), *bounds, str(value.n)]
    return [value if isinstance(value, str) else repr(value), "", "", ""]


@dataclass(frozen=True)
class StudyTable:
    title: str
    columns: tuple[str, ...]  # backbones
    rows: tuple[TableRow, ...]

    def rows_of(self, kind: str) -> list[TableRow]:
        return [row for row in self.rows if row.kind == kind]

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

    def to_dict(self) -> dict[str, object]:
        """Every entry as JSON data: intervals as ``estimate, low, high, n``."""
        return {
            "title": self.title,
            "columns": list(self.columns),
            "rows": [
                {
                    "label": row.label,
                    "values": [v.to_dict() if isinstance(v, Interval) else v for v in row.values],
                }
                for row in self.rows
            ],
        }

    def to_csv(self) -> str:
        """One line per entry (row, column), unrounded, with its interval and count, so the CSV can
        be re-analysed; empty where a value is missing. Per-seed values are in ``study.json``."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["row", "column", "estimate", "ci_low", "ci_high", "n"])
        for row in self.rows:
            for column, value in zip(self.columns, row.values, strict=True):
                writer.writerow([row.label, column, *csv_fields(value)])
        return buffer.getvalue()


def best_label(intervals: dict[str, Interval]) -> str | None:
    """The method whose interval lies above every other's, else ``tied: a, b`` (those overlapping the
    leader's interval), or None when there is nothing to compare."""
    if not intervals:
        return None
    ranked = sorted(intervals, key=lambda name: intervals[name].estimate, reverse=True)
    leader = intervals[ranked[0]]
    if len(ranked) == 1:
        return ranked[0] if leader.known else None
    if all(leader.separates_above(intervals[name]) for name in ranked[1:]):
        return ranked[0]
    tied = [name for name in ranked if intervals[name].overlaps(leader)]
    return f"tied: {', '.join(tied)}"


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
    """Table 1 from finished units (any number of seeds per cell); a method or backbone absent
    from ``cells`` shows n/a."""
    methods = _ordered(methods or [cell.method for cell in cells])
    backbones = _ordered(backbones or [cell.backbone for cell in cells])
    scores = seed_scores(cells, protocol)
    rows, by_column = [], {column: {} for column in (*backbones, ACROSS)}
    for method in methods:
        per_backbone = [scores.get((method, backbone), []) for backbone in backbones]
        entries: list[Interval | None] = [mean_interval(s) if s else None for s in per_backbone]
        entries.append(iqm_interval(per_backbone) if any(per_backbone) else None)
        for column, entry in zip(by_column, entries, strict=True):
            if entry is not None:
                by_column[column][method] = entry
        label = method_label(
            method,
            [cell.recipe for cell in cells if cell.method == method],
            [name for cell in cells if cell.method == method and (name := teacher_name(cell))],
        )
        rows.append(TableRow(label, tuple(entries), ".3f", "accuracy"))
    rows.append(TableRow(BEST, tuple(best_label(by_column[column]) for column in by_column), "", "best"))
    diverged = [cell for cell in cells if cell.diverged is not None]
    if diverged:  # said beside the numbers they are missing from, never silently dropped
        rows.append(TableRow(DIVERGED, diverged_entries(diverged, backbones), "", "note"))
    trained = [cell for cell in cells if cell.diverged is None]
    image_size = trained[0].image_size if trained else 0
    for label, fmt, value in cost_rows(image_size):
        per_backbone = tuple(
            _mean([value(cell) for cell in trained if cell.backbone == backbone]) for backbone in backbones
        )
        rows.append(TableRow(label, (*per_backbone, None), fmt))
    title = (
        f"Max validation accuracy ({protocol}) per pretext method x backbone: mean over seeds "
        "± half-width of the 95% CI (seeds); costs per backbone"
    )
    return StudyTable(title, (*backbones, ACROSS), tuple(rows))


def diverged_entries(diverged: Sequence[CellResult], backbones: Sequence[str]) -> tuple[str, ...]:
    """Per backbone, ``rotnet seed 1`` for each diverged run (``none``), then all of them."""

    def listed(cells: Sequence[CellResult]) -> str:
        return ", ".join(f"{cell.method} seed {cell.seed}" for cell in cells) or "none"

    per_backbone = tuple(listed([cell for cell in diverged if cell.backbone == b]) for b in backbones)
    return (*per_backbone, listed(diverged))


def seed_scores(cells: Sequence[CellResult], protocol: str) -> dict[tuple[str, str], list[float]]:
    """Each (method, backbone)'s Table 1 number per seed, in seed order (units without the protocol left
    out)."""
    scores: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for cell in cells:
        value = cell.max_accuracy(protocol)
        if value is not None:
            scores.setdefault((cell.method, cell.backbone), []).append((cell.seed, value))
    return {key: [value for _, value in sorted(pairs)] for key, pairs in scores.items()}
