"""What ``--int8`` costs and gains on this encoder: kNN accuracy (train bank -> test) and ONNX Runtime
latency of the dynamic fp32 and int8 files, measured on the files themselves."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgessl.export.ort_eval import knn_predict, latency_ms, onnx_features, open_session
from edgessl.export.splits import Splits

LATENCY_BATCHES = (1, 32)


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


def knn_accuracy(path: Path, splits: Splits, k: int) -> float:
    """kNN accuracy with every feature computed by the ONNX file at ``path``."""
    session = open_session(path)
    predictions = knn_predict(
        onnx_features(session, splits.train.images),
        splits.train.labels,
        onnx_features(session, splits.test.images),
        len(splits.train.class_names),
        k=k,
    )
    return float((predictions == splits.test.labels).mean())


def int8_report(fp32: Path, int8: Path, splits: Splits, image_size: int, k: int) -> Int8Report:
    """kNN accuracy and batch-1/32 single-thread latency of the dynamic fp32 and int8 files."""
    files = {"fp32": fp32, "int8": int8}
    accuracy = {name: knn_accuracy(path, splits, k) for name, path in files.items()}
    timed = {
        f"{name}@{batch}": latency_ms(open_session(path, threads=1), batch, image_size)
        for batch in LATENCY_BATCHES
        for name, path in files.items()
    }
    sizes = {name: path.stat().st_size for name, path in files.items()}
    return Int8Report(accuracy["fp32"], accuracy["int8"], timed, sizes)
