"""What every step of one export shares, passed as one value rather than as the same six arguments to
each exporter and each file it publishes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgessl.export.metadata import ModelMetadata
from edgessl.export.options import ExportOptions
from edgessl.export.result import ExportResult
from edgessl.export.splits import Splits


@dataclass(frozen=True)
class ExportJob:
    """The encoder's metadata, its images, the options, where files go (``out/stem...``), and the
    result every step records what it wrote in."""

    metadata: ModelMetadata
    splits: Splits
    options: ExportOptions
    out: Path
    stem: str
    result: ExportResult
