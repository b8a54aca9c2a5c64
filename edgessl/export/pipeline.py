"""What ``edgessl export`` does: checkpoint -> verified fp32 ONNX -> optional fixed-batch, int8, head, ORT files.

A run folder exports its LAST epoch checkpoint (``list_checkpoints(run)[-1]``); pass a
checkpoint file to export another epoch. Every file is written under a temporary name,
checked, and only then renamed into ``out_dir`` (default ``exported/``), so a failed
verification leaves nothing behind. Real images for verification, int8 calibration and
the heads come from the training split of ``data`` (default: the checkpoint's dataset).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from edgessl.errors import ConfigError, DataError
from edgessl.export import heads
from edgessl.export.metadata import ExportError, ModelMetadata
from edgessl.export.mobile import MobileReport, convert_to_ort
from edgessl.export.onnx_export import encoder_proto, fix_batch, metadata_of, save_checked, set_metadata
from edgessl.export.ort_eval import knn_predict, latency_ms, onnx_features, open_session
from edgessl.export.quantize import calibration_subset, quantize_int8
from edgessl.export.verify import INT8_MIN_MEAN_COSINE, Parity, compare, verify_against, verify_fp32
from edgessl.registry import Registry

DEFAULT_OUT = Path("exported")
HEAD_AGREEMENT = 0.99  # in-graph head vs the Python classifier on the verification images
ORT_MIN_MEAN_COSINE = 0.99  # .ort (optimised for ARM) against the .onnx it came from


@dataclass
class ExportOptions:
    """Options of ``edgessl export`` (see the CLI help for each)."""

    out_dir: Path = DEFAULT_OUT
    int8: bool = False
    ort: bool = False
    head: str = "none"  # one of HEADS
    fixed_batch: int | None = None
    data: str | None = None  # default: the checkpoint's dataset
    data_root: str | None = None
    k: int = 200  # kNN head and the int8 kNN report
    verify_images: int = 64
    calibration_images: int = 256
    linear_epochs: int = 100

    def validate(self) -> None:
        """Fail on bad options before any slow work (loading, exporting)."""
        HEADS.get(self.head)
        if self.fixed_batch is not None and self.fixed_batch < 1:
            raise ConfigError(f"--fixed-batch must be at least 1, got {self.fixed_batch}")
        if self.k < 1:
            raise ConfigError(f"--k must be at least 1, got {self.k}")


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
    checkpoint: str
    metadata: ModelMetadata
    files: dict[str, Path] = field(default_factory=dict)  # role -> file
    parity: dict[str, Parity] = field(default_factory=dict)  # role -> verification numbers
    head_agreement: float | None = None
    int8: Int8Report | None = None
    mobile: MobileReport | None = None


@dataclass(frozen=True)
class Splits:
    train: Any  # edgessl.data.arrays.SplitArrays
    test: Any | None
    verify: np.ndarray  # uint8 images for parity checks


# (encoder proto, bank features, bank labels, num classes, options) -> (head proto, python predictions fn)
HeadBuilder = Callable[[Any, np.ndarray, np.ndarray, int, ExportOptions], tuple[Any, Callable[[np.ndarray], np.ndarray]]]
HEADS: Registry[HeadBuilder | None] = Registry("export head")
HEADS.register("none")(None)


@HEADS.register("knn")
def _knn(encoder, bank, labels, num_classes, options):
    def reference(features: np.ndarray) -> np.ndarray:
        return knn_predict(bank, labels, features, num_classes, k=options.k)

    return heads.knn_head(encoder, bank, labels, num_classes, options.k), reference


@HEADS.register("linear")
def _linear(encoder, bank, labels, num_classes, options):
    weight, bias = heads.train_linear_head(bank, labels, num_classes, epochs=options.linear_epochs)

    def reference(features: np.ndarray) -> np.ndarray:
        return (features @ weight + bias).argmax(1)

    return heads.linear_head(encoder, weight, bias), reference


def resolve_checkpoint(target: str | Path) -> Path:
    """A checkpoint file as given, or the last epoch checkpoint of a run folder."""
    from edgessl.training.checkpoint import list_checkpoints

    return list_checkpoints(target)[-1]


def read_splits(spec: str | None, root: str | None, image_size: int, verify_images: int, need_labels: bool) -> Splits:
    from edgessl.data.arrays import read_split_arrays

    if not spec:
        raise ConfigError("the checkpoint records no dataset; pass --data (e.g. --data shapes10 or --data stl10 --data-root DIR)")
    train = read_split_arrays(spec, "train", root, image_size)
    if need_labels and train.labels is None:
        raise DataError(f"dataset '{spec}' has no labelled train split; int8 accuracy and heads need one")
    test = read_split_arrays(spec, "test", root, image_size) if need_labels else None
    return Splits(train, test, calibration_subset(train.images, verify_images, seed=1))


def dataset_spec(metadata: dict[str, Any]) -> tuple[str | None, str | None]:
    """(dataset name or folder, data root) a checkpoint was trained on, as the trainer records them."""
    return metadata.get("dataset"), (metadata.get("train_config") or {}).get("data_root")


def export_checkpoint(target: str | Path, options: ExportOptions | None = None) -> ExportResult:
    """Export the checkpoint ``target`` (or a run folder's last epoch checkpoint)."""
    from edgessl.training.checkpoint import load_representation

    (options or ExportOptions()).validate()
    checkpoint = resolve_checkpoint(target)
    loaded = load_representation(checkpoint)
    return export_representation(loaded.model, loaded.metadata, options)


def export_representation(model: nn.Module, checkpoint_metadata: dict[str, Any], options: ExportOptions | None = None) -> ExportResult:
    """Export a Representation described by ``checkpoint_metadata`` (method, backbone, image_size, mean, std, epoch...)."""
    options = options or ExportOptions()
    options.validate()
    build_head = HEADS.get(options.head)
    metadata = metadata_of(checkpoint_metadata, model.feature_dim)
    recorded, recorded_root = dataset_spec(checkpoint_metadata)
    spec = options.data or recorded
    root = options.data_root if options.data else (options.data_root or recorded_root)
    splits = read_splits(spec, root, metadata.image_size, options.verify_images, need_labels=options.int8 or build_head is not None)
    metadata = metadata.replace(dataset=spec)
    out = Path(options.out_dir)
    stem = f"{metadata.method}_{metadata.backbone}_e{metadata.epoch:04d}"
    result = ExportResult(str(checkpoint_metadata.get("checkpoint", "")), metadata)

    proto = encoder_proto(model.eval(), metadata)
    fp32 = out / f"{stem}.onnx"
    result.parity["fp32"] = save_checked(proto, fp32, lambda tmp: verify_fp32(tmp, model, splits.verify))
    result.files["fp32"] = fp32
    if options.fixed_batch is not None:
        fixed = fix_batch(proto, options.fixed_batch)
        set_metadata(fixed, metadata)
        path = out / f"{stem}_b{options.fixed_batch}.onnx"
        result.parity["fixed"] = save_checked(fixed, path, lambda tmp: verify_fp32(tmp, model, splits.verify))
        result.files["fixed"] = path
    if options.int8:
        result.int8 = _export_int8(fp32, out / f"{stem}_int8.onnx", splits, metadata, options, result)
    if build_head is not None:
        _export_head(build_head, proto, fp32, out / f"{stem}_{options.head}.onnx", splits, metadata, options, result)
    if options.ort:
        _export_ort(out, stem, splits, result)
    return result


def _export_int8(fp32: Path, path: Path, splits: Splits, metadata: ModelMetadata, options: ExportOptions, result: ExportResult) -> Int8Report:
    from edgessl.export.files import atomic_output

    fp32_session = open_session(fp32)
    reference = onnx_features(fp32_session, splits.verify)
    with atomic_output(path) as tmp:
        quantize_int8(fp32, tmp, calibration_subset(splits.train.images, options.calibration_images), metadata.replace(precision="int8 (QDQ U8S8, per-channel)"))
        result.parity["int8"] = verify_against(tmp, reference, splits.verify, "int8 export", min_mean_cosine=INT8_MIN_MEAN_COSINE)
    result.files["int8"] = path
    int8_session = open_session(path)
    accuracy = {}
    for name, session in (("fp32", fp32_session), ("int8", int8_session)):
        bank = onnx_features(session, splits.train.images)
        predictions = knn_predict(bank, splits.train.labels, onnx_features(session, splits.test.images), len(splits.train.class_names), k=options.k)
        accuracy[name] = float((predictions == splits.test.labels).mean())
    timed = {f"{name}@{batch}": latency_ms(open_session(p, threads=1), batch, metadata.image_size) for batch in (1, 32) for name, p in (("fp32", fp32), ("int8", path))}
    return Int8Report(accuracy["fp32"], accuracy["int8"], timed, {"fp32": fp32.stat().st_size, "int8": path.stat().st_size})


def _export_head(build_head: HeadBuilder, encoder, fp32: Path, path: Path, splits: Splits, metadata: ModelMetadata, options: ExportOptions, result: ExportResult) -> None:
    session = open_session(fp32)
    bank = onnx_features(session, splits.train.images)
    classes = splits.train.class_names
    proto, reference = build_head(encoder, bank, splits.train.labels, len(classes), options)
    set_metadata(proto, metadata.replace(head=options.head, class_names=tuple(classes)))

    def check(tmp: Path) -> float:
        from edgessl.export.verify import check_onnx

        check_onnx(tmp)
        labels = onnx_features(open_session(tmp), splits.verify, output=heads.LABEL)
        agreement = float((labels == reference(onnx_features(session, splits.verify))).mean())
        if agreement < HEAD_AGREEMENT:
            raise ExportError(f"the in-graph {options.head} head agrees with the Python classifier on only {agreement:.1%} of images; nothing was written")
        return agreement

    result.head_agreement = save_checked(proto, path, check)
    result.files[options.head] = path


def _export_ort(out: Path, stem: str, splits: Splits, result: ExportResult) -> None:
    onnx_files = list(result.files.values())
    report = convert_to_ort(onnx_files, out, config_name=f"{stem}.required_operators.config")
    roles = list(result.files)
    for role, onnx_path, ort_path in zip(roles, onnx_files, report.ort_files, strict=True):
        reference = onnx_features(open_session(onnx_path), splits.verify)
        parity = compare(reference, onnx_features(open_session(ort_path), splits.verify))
        if not parity.mean_cosine >= ORT_MIN_MEAN_COSINE:
            for written in (*report.ort_files, report.config):
                written.unlink(missing_ok=True)
            raise ExportError(f"{ort_path.name} does not reproduce {onnx_path.name} ({parity.summary()}); no .ort file was kept")
        result.parity[f"{role}.ort"] = parity
        result.files[f"{role}.ort"] = ort_path
    result.files["operators"] = report.config
    result.mobile = report


__all__ = ["DEFAULT_OUT", "HEADS", "ExportOptions", "ExportResult", "Int8Report", "export_checkpoint", "export_representation"]
