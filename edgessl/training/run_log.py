"""Per-step training metrics as JSON lines in ``RUN/metrics.jsonl``.

One object per optimiser step (``step``, ``epoch``, ``loss``, ``lr``, ``images_per_s``),
appended and flushed as the run goes, so a killed run keeps its curve. A resumed run
first drops the lines past the step it resumes from, so the file reads as one run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.jsonl"


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Every record of a metrics file (a torn last line from a kill is skipped)."""
    records = []
    for line in Path(path).read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


class MetricsLog:
    """Appends step records to a JSONL file; ``truncate_after(step)`` before resuming."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle = None

    def truncate_after(self, step: int) -> None:
        """Keep only records with ``step <= step`` (those the resumed checkpoint includes)."""
        if not self.path.is_file():
            return
        kept = [record for record in read_metrics(self.path) if int(record.get("step", 0)) <= step]
        self.path.write_text("".join(json.dumps(record) + "\n" for record in kept))

    def write(self, records: list[dict[str, Any]]) -> None:
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.path.open("a", encoding="utf-8")
        self._handle.write("".join(json.dumps(record) + "\n" for record in records))
        self._handle.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
