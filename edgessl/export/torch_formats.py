"""LiteRT, Core ML and ExecuTorch exports: one PyTorch program per file, converted, run, compared, published.

Each format module (:mod:`~edgessl.export.litert_export`, :mod:`~edgessl.export.coreml_export`,
:mod:`~edgessl.export.executorch_export`) supplies a :class:`Converter`: how to convert a
:class:`Program` to a file, and how to load that file into its own runtime (``None`` where
the runtime does not run on this OS, as Core ML's on Linux). The steps they share live here:

1. plan the programs the options ask for: the encoder (``FORMAT``), its int8 copy
   (``FORMAT.int8``, where the format has one), the in-graph head (``FORMAT.HEAD``) and a
   camera-input copy of each (``ROLE.uint8``), all with batch ``--fixed-batch`` (default 1:
   what an app feeds, and what these converters plan memory for);
2. PyTorch's outputs on the verification images are the reference of each program;
3. convert under a temporary name, run it in the format's runtime, compare (the ONNX fp32
   tolerance for float programs, the ONNX int8 cosine for int8 ones, 99% label agreement for
   heads), and only then rename it into ``--out``: a failed check leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgessl.export.conversion import converter_failure
from edgessl.export.deploy import CameraInput, deploy_module, padded, run_module
from edgessl.export.formats import FORMATS
from edgessl.export.heads import HEAD_AGREEMENT, HEADS, LABEL, SCORES
from edgessl.export.inputs import FLOAT_NCHW, Frames, camera_metadata, reference_frames
from edgessl.export.metadata import ExportError, ModelMetadata
from edgessl.export.onnx_export import OUTPUT_NAME
from edgessl.export.roles import FileRole
from edgessl.export.verify import (
    FP32_MIN_COSINE,
    FP32_RELATIVE_TOLERANCE,
    INT8_MIN_MEAN_COSINE,
    compare,
    require,
    torch_features,
)

LATENCY_REPEATS = 20

Outputs = tuple[np.ndarray, ...]
Runner = Callable[[np.ndarray], Outputs]  # one batch of exactly the program's batch -> its outputs


@dataclass(frozen=True)
class Program:
    """One file to write: what it computes, what it takes, and what PyTorch says it should give."""

    role: FileRole  # litert, litert.int8, litert.knn, litert.uint8, ...
    module: Any  # edgessl.export.deploy.DeployModule
    inputs: np.ndarray  # the verification inputs as the program takes them
    expected: Outputs  # PyTorch's outputs of ``module`` on ``inputs``
    metadata: ModelMetadata
    batch: int
    labels: np.ndarray | None = None  # the Python classifier's labels, for a head program
    calibration: np.ndarray | None = None  # training inputs for int8 calibration

    @property
    def int8(self) -> bool:
        return self.role.int8

    @property
    def is_head(self) -> bool:
        return self.labels is not None

    @property
    def output_names(self) -> list[str]:
        """The names every format gives the outputs, in the module's order (as the ONNX files name them)."""
        return [SCORES, LABEL] if self.is_head else [OUTPUT_NAME]

    @property
    def example(self) -> Any:
        """A real input batch of the program's shape (what ``torch.export`` traces with)."""
        import torch

        return torch.from_numpy(padded(self.inputs[: self.batch], self.batch))


@dataclass(frozen=True)
class Converter:
    """What a format module provides: conversion, and its runtime where that runs on this OS."""

    name: str
    convert: Callable[[Program, Path], None]  # writes the file (or package folder) at the path
    load: Callable[[Path], Runner] | None  # None: the runtime does not run here
    not_run: str = ""  # why ``load`` is None, as the export table says it
    inspect: Callable[[Path, Program], list[str]] | None = None  # checks what can be checked; op list
    camera_channels_last: bool = True  # False: the converter declares an image input (Core ML)


def converter_for(name: str) -> Converter:
    """The :class:`Converter` of torch-side format ``name`` (``edgessl.export.NAME_export.CONVERTER``)."""
    from importlib import import_module

    return import_module(f"edgessl.export.{name}_export").CONVERTER


@dataclass
class FormatReport:
    """What one torch-side format export wrote and measured, by role."""

    files: dict[str, Path] = field(default_factory=dict)
    checks: dict[str, str] = field(default_factory=dict)  # role -> verification in words
    latency_ms: dict[str, float] = field(default_factory=dict)  # role -> median ms per batch at 1 thread
    operators: dict[str, list[str]] = field(default_factory=dict)  # role -> op types (where inspected)
    knn: dict[str, float] = field(default_factory=dict)  # role -> kNN accuracy through the runtime


def plan_programs(
    converter: Converter, model: Any, metadata: ModelMetadata, splits: Any, options: Any, head: Any
) -> list[Program]:
    """Every program ``options`` ask of this format, each with its PyTorch reference outputs."""
    batch = options.fixed_batch or 1
    unit = splits.verify.astype(np.float32) / 255.0
    encoder = deploy_module(model)
    role = FileRole(format=converter.name)
    plain = Program(role, encoder, unit, run_module(encoder, unit, batch), metadata, batch)
    programs = [plain]
    int8 = FORMATS.get(converter.name).int8
    if options.int8 and int8:
        calibration = splits.train.images[: options.calibration_images].astype(np.float32) / 255.0
        programs.append(
            Program(
                dataclasses.replace(role, int8=True),
                encoder,
                unit,
                plain.expected,
                metadata.replace(precision=int8),
                batch,
                calibration=calibration,
            )
        )
    if head is not None:
        module, labels, head_metadata = head
        with_head = deploy_module(model, head=module)
        programs.append(
            Program(
                dataclasses.replace(role, head=options.head),
                with_head,
                unit,
                run_module(with_head, unit, batch),
                head_metadata,
                batch,
                labels=labels,
            )
        )
    if options.input != FLOAT_NCHW:
        frames = Frames.of(options.frame_size, metadata.image_size)
        frame_batch, unit_seen = reference_frames(splits.verify, frames)
        if not converter.camera_channels_last:  # an image input: NCHW, scaled to [0, 1] by the runtime
            frame_batch = frame_batch.transpose(0, 3, 1, 2).astype(np.float32) / 255.0
        camera = CameraInput(frames, converter.camera_channels_last)
        programs += [
            camera_program(program, camera, frame_batch, unit_seen, frames)
            for program in programs
            if not program.int8
        ]
    return programs


def camera_program(
    program: Program, camera: Any, frame_batch: np.ndarray, unit_seen: np.ndarray, frames: Frames
) -> Program:
    """``program`` with the camera-input step in front.

    Its reference is ``program`` itself on ``unit_seen`` -- what the frames should become,
    computed outside the graph (numpy crop, PyTorch resize) -- so the in-file crop, layout
    and scaling are checked by a second computation, as the ONNX camera copies are.
    """
    module = deploy_module(program.module.representation, camera=camera, head=program.module.head)
    expected = run_module(program.module, unit_seen, program.batch)
    return Program(
        program.role.camera_copy(),
        module,
        frame_batch,
        expected,
        camera_metadata(program.metadata, frames),
        program.batch,
        labels=expected[1] if program.is_head else None,
    )


def torch_head(model: Any, splits: Any, options: Any, metadata: ModelMetadata) -> Any:
    """``(head module, the Python classifier's labels on the verification images, metadata)`` or None."""
    fit = HEADS.get(options.head)
    if fit is None:
        return None
    bank = torch_features(model, splits.train.images)
    classes = splits.train.class_names
    queries = torch_features(model, splits.verify)
    head = fit(bank, splits.train.labels, len(classes), options)
    return (
        head.module(),
        head.predict(queries),
        metadata.replace(head=options.head, class_names=tuple(classes)),
    )


def file_for(out: Path, stem: str, program: Program, options: Any, suffix: str) -> Path:
    """``STEM[_bN][_int8|_HEAD][_uint8].SUFFIX``, as the ONNX files are named."""
    return out / (program.role.file_stem(stem, options.fixed_batch) + suffix)


def run_all(runner: Runner, inputs: np.ndarray, batch: int) -> Outputs:
    """A runtime's outputs on ``inputs`` in batches of exactly ``batch`` (the last one padded, then cut)."""
    outputs = []
    for start in range(0, len(inputs), batch):
        got = runner(padded(inputs[start : start + batch], batch))
        outputs.append([value[: min(batch, len(inputs) - start)] for value in got])
    return tuple(np.concatenate(column) for column in zip(*outputs, strict=True))


def check_outputs(program: Program, got: Outputs, what: str) -> str:
    """Raise past tolerance; otherwise the verification in words."""
    if program.is_head:
        agreement = float((got[1].astype(np.int64) == program.labels).mean())
        if agreement < HEAD_AGREEMENT:
            raise ExportError(
                f"{what}: its in-file label agrees with the Python classifier on only {agreement:.1%} of "
                "images; nothing was written"
            )
        return f"in-file label = Python classifier's on {agreement:.1%} of images"
    parity = compare(program.expected[0], got[0])
    if program.int8:
        return require(parity, what, min_mean_cosine=INT8_MIN_MEAN_COSINE).summary()
    return require(parity, what, FP32_RELATIVE_TOLERANCE, FP32_MIN_COSINE).summary()


def latency_ms(runner: Runner, batch: np.ndarray) -> float:
    """Median wall time of one call on ``batch`` (after warm-up), in milliseconds."""
    for _ in range(3):
        runner(batch)
    times = []
    for _ in range(LATENCY_REPEATS):
        start = time.perf_counter()
        runner(batch)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def export_programs(
    converter: Converter, programs: list[Program], out: Path, stem: str, options: Any, report: FormatReport
) -> None:
    """Convert, verify and publish every program; on any failure the files published so far are removed."""
    suffix = FORMATS.get(converter.name).suffix
    try:
        for program in programs:
            role = program.role.name
            path = file_for(out, stem, program, options, suffix)
            what = f"{converter.name} {role} export ({path.name})"
            with published(path) as tmp:
                with converter_failure(converter.name, role):
                    converter.convert(program, tmp)
                if converter.inspect is not None:
                    report.operators[role] = converter.inspect(tmp, program)
                if converter.load is None:
                    report.checks[role] = f"spec checked; not run: {converter.not_run}"
                else:
                    runner = converter.load(tmp)
                    report.checks[role] = check_outputs(
                        program, run_all(runner, program.inputs, program.batch), what
                    )
                    report.latency_ms[role] = latency_ms(runner, program.example.numpy())
            write_sidecar(path, program.metadata)
            report.files[role] = path
    except BaseException:
        for path in report.files.values():
            remove(path)
            Path(f"{path}.json").unlink(missing_ok=True)
        raise


def write_sidecar(path: Path, metadata: ModelMetadata) -> None:
    """``FILE.json``: the model's contract (input, normalisation, classes, provenance) beside it."""
    from edgessl.files import write_json

    write_json(Path(f"{path}.json"), asdict(metadata))


@contextmanager
def published(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` (a file or, for ``.mlpackage``, a folder), renamed over it on
    success."""
    scratch = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    tmp = scratch / path.name
    try:
        yield tmp
        if path.is_dir():
            old = scratch / "replaced"
            os.replace(path, old)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def runtime_knn(runner: Runner, program: Program, splits: Any, k: int) -> float:
    """kNN accuracy (training bank -> test images) with every feature computed by the runtime."""
    from edgessl.export.ort_eval import knn_predict

    def features(images: np.ndarray) -> np.ndarray:
        return run_all(runner, images.astype(np.float32) / 255.0, program.batch)[0]

    predictions = knn_predict(
        features(splits.train.images),
        splits.train.labels,
        features(splits.test.images),
        len(splits.train.class_names),
        k=k,
    )
    return float((predictions == splits.test.labels).mean())
