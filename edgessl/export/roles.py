"""What one exported file is, as one typed value.

The role names that key :class:`~edgessl.export.result.ExportResult` and
:class:`~edgessl.export.torch_formats.FormatReport` (``fp32``, ``int8``, ``knn``, ``fixed``,
``fixed.int8``, ``fixed.HEAD``, ``ROLE.uint8``, ``ROLE.ort``; ``litert``, ``litert.int8``,
``litert.HEAD.uint8`` ...) and the variant part of each file name (``_b4_int8_uint8``) are both
written from a :class:`FileRole`, so that no code takes a role apart as a string.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

ONNX = "onnx"
FP32, FIXED, INT8, CAMERA, ORT = "fp32", "fixed", "int8", "uint8", "ort"


@dataclass(frozen=True)
class FileRole:
    """An exported file's format and variant: at most one of ``int8`` and ``head``."""

    format: str = ONNX  # "onnx" or a torch-side format (edgessl.export.formats.FORMATS)
    fixed: bool = False  # an ONNX copy with its batch axis pinned (torch-side files always are, unsaid)
    int8: bool = False
    head: str | None = None  # the in-file classifier (edgessl.export.heads.HEADS), None: features
    camera: bool = False  # takes uint8 camera frames (edgessl.export.inputs)
    ort: bool = False  # the ORT-format conversion of an ONNX file

    @property
    def name(self) -> str:
        """The role as results, tables and metadata name it, e.g. ``fixed.knn.uint8.ort``."""
        first = self.format if self.format != ONNX else FIXED if self.fixed else None
        if first is None and not self.variant:
            first = FP32
        return ".".join(([first] if first else []) + self.variant + self.copies)

    def __str__(self) -> str:
        return self.name

    @property
    def variant(self) -> list[str]:
        return [INT8] if self.int8 else [self.head] if self.head else []

    @property
    def copies(self) -> list[str]:
        return ([CAMERA] if self.camera else []) + ([ORT] if self.ort else [])

    def file_stem(self, stem: str, batch: int | None) -> str:
        """``STEM[_bBATCH][_int8|_HEAD][_uint8]``: every format names its files alike."""
        parts = [stem] + ([f"b{batch}"] if batch is not None else []) + self.variant
        return "_".join(parts + ([CAMERA] if self.camera else []))

    def camera_copy(self) -> FileRole:
        return replace(self, camera=True)

    def ort_copy(self) -> FileRole:
        return replace(self, ort=True)
