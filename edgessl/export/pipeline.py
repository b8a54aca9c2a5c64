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
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from torch import nn

from edgessl.errors import ConfigError
from edgessl.export import heads
from edgessl.export.inputs import FLOAT_NCHW, INPUTS, Frames, camera_metadata, reference_frames
from edgessl.export.metadata import ExportError, ModelMetadata, read_metadata
from edgessl.export.mobile import MobileReport, convert_to_ort
from edgessl.export.onnx_export import encoder_proto, fix_batch, metadata_of, save_checked, set_metadata
from edgessl.export.ort_eval import (
    knn_predict,
    latency_ms,
    model_input,
    onnx_features,
    open_session,
    run_batches,
    takes_frames,
)
from edgessl.export.quantize import calibration_subset, quantize_int8
from edgessl.export.usability import UsabilityReport, attach_report, check_usability
from edgessl.export.verify import (
    FP32_MIN_COSINE,
    FP32_RELATIVE_TOLERANCE,
    Parity,
    check_onnx,
    compare,
    require,
    torch_features,
    verify_fp32,
    verify_int8,
)
from edgessl.files import output_folder
from edgessl.registry import Registry

DEFAULT_OUT = Path("exported")
HEAD_AGREEMENT = 0.99  # in-graph head vs the Python classifier on the verification images
ORT_MIN_MEAN_COSINE = 0.99  # .ort (optimised for ARM) against the .onnx it came from
CAMERA_INT8_MIN_MEAN_COSINE = (
    0.999  # int8 camera copy vs its float-input twin (a resize may move a value across a quantum)
)
FIXED = "fixed"  # role prefix of fixed-batch files
CAMERA = "uint8"  # role suffix of camera-input copies


@dataclass
class ExportOptions:
    """Options of ``edgessl export`` (see the CLI help for each)."""

    out_dir: Path = DEFAULT_OUT
    int8: bool = False
    ort: bool = False
    head: str = "none"  # one of HEADS
    fixed_batch: int | None = None
    input: str = FLOAT_NCHW  # one of edgessl.export.inputs.INPUTS
    frame_size: tuple[int, int] | None = (
        None  # (H, W) camera frames for --input uint8-nhwc (default: the model's size)
    )
    name: str | None = None  # file name stem (default METHOD_BACKBONE_eEPOCH)
    data: str | None = None  # default: the checkpoint's dataset
    data_root: str | None = None
    k: int = 200  # kNN head and the int8 kNN report
    verify_images: int = 64
    calibration_images: int = 256
    linear_epochs: int = 100
    formats: tuple[str, ...] = ("onnx",)  # edgessl.export.formats.FORMATS names

    def validate(self) -> None:
        """Fail on bad options before any slow work (loading, exporting)."""
        from edgessl.export.formats import FORMATS, require_installed

        for name in self.formats:
            FORMATS.get(name)
        if not self.formats:
            raise ConfigError("--format needs at least one format, e.g. --format onnx")
        if self.ort and "onnx" not in self.formats:
            raise ConfigError(
                "--ort converts the ONNX files to ORT format; add onnx to --format or drop --ort"
            )
        for name in self.formats:
            require_installed(name)
        HEADS.get(self.head)
        INPUTS.get(self.input)
        if self.fixed_batch is not None and self.fixed_batch < 1:
            raise ConfigError(f"--fixed-batch must be at least 1, got {self.fixed_batch}")
        if self.k < 1:
            raise ConfigError(f"--k must be at least 1, got {self.k}")
        if self.name is not None and not is_plain_file_stem(self.name):
            raise ConfigError(
                f"--name must be a plain file name stem (no folders, no leading dot), got '{self.name}': "
                "choose the folder with --out"
            )
        if self.frame_size is not None and self.input == FLOAT_NCHW:
            raise ConfigError(
                "--frame-size sets the camera frames of --input uint8-nhwc; add --input uint8-nhwc or drop it"
            )


def is_plain_file_stem(name: str) -> bool:
    """A name that stays a file in ``--out``: no separator, not ``.``/``..``, no hidden or control
    character."""
    return (
        bool(name)
        and "/" not in name
        and "\\" not in name
        and not name.startswith(".")
        and name.isprintable()
        and Path(name).name == name
    )


@dataclass
class Int8Report:
    """fp32 against int8 on the same encoder: kNN accuracy (train -> test) and ORT latency."""

    knn_fp32: float
    knn_int8: float
    latency_ms: dict[str, float]  # "fp32@1", "int8@1", "fp32@32", "int8@32"
    size_bytes: dict[str, int]

    @property
    def knn_drop(self) -> float:
        return self.knn_fp32 - self.knn_int8


@dataclass
class ExportResult:
    """Everything an export wrote and measured, by role.

    Roles: ``fp32``, ``int8``, the head's name; ``fixed``, ``fixed.int8``, ``fixed.HEAD`` for
    ``--fixed-batch``; ``ROLE.uint8`` for camera-input copies; ``ROLE.ort``; ``operators``.
    """

    checkpoint: str
    metadata: ModelMetadata
    files: dict[str, Path] = field(default_factory=dict)  # role -> file
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


@dataclass(frozen=True)
class Splits:
    train: Any  # edgessl.data.arrays.SplitArrays
    test: Any | None
    verify: np.ndarray  # uint8 images for parity checks


# (encoder proto, bank features, bank labels, num classes, options) -> (head proto, python predictions fn)
HeadBuilder = Callable[
    [Any, np.ndarray, np.ndarray, int, ExportOptions], tuple[Any, Callable[[np.ndarray], np.ndarray]]
]
HEADS: Registry[HeadBuilder | None] = Registry("export head")
HEADS.register("none")(None)


@HEADS.register("knn")
def _knn(encoder, bank, labels, num_classes, options):
    def reference(features: np.ndarray) -> np.ndarray:
        return knn_predict(bank, labels, features, num_classes, k=options.k)

    return heads.knn_head(encoder, bank, labels, num_classes, options.k), reference


@HEADS.register("linear")
def _linear(encoder, bank, labels, num_classes, options):
    weight, bias = heads.linear_probe(bank, labels, num_classes, options.linear_epochs)

    def reference(features: np.ndarray) -> np.ndarray:
        return (features @ weight + bias).argmax(1)

    return heads.linear_head(encoder, weight, bias), reference


def read_splits(
    spec: str | None, root: str | None, image_size: int, verify_images: int, need_labels: bool
) -> Splits:
    from edgessl.data.reading import read_labelled_splits, read_split_arrays

    if not spec:
        raise ConfigError(
            "the checkpoint records no dataset; pass --data "
            "(e.g. --data shapes10 or --data stl10 --data-root DIR)"
        )
    if need_labels:
        train, test = read_labelled_splits(spec, root, image_size, purpose="int8 accuracy and in-graph heads")
    else:
        train, test = read_split_arrays(spec, "train", root, image_size), None
    return Splits(train, test, calibration_subset(train.images, verify_images, seed=1))


def dataset_spec(metadata: dict[str, Any]) -> tuple[str | None, str | None]:
    """(dataset name or folder, data root) a checkpoint was trained on, as the trainer records them."""
    return metadata.get("dataset"), (metadata.get("train_config") or {}).get("data_root")


def export_checkpoint(target: str | Path, options: ExportOptions | None = None) -> ExportResult:
    """Export the checkpoint ``target`` (or a run folder's last epoch checkpoint)."""
    from edgessl.checkpoints import load_representation
    from edgessl.runs import pick_checkpoint

    (options or ExportOptions()).validate()
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

    options.validate()
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
    options.validate()
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
        for name in options.formats:
            EXPORTERS.get(name)(model, metadata, splits, options, out, stem, result)
    return result


def _export_onnx(
    model: nn.Module,
    metadata: ModelMetadata,
    splits: Splits,
    options: ExportOptions,
    out: Path,
    stem: str,
    result: ExportResult,
) -> None:
    """The verified ONNX files (fp32, int8, heads, fixed batch, camera input) and their ORT copies."""
    build_head = HEADS.get(options.head)
    reference = torch_features(model, splits.verify)
    batches = [None] if options.fixed_batch is None else [None, options.fixed_batch]

    proto = encoder_proto(model.eval(), metadata)
    for batch in batches:
        graph = _pinned(proto, batch, metadata)
        role, path = _role(batch, "fp32"), _file(out, stem, batch, "fp32")
        what = "fp32 ONNX export" if batch is None else f"fixed-batch ({batch}) fp32 export"
        result.parity[role] = _publish(
            graph,
            path,
            lambda tmp, what=what: verify_fp32(tmp, reference, splits.verify, what),
            result,
            role,
        )
    if options.int8:
        int8 = _quantized(result.files["fp32"], splits, metadata, options)
        for batch in batches:
            role, path = _role(batch, "int8"), _file(out, stem, batch, "int8")
            graph = int8 if batch is None else fix_batch(int8, batch)
            result.parity[role] = _publish(
                graph,
                path,
                lambda tmp, role=role: verify_int8(tmp, reference, splits.verify, f"{role} export"),
                result,
                role,
            )
        result.int8 = _int8_report(result.files["fp32"], result.files["int8"], splits, metadata, options)
    if build_head is not None:
        _export_heads(build_head, proto, batches, out, stem, splits, metadata, options, result)
    # (camera frames, the float input they stand for), made once from the verification images
    probe = None
    if options.input != FLOAT_NCHW:
        frames = Frames(
            *(options.frame_size or (metadata.image_size, metadata.image_size)), metadata.image_size
        )
        probe = reference_frames(splits.verify, frames)
        for role in list(result.files):
            _export_camera(role, result.files[role], frames, probe, options, result)
    if options.ort:
        _export_ort(out, stem, splits, probe, result)


def _export_torch_format(
    name: str,
    model: nn.Module,
    metadata: ModelMetadata,
    splits: Splits,
    options: ExportOptions,
    out: Path,
    stem: str,
    result: ExportResult,
) -> None:
    """LiteRT, Core ML or ExecuTorch files (:mod:`edgessl.export.torch_formats`)."""
    from edgessl.export import torch_formats
    from edgessl.export.formats import FORMATS

    converter = torch_formats.converter_for(name)
    if result.torch_head is None and options.head != "none":
        result.torch_head = torch_formats.torch_head(model, splits, options, metadata)
    programs = torch_formats.plan_programs(converter, model, metadata, splits, options, result.torch_head)
    report = result.formats[name] = torch_formats.FormatReport()
    torch_formats.export_programs(converter, programs, out, stem, options, report)
    has_int8 = bool(FORMATS.get(name).int8)
    if options.int8 and has_int8 and converter.load is not None and splits.test is not None:
        encoders = [program for program in programs if program.role in (name, f"{name}.int8")]
        for program in encoders:
            runner = converter.load(report.files[program.role])
            report.knn[program.role] = torch_formats.runtime_knn(runner, program, splits, options.k)


EXPORTERS: Registry[Callable[..., None]] = Registry("export format")
EXPORTERS.register("onnx")(_export_onnx)
for _name in ("litert", "coreml", "executorch"):
    EXPORTERS.register(_name)(lambda *args, _name=_name: _export_torch_format(_name, *args))


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


def _role(batch: int | None, kind: str) -> str:
    """``fp32`` / ``int8`` / head name; ``fixed`` / ``fixed.int8`` / ``fixed.HEAD`` for a pinned batch."""
    if batch is None:
        return kind
    return FIXED if kind == "fp32" else f"{FIXED}.{kind}"


def _file(out: Path, stem: str, batch: int | None, kind: str) -> Path:
    return out / f"{stem}{'' if batch is None else f'_b{batch}'}{'' if kind == 'fp32' else f'_{kind}'}.onnx"


def _pinned(proto: onnx.ModelProto, batch: int | None, metadata: ModelMetadata) -> onnx.ModelProto:
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


def _publish(
    proto: onnx.ModelProto, path: Path, check: Callable[[Path], Any], result: ExportResult, role: str
) -> Any:
    """Attach the usability report, write ``proto`` to ``path`` once ``check`` passed, and record it under
    ``role``."""
    report = usability_of(proto, path.name)
    attach_report(proto, report)
    value = save_checked(proto, path, check)
    result.files[role], result.usability[role] = path, report
    return value


def _quantized(
    fp32: Path, splits: Splits, metadata: ModelMetadata, options: ExportOptions
) -> onnx.ModelProto:
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


def _int8_report(
    fp32: Path, int8: Path, splits: Splits, metadata: ModelMetadata, options: ExportOptions
) -> Int8Report:
    """kNN accuracy (train bank -> test) and batch-1/32 ORT latency of the dynamic fp32 and int8 files."""
    accuracy = {}
    for name, path in (("fp32", fp32), ("int8", int8)):
        session = open_session(path)
        bank = onnx_features(session, splits.train.images)
        predictions = knn_predict(
            bank,
            splits.train.labels,
            onnx_features(session, splits.test.images),
            len(splits.train.class_names),
            k=options.k,
        )
        accuracy[name] = float((predictions == splits.test.labels).mean())
    timed = {
        f"{name}@{batch}": latency_ms(open_session(p, threads=1), batch, metadata.image_size)
        for batch in (1, 32)
        for name, p in (("fp32", fp32), ("int8", int8))
    }
    return Int8Report(
        accuracy["fp32"], accuracy["int8"], timed, {"fp32": fp32.stat().st_size, "int8": int8.stat().st_size}
    )


def _export_heads(
    build_head: HeadBuilder,
    encoder: onnx.ModelProto,
    batches: list[int | None],
    out: Path,
    stem: str,
    splits: Splits,
    metadata: ModelMetadata,
    options: ExportOptions,
    result: ExportResult,
) -> None:
    session = open_session(result.files["fp32"])
    bank = onnx_features(session, splits.train.images)
    classes = splits.train.class_names
    head_proto, python_labels = build_head(encoder, bank, splits.train.labels, len(classes), options)
    head_metadata = metadata.replace(head=options.head, class_names=tuple(classes))
    expected = python_labels(onnx_features(session, splits.verify))

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

    for batch in batches:
        set_metadata(head_proto, head_metadata)
        role, path = _role(batch, options.head), _file(out, stem, batch, options.head)
        result.agreement[role] = _publish(
            _pinned(head_proto, batch, head_metadata), path, check, result, role
        )


# camera frames uint8 (N, H, W, 3), their float twin (N, 3, S, S) in [0, 1]
Probe = tuple[np.ndarray, np.ndarray]


def _probe_inputs(session: Any, splits: Splits, probe: Probe | None) -> np.ndarray:
    """The verification images as ``session`` takes them (camera frames for a camera-input file)."""
    if takes_frames(session):
        return probe[0]
    return model_input(session, splits.verify)


def _export_camera(
    role: str, float_file: Path, frames: Frames, probe: Probe, options: ExportOptions, result: ExportResult
) -> None:
    """A camera-input copy of ``float_file``, equal to it on the same images (features, or a head's
    labels)."""
    frame_batch, unit = probe
    is_head = role.split(".")[-1] == options.head
    output = heads.LABEL if is_head else None
    expected = run_batches(open_session(float_file), unit, output=output)
    graph = INPUTS.get(options.input)(onnx.load(str(float_file)), frames)
    set_metadata(graph, camera_metadata(read_metadata(float_file), frames))
    camera_role, path = f"{role}.{CAMERA}", float_file.with_name(f"{float_file.stem}_{CAMERA}.onnx")

    def check(tmp: Path) -> Parity | float:
        check_onnx(tmp)
        got = run_batches(open_session(tmp), frame_batch, output=output)
        what = f"camera-input ({options.input}) copy of {float_file.name}"
        if is_head:
            agreement = float((got == expected).mean())
            if agreement < HEAD_AGREEMENT:
                raise ExportError(
                    f"{what} gives the float file's label on only {agreement:.1%} of images; "
                    "nothing was written"
                )
            return agreement
        if "int8" in role:
            return require(compare(expected, got), what, min_mean_cosine=CAMERA_INT8_MIN_MEAN_COSINE)
        return require(compare(expected, got), what, FP32_RELATIVE_TOLERANCE, FP32_MIN_COSINE)

    checked = _publish(graph, path, check, result, camera_role)
    if is_head:
        result.agreement[camera_role] = checked
    else:
        result.parity[camera_role] = checked


def _export_ort(out: Path, stem: str, splits: Splits, probe: Probe | None, result: ExportResult) -> None:
    roles = list(result.files)
    onnx_files = [result.files[role] for role in roles]
    fixed = frozenset(result.files[role] for role in roles if role.startswith(FIXED))
    report = convert_to_ort(
        onnx_files, out, config_name=f"{stem}.required_operators.config", runtime_style=fixed
    )
    for role, onnx_path, ort_path in zip(roles, onnx_files, report.ort_files, strict=True):
        source = open_session(onnx_path)
        inputs = _probe_inputs(source, splits, probe)
        parity = compare(run_batches(source, inputs), run_batches(open_session(ort_path), inputs))
        if not parity.mean_cosine >= ORT_MIN_MEAN_COSINE:
            for written in (*report.ort_files, report.config):
                written.unlink(missing_ok=True)
            raise ExportError(
                f"{ort_path.name} does not reproduce {onnx_path.name} ({parity.summary()}); "
                "no .ort file was kept"
            )
        result.parity[f"{role}.ort"] = parity
        result.files[f"{role}.ort"] = ort_path
    result.files["operators"] = report.config
    result.mobile = report


__all__ = [
    "DEFAULT_OUT",
    "HEADS",
    "ExportOptions",
    "ExportResult",
    "Int8Report",
    "export_checkpoint",
    "export_representation",
    "export_weights",
    "usability_of",
]
