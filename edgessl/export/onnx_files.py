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

from edgessl.export.heads import HEAD_AGREEMENT, LABEL, HeadFit
from edgessl.export.job import ExportJob
from edgessl.export.metadata import ExportError, ModelMetadata
from edgessl.export.onnx_export import fix_batch, save_checked, set_metadata
from edgessl.export.options import ExportOptions
from edgessl.export.ort_eval import onnx_features, open_session
from edgessl.export.quantize import calibration_subset, quantize_int8
from edgessl.export.roles import FP32, FileRole
from edgessl.export.splits import Splits
from edgessl.export.usability import UsabilityReport, attach_report, check_usability
from edgessl.export.verify import check_onnx, verify_fp32, verify_int8


def batches(options: ExportOptions) -> list[int | None]:
    """The batch axes every ONNX variant is written with: dynamic (None), and ``--fixed-batch``."""
    return [None] if options.fixed_batch is None else [None, options.fixed_batch]


def onnx_file(job: ExportJob, role: FileRole) -> Path:
    """``out/STEM[_bN][_int8|_HEAD][_uint8].onnx``: the batch is in the name of fixed-batch files only."""
    batch = job.options.fixed_batch if role.fixed else None
    return job.out / f"{role.file_stem(job.stem, batch)}.onnx"


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


def publish(job: ExportJob, proto: onnx.ModelProto, role: FileRole, check: Callable[[Path], Any]) -> Any:
    """Attach the usability report, write ``proto`` as the file of ``role`` once ``check`` passed, and
    record it; returns what ``check`` measured."""
    path = onnx_file(job, role)
    report = usability_of(proto, path.name)
    attach_report(proto, report)
    value = save_checked(proto, path, check)
    job.result.record(role, path)
    job.result.usability[role.name] = report
    return value


def publish_encoders(job: ExportJob, proto: onnx.ModelProto, reference: np.ndarray) -> None:
    """The fp32 encoder (and its fixed-batch copy), against PyTorch's ``reference`` features."""
    verify = job.splits.verify
    for batch in batches(job.options):
        role = FileRole(fixed=batch is not None)
        what = "fp32 ONNX export" if batch is None else f"fixed-batch ({batch}) fp32 export"
        job.result.parity[role.name] = publish(
            job,
            pinned(proto, batch, job.metadata),
            role,
            lambda tmp, what=what: verify_fp32(tmp, reference, verify, what),
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


def publish_int8(job: ExportJob, reference: np.ndarray) -> None:
    """The int8 copy of the published fp32 file (and its fixed-batch copy), against PyTorch's features."""
    int8 = quantized(job.result.files[FP32], job.splits, job.metadata, job.options)
    verify = job.splits.verify
    for batch in batches(job.options):
        role = FileRole(fixed=batch is not None, int8=True)
        job.result.parity[role.name] = publish(
            job,
            int8 if batch is None else fix_batch(int8, batch),
            role,
            lambda tmp, role=role: verify_int8(tmp, reference, verify, f"{role} export"),
        )


def publish_heads(job: ExportJob, fit: HeadFit, encoder: onnx.ModelProto) -> None:
    """The encoder with the ``--head`` classifier in the graph, fitted on the published fp32 file's
    features; its labels must be the Python classifier's."""
    splits, head_name = job.splits, job.options.head
    session = open_session(job.result.files[FP32])
    classes = splits.train.class_names
    head = fit(onnx_features(session, splits.train.images), splits.train.labels, len(classes), job.options)
    head_proto = head.graph(encoder)
    head_metadata = job.metadata.replace(head=head_name, class_names=tuple(classes))
    expected = head.predict(onnx_features(session, splits.verify))

    def check(tmp: Path) -> float:
        check_onnx(tmp)
        agreement = float((onnx_features(open_session(tmp), splits.verify, output=LABEL) == expected).mean())
        if agreement < HEAD_AGREEMENT:
            raise ExportError(
                f"the in-graph {head_name} head agrees with the Python classifier on only {agreement:.1%} "
                "of images; nothing was written"
            )
        return agreement

    for batch in batches(job.options):
        set_metadata(head_proto, head_metadata)
        role = FileRole(fixed=batch is not None, head=head_name)
        job.result.agreement[role.name] = publish(job, pinned(head_proto, batch, head_metadata), role, check)
