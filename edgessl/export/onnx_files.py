"""The verified ONNX files of an export: the fp32 encoder, its int8 copy and its in-graph head, each
also with its batch axis pinned for ``--fixed-batch``.

Every file goes through :func:`publish`: its mobile usability report is attached, it is written
under a temporary name and checked, and only then renamed into ``--out`` and recorded under its
:class:`~edgessl.export.roles.FileRole`. The camera-input and ORT copies of these files
(:mod:`~edgessl.export.camera_copies`, :mod:`~edgessl.export.ort_copies`) are published the same way.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from edgessl.export import heads
from edgessl.export.heads import HEAD_AGREEMENT, HeadFit
from edgessl.export.metadata import ExportError, ModelMetadata
from edgessl.export.onnx_export import fix_batch, save_checked, set_metadata
from edgessl.export.options import ExportOptions
from edgessl.export.ort_eval import onnx_features, open_session
from edgessl.export.quantize import calibration_subset, quantize_int8
from edgessl.export.result import ExportResult
from edgessl.export.roles import FP32, FileRole
from edgessl.export.splits import Splits
from edgessl.export.usability import UsabilityReport, attach_report, check_usability
from edgessl.export.verify import check_onnx, verify_fp32, verify_int8


def batches(options: ExportOptions) -> list[int | None]:
    """The batch axes every ONNX variant is written with: dynamic (None), and ``--fixed-batch``."""
    return [None] if options.fixed_batch is None else [None, options.fixed_batch]


def onnx_file(out: Path, stem: str, role: FileRole, fixed_batch: int | None) -> Path:
    """``out/STEM[_bN][_int8|_HEAD][_uint8].onnx``: the batch is in the name of fixed-batch files only."""
    return out / f"{role.file_stem(stem, fixed_batch if role.fixed else None)}.onnx"


def pinned(proto: onnx.ModelProto, batch: int | None, metadata: ModelMetadata) -> onnx.ModelProto:
    """``proto`` with its batch axis fixed to ``batch`` (itself for a dynamic batch)."""
    if batch is None:
        return proto
    fixed = fix_batch(proto, batch)
    set_metadata(fixed, metadata)
    return fixed


def usability_of(proto: onnx.ModelProto, name: str) -> UsabilityReport:
    """The mobile usability report of ``proto``, named ``name`` (checked on a scratch copy)."""
    with tempfile.TemporaryDirectory(prefix="edgessl-report-") as scratch:
        path = Path(scratch) / name
        onnx.save_model(proto, str(path), save_as_external_data=False)
        return dataclasses.replace(check_usability(path), file=name)


def publish(
    proto: onnx.ModelProto, path: Path, check: Callable[[Path], Any], result: ExportResult, role: FileRole
) -> Any:
    """Attach the usability report, write ``proto`` to ``path`` once ``check`` passed, and record it under
    ``role``; returns what ``check`` measured."""
    report = usability_of(proto, path.name)
    attach_report(proto, report)
    value = save_checked(proto, path, check)
    result.record(role, path)
    result.usability[role.name] = report
    return value


def publish_encoders(
    proto: onnx.ModelProto,
    reference: np.ndarray,
    *,
    splits: Splits,
    metadata: ModelMetadata,
    options: ExportOptions,
    out: Path,
    stem: str,
    result: ExportResult,
) -> None:
    """The fp32 encoder (and its fixed-batch copy), against PyTorch's ``reference`` features."""
    for batch in batches(options):
        role = FileRole(fixed=batch is not None)
        what = "fp32 ONNX export" if batch is None else f"fixed-batch ({batch}) fp32 export"
        result.parity[role.name] = publish(
            pinned(proto, batch, metadata),
            onnx_file(out, stem, role, options.fixed_batch),
            lambda tmp, what=what: verify_fp32(tmp, reference, splits.verify, what),
            result,
            role,
        )


def quantized(fp32: Path, splits: Splits, metadata: ModelMetadata, options: ExportOptions) -> onnx.ModelProto:
    """The int8 QDQ model of the published fp32 file, calibrated on training images (verified when
    published)."""
    with tempfile.TemporaryDirectory(prefix="edgessl-int8-") as scratch:
        path = Path(scratch) / "int8.onnx"
        quantize_int8(
            fp32,
            path,
            calibration_subset(splits.train.images, options.calibration_images),
            metadata.replace(precision="int8 (QDQ U8S8, per-channel)"),
        )
        return onnx.load(str(path))


def publish_int8(
    reference: np.ndarray,
    *,
    splits: Splits,
    metadata: ModelMetadata,
    options: ExportOptions,
    out: Path,
    stem: str,
    result: ExportResult,
) -> None:
    """The int8 copy of the published fp32 file (and its fixed-batch copy), against PyTorch's features."""
    int8 = quantized(result.files[FP32], splits, metadata, options)
    for batch in batches(options):
        role = FileRole(fixed=batch is not None, int8=True)
        result.parity[role.name] = publish(
            int8 if batch is None else fix_batch(int8, batch),
            onnx_file(out, stem, role, options.fixed_batch),
            lambda tmp, role=role: verify_int8(tmp, reference, splits.verify, f"{role} export"),
            result,
            role,
        )


def publish_heads(
    fit: HeadFit,
    encoder: onnx.ModelProto,
    *,
    splits: Splits,
    metadata: ModelMetadata,
    options: ExportOptions,
    out: Path,
    stem: str,
    result: ExportResult,
) -> None:
    """The encoder with the ``--head`` classifier in the graph, fitted on the published fp32 file's
    features; its labels must be the Python classifier's."""
    session = open_session(result.files[FP32])
    classes = splits.train.class_names
    head = fit(onnx_features(session, splits.train.images), splits.train.labels, len(classes), options)
    head_proto = head.graph(encoder)
    head_metadata = metadata.replace(head=options.head, class_names=tuple(classes))
    expected = head.predict(onnx_features(session, splits.verify))

    def check(tmp: Path) -> float:
        check_onnx(tmp)
        agreement = float(
            (onnx_features(open_session(tmp), splits.verify, output=heads.LABEL) == expected).mean()
        )
        if agreement < HEAD_AGREEMENT:
            raise ExportError(
                f"the in-graph {options.head} head agrees with the Python classifier on only {agreement:.1%} "
                "of images; nothing was written"
            )
        return agreement

    for batch in batches(options):
        set_metadata(head_proto, head_metadata)
        role = FileRole(fixed=batch is not None, head=options.head)
        result.agreement[role.name] = publish(
            pinned(head_proto, batch, head_metadata),
            onnx_file(out, stem, role, options.fixed_batch),
            check,
            result,
            role,
        )
