"""Table 1, Figures 1-2 and ``study.json`` of whatever units are finished, written atomically so
that a reader (or another worker) never sees a half-written file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgessl.files import atomic_output, write_json
from edgessl.study.config import StudyConfig, study_to_dict
from edgessl.study.figures import figure_by_backbone, figure_by_method, save_figure
from edgessl.study.folder import FIGURE_1, FIGURE_2, TABLE_CSV, TABLE_MD
from edgessl.study.results import STUDY_JSON, CellResult
from edgessl.study.table import StudyTable, build_table


def render_outputs(
    cells: list[CellResult], config: StudyConfig, root: Path
) -> tuple[StudyTable, dict[str, Path]]:
    """Table 1 (Markdown, CSV), Figures 1-2 (PNG) and ``study.json`` of the finished units."""
    table = build_table(cells, config.protocol, config.methods, config.backbones)
    outputs = {"table_md": root / TABLE_MD, "table_csv": root / TABLE_CSV, "json": root / STUDY_JSON}
    write_json(outputs["json"], study_record(config, cells, table))
    for key, text in (("table_md", table.to_markdown()), ("table_csv", table.to_csv())):
        with atomic_output(outputs[key]) as tmp:  # a reader never sees a half-written table
            tmp.write_text(text)
    figures = {
        "figure1": (figure_by_method, root / FIGURE_1),
        "figure2": (figure_by_backbone, root / FIGURE_2),
    }
    for key, (draw, path) in figures.items():
        with atomic_output(path) as tmp:
            save_figure(draw(cells, config.protocol, config.methods, config.backbones), tmp)
        outputs[key] = path
    return table, outputs


def study_record(config: StudyConfig, cells: list[CellResult], table: StudyTable) -> dict[str, Any]:
    """What ``study.json`` holds: the config, every finished unit with its per-seed values (curves,
    costs), and Table 1's entries with their intervals, so any statistic can be recomputed."""
    return {
        "config": study_to_dict(config),
        "protocol": config.protocol,
        "seeds": list(config.seed_values()),
        "units": [cell.to_dict() for cell in cells],
        "table": table.to_dict(),
    }
