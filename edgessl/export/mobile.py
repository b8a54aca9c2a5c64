"""ORT format for ONNX Runtime Mobile, and the operators a reduced runtime build must include.

``onnxruntime.tools.convert_onnx_models_to_ort`` (the official converter) turns each
``.onnx`` into ``.ort`` (optimised at the "all" level without the x86-only NCHWc
transform, fixed optimisation style, ``target_platform="arm"`` so int8 QDQ groups are
kept for ARM kernels) and writes ``required_operators.config``: per opset domain, the
operators every converted model uses. A reduced build takes that file via
``build.sh --minimal_build --include_ops_by_config required_operators.config``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from edgessl.export.metadata import ExportError

CONFIG_NAME = "required_operators.config"


@dataclass(frozen=True)
class MobileReport:
    """The ``.ort`` files written and the operator set of a reduced build that runs all of them."""

    ort_files: tuple[Path, ...]
    config: Path
    operators: dict[str, tuple[str, ...]]  # "ai.onnx;20" -> ("Conv", "Relu", ...)

    def summary(self) -> str:
        return "; ".join(f"{domain}: {', '.join(ops)}" for domain, ops in self.operators.items())


@contextlib.contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    logger = logging.getLogger(logger_name)
    previous = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(previous)


def parse_operator_config(text: str) -> dict[str, tuple[str, ...]]:
    """``domain;opset;Op1,Op2`` lines (``#`` comments) -> ``{"domain;opset": (ops...)}``."""
    operators: dict[str, tuple[str, ...]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        domain, opset, ops = line.split(";", 2)
        operators[f"{domain};{opset}"] = tuple(sorted(op.strip() for op in ops.split(",") if op.strip()))
    return operators


def convert_to_ort(onnx_files: list[Path], out_dir: Path, config_name: str = CONFIG_NAME) -> MobileReport:
    """Convert ``onnx_files`` to ``out_dir/<stem>.ort`` and write one operator config for all of them.

    Conversion happens in a scratch folder and files are moved into ``out_dir`` only
    when every model converted, so a failure leaves nothing half-written.
    """
    from onnxruntime.tools.convert_onnx_models_to_ort import OptimizationStyle, convert_onnx_models_to_ort

    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".edgessl-ort-", dir=out_dir) as scratch:
        source, target = Path(scratch, "onnx"), Path(scratch, "ort")
        source.mkdir()
        for path in onnx_files:
            shutil.copyfile(path, source / path.name)
        try:
            with contextlib.redirect_stdout(io.StringIO()), _quiet("ort_format_model.utils"):  # the converter narrates every step
                convert_onnx_models_to_ort(source, output_dir=target, optimization_styles=[OptimizationStyle.Fixed], target_platform="arm")
        except Exception as exc:
            raise ExportError(f"conversion to ORT format failed: {(str(exc).splitlines() or [type(exc).__name__])[0][:300]}") from exc
        produced = [target / f"{path.stem}.ort" for path in onnx_files]
        config = target / CONFIG_NAME
        missing = [p.name for p in [*produced, config] if not p.is_file()]
        if missing:
            raise ExportError(f"ORT conversion did not write {', '.join(missing)}")
        operators = parse_operator_config(config.read_text())
        final = [out_dir / p.name for p in produced]
        for src, dst in zip([*produced, config], [*final, out_dir / config_name], strict=True):
            shutil.move(src, dst)
    return MobileReport(tuple(final), out_dir / config_name, operators)
