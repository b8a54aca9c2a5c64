"""What an export wrote and measured, and the guarantee that a failed export leaves none of it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgessl.export.int8_report import Int8Report
from edgessl.export.metadata import ModelMetadata
from edgessl.export.mobile import MobileReport
from edgessl.export.roles import FileRole
from edgessl.export.usability import UsabilityReport
from edgessl.export.verify import Parity


@dataclass
class ExportResult:
    """Everything an export wrote and measured, by role name (:class:`~edgessl.export.roles.FileRole`).

    Roles: ``fp32``, ``int8``, the head's name; ``fixed``, ``fixed.int8``, ``fixed.HEAD`` for
    ``--fixed-batch``; ``ROLE.uint8`` for camera-input copies; ``ROLE.ort``; ``operators``.
    """

    checkpoint: str
    metadata: ModelMetadata
    files: dict[str, Path] = field(default_factory=dict)  # role -> file
    roles: dict[str, FileRole] = field(default_factory=dict)  # role -> what the file is (model files)
    parity: dict[str, Parity] = field(default_factory=dict)  # role -> verification numbers
    # head role -> share of images where the graph's label = Python's
    agreement: dict[str, float] = field(default_factory=dict)
    usability: dict[str, UsabilityReport] = field(default_factory=dict)  # .onnx role -> ORT mobile usability
    int8: Int8Report | None = None
    mobile: MobileReport | None = None
    weights: Any | None = None  # edgessl.backbones.LoadedWeights for --weights exports
    # LiteRT / Core ML / ExecuTorch: format name -> edgessl.export.torch_formats.FormatReport
    formats: dict[str, Any] = field(default_factory=dict)
    torch_head: Any | None = None  # the head module the torch-side formats share (built once)

    def record(self, role: FileRole, path: Path) -> None:
        """List ``path`` as the file of ``role``."""
        self.files[role.name], self.roles[role.name] = path, role


@contextmanager
def removed_on_failure(result: ExportResult) -> Iterator[None]:
    """Unlink every file ``result`` lists if the export fails after writing some of them."""
    from edgessl.export.torch_formats import remove

    try:
        yield
    except BaseException:
        for path in result.files.values():
            Path(path).unlink(missing_ok=True)
        for report in result.formats.values():
            for path in report.files.values():
                remove(path)
                Path(f"{path}.json").unlink(missing_ok=True)
        raise
