"""What ``edgessl export`` does: a checkpoint (or outside weights) -> verified ONNX files -> optional
ORT files.

A run folder exports its LAST epoch checkpoint (``list_checkpoints(run)[-1]``); pass a
checkpoint file to export another epoch, or ``--weights FILE --backbone NAME`` for a plain
state dict. Files (``stem`` = ``METHOD_BACKBONE_eEPOCH`` unless named):

- ``stem.onnx``: fp32, dynamic batch, against PyTorch within
  :data:`~edgessl.export.verify.FP32_RELATIVE_TOLERANCE`;
- ``--int8``: ``stem_int8.onnx``, static QDQ int8, against PyTorch within the int8 tolerance;
- ``--head knn|linear``: ``stem_HEAD.onnx``, in-graph labels equal to the Python classifier's;
- ``--fixed-batch N``: ``stem_bN.onnx``, and ``stem_bN_int8`` / ``stem_bN_HEAD`` for the others, the same
  graphs with the batch axis pinned (what NNAPI and CoreML need), each verified like its dynamic twin;
- ``--input uint8-nhwc``: a camera-input copy ``..._uint8.onnx`` of each file above, against the float
  file it wraps on the same images (:mod:`edgessl.export.inputs`);
- ``--ort``: ``.ort`` of every file (Runtime style for fixed-shape files, see :mod:`edgessl.export.mobile`)
  and the operator list of a reduced build.

Every ``.onnx`` carries ONNX Runtime's mobile usability report (:mod:`edgessl.export.usability`)
in its metadata. Every file is written under a temporary name, checked, and only then
renamed into ``out_dir`` (default ``exported/``), so a failed verification leaves nothing
behind. Real images for verification, int8 calibration and the heads come from the
training split of ``data`` (default: the checkpoint's dataset).

This module only puts the steps in order; each lives in its own module: the options
(:mod:`~edgessl.export.options`), the images (:mod:`~edgessl.export.splits`), the ONNX files
(:mod:`~edgessl.export.onnx_files`), their heads (:mod:`~edgessl.export.heads`), the int8 report
(:mod:`~edgessl.export.int8_report`), the camera and ORT copies (:mod:`~edgessl.export.camera_copies`,
:mod:`~edgessl.export.ort_copies`) and the other formats (:mod:`~edgessl.export.torch_formats`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from edgessl.errors import ConfigError
from edgessl.export.camera_copies import publish_camera_copy
from edgessl.export.heads import HEADS
from edgessl.export.inputs import FLOAT_NCHW, Frames, reference_frames
from edgessl.export.int8_report import int8_report
from edgessl.export.job import ExportJob
from edgessl.export.onnx_export import encoder_proto, metadata_of
from edgessl.export.onnx_files import publish_encoders, publish_heads, publish_int8
from edgessl.export.options import ExportOptions
from edgessl.export.ort_copies import publish_ort_copies
from edgessl.export.result import ExportResult, removed_on_failure
from edgessl.export.roles import FP32, INT8
from edgessl.export.splits import dataset_spec, read_splits
from edgessl.export.verify import torch_features
from edgessl.files import output_folder
from edgessl.registry import Registry


def export_checkpoint(target: str | Path, options: ExportOptions | None = None) -> ExportResult:
    """Export the checkpoint ``target`` (or a run folder's last epoch checkpoint)."""
    from edgessl.checkpoints import load_representation
    from edgessl.runs import pick_checkpoint

    options = options or ExportOptions()
    checkpoint = pick_checkpoint(target)
    loaded = load_representation(checkpoint)
    return export_representation(loaded.model, loaded.metadata, options)


def export_weights(
    backbone: str,
    weights: str | Path,
    options: ExportOptions,
    image_size: int | None = None,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
) -> ExportResult:
    """Export ``backbone`` with a plain state dict (``.safetensors`` or ``.pth``) loaded into it.

    ``image_size`` defaults to the dataset's own size and ``mean``/``std`` to its statistics;
    pass the normalisation the weights were trained with (ImageNet's for ImageNet weights).
    """
    from edgessl.backbones import weights_representation
    from edgessl.data.reading import read_split_arrays

    if not options.data:
        raise ConfigError("--weights needs --data: the images that verify the export (e.g. --data shapes10)")
    train = read_split_arrays(options.data, "train", options.data_root, image_size)
    model, loaded = weights_representation(backbone, weights, mean or train.mean, std or train.std)
    metadata = {
        "method": "weights",
        "backbone": backbone,
        "image_size": int(train.images.shape[-1]),
        "mean": model.preprocess.mean.flatten().tolist(),
        "std": model.preprocess.std.flatten().tolist(),
        "epoch": 0,
        "dataset": options.data,
        "checkpoint": str(weights),
    }
    named = options if options.name else dataclasses.replace(options, name=f"{Path(weights).stem}_{backbone}")
    result = export_representation(model, metadata, named)
    result.weights = loaded
    return result


def export_representation(
    model: nn.Module, checkpoint_metadata: dict[str, Any], options: ExportOptions | None = None
) -> ExportResult:
    """Export a Representation described by ``checkpoint_metadata`` (method, backbone, image_size, mean,
    std, epoch...)."""
    options = options or ExportOptions()
    metadata = metadata_of(checkpoint_metadata, model.feature_dim)
    recorded, recorded_root = dataset_spec(checkpoint_metadata)
    spec = options.data or recorded
    root = options.data_root if options.data else (options.data_root or recorded_root)
    splits = read_splits(
        spec,
        root,
        metadata.image_size,
        options.verify_images,
        need_labels=options.int8 or options.head != "none",
    )
    metadata = metadata.replace(dataset=spec)
    stem = options.name or f"{metadata.method}_{metadata.backbone}_e{metadata.epoch:04d}"
    result = ExportResult(str(checkpoint_metadata.get("checkpoint", "")), metadata)
    # checked before the work (a bad --out must not fail at the end); on any failure, Ctrl-C included,
    # the files this call wrote and any folder it created are removed
    with output_folder(options.out_dir) as out, removed_on_failure(result):
        job = ExportJob(metadata, splits, options, out, stem, result)
        for name in options.formats:
            EXPORTERS.get(name)(model, job)
    return result


def _export_onnx(model: nn.Module, job: ExportJob) -> None:
    """The verified ONNX files (fp32, int8, heads, fixed batch, camera input) and their ORT copies."""
    options, metadata, result = job.options, job.metadata, job.result
    fit = HEADS.get(options.head)
    reference = torch_features(model, job.splits.verify)
    proto = encoder_proto(model.eval(), metadata)
    publish_encoders(job, proto, reference)
    if options.int8:
        publish_int8(job, reference)
        result.int8 = int8_report(
            result.files[FP32], result.files[INT8], job.splits, metadata.image_size, options.k
        )
    if fit is not None:
        publish_heads(job, fit, proto)
    # (camera frames, the float input they stand for), made once from the verification images
    probe = None
    if options.input != FLOAT_NCHW:
        frames = Frames.of(options.frame_size, metadata.image_size)
        probe = reference_frames(job.splits.verify, frames)
        for role in list(result.roles.values()):
            publish_camera_copy(job, role, frames, probe)
    if options.ort:
        publish_ort_copies(job, probe)


def _export_torch_format(name: str, model: nn.Module, job: ExportJob) -> None:
    """LiteRT, Core ML or ExecuTorch files (:mod:`edgessl.export.torch_formats`)."""
    from edgessl.export import torch_formats
    from edgessl.export.formats import FORMATS

    options, splits, result = job.options, job.splits, job.result
    converter = torch_formats.converter_for(name)
    if result.torch_head is None and options.head != "none":
        result.torch_head = torch_formats.torch_head(model, splits, options, job.metadata)
    programs = torch_formats.plan_programs(converter, model, job.metadata, splits, options, result.torch_head)
    report = result.formats[name] = torch_formats.FormatReport()
    torch_formats.export_programs(converter, programs, job.out, job.stem, options, report)
    has_int8 = bool(FORMATS.get(name).int8)
    if options.int8 and has_int8 and converter.load is not None and splits.test is not None:
        encoders = [program for program in programs if not (program.role.head or program.role.camera)]
        for program in encoders:
            runner = converter.load(report.files[program.role.name])
            report.knn[program.role.name] = torch_formats.runtime_knn(runner, program, splits, options.k)


EXPORTERS: Registry[Callable[[nn.Module, ExportJob], None]] = Registry("export format")
EXPORTERS.register("onnx")(_export_onnx)
for _name in ("litert", "coreml", "executorch"):
    EXPORTERS.register(_name)(lambda model, job, _name=_name: _export_torch_format(_name, model, job))


__all__ = ["export_checkpoint", "export_representation", "export_weights"]
