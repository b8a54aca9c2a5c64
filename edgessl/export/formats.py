"""Which file formats ``edgessl export --format`` writes, and what each needs installed.

ONNX is built in (it is the verified reference path). LiteRT (``.tflite``), Core ML
(``.mlpackage``) and ExecuTorch (``.pte``) convert the same PyTorch encoder through
their own converters and are optional extras: a missing package is one line naming the
extra before anything is loaded or written.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from edgessl.errors import ConfigError
from edgessl.registry import Registry


@dataclass(frozen=True)
class FileFormat:
    """A format's name, the file it writes, and the packages its converter and runtime need."""

    name: str
    suffix: str
    packages: tuple[str, ...]  # import names; empty for a built-in format
    extra: str  # ``pip install 'edgessl[EXTRA]'``
    runs_here: str  # where its runtime runs, in words (the export table says so)
    int8: str = ""  # what --int8 adds in this format, in words ("" when it adds nothing)


FORMATS: Registry[FileFormat] = Registry("export format")
for _format in (
    FileFormat("onnx", ".onnx", (), "", "ONNX Runtime, any OS", "int8 (QDQ U8S8, per-channel)"),
    FileFormat(
        "litert",
        ".tflite",
        ("litert_torch", "ai_edge_litert"),
        "litert",
        "LiteRT interpreter, Linux",
        "full-integer int8 (ai-edge-quantizer static_wi8_ai8: per-channel weights, int8 I/O)",
    ),
    FileFormat(
        "coreml",
        ".mlpackage",
        ("coremltools",),
        "coreml",
        "Core ML, macOS and iOS only",
        "fp16, 8-bit linear weights (per-channel symmetric)",
    ),
    FileFormat("executorch", ".pte", ("executorch",), "executorch", "ExecuTorch runtime, Linux"),
):
    FORMATS.register(_format.name)(_format)


def parse_formats(text: str) -> tuple[str, ...]:
    """``"onnx,litert"`` -> ``("onnx", "litert")``: known names, each once, in the order given."""
    names = [part.strip().lower() for part in text.split(",") if part.strip()]
    if not names:
        raise ConfigError(f"--format needs at least one of {', '.join(FORMATS.names())}; got '{text}'")
    for name in names:
        FORMATS.get(name)
    return tuple(dict.fromkeys(names))


def skipped_options(name: str, int8: bool) -> str:
    """The options a format cannot express, in one line (empty when it takes them all)."""
    if int8 and not FORMATS.get(name).int8:
        return f"--int8 adds nothing to {name}: it has no int8 program here, its files are fp32"
    return ""


def require_installed(name: str) -> None:
    """Fail in one line, naming the extra, when a format's converter or runtime is not installed."""
    spec = FORMATS.get(name)
    missing = [package for package in spec.packages if importlib.util.find_spec(package) is None]
    if missing:
        raise ConfigError(
            f"--format {name} needs the {' and '.join(missing)} package(s): "
            f"pip install 'edgessl[{spec.extra}]'"
        )
