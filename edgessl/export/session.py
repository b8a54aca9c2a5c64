"""Opening an exported file with ONNX Runtime (CPU), with one-line errors; torch-free."""

from __future__ import annotations

from pathlib import Path

from edgessl.errors import DataError


def open_session(onnx_path: str | Path, threads: int | None = None):  # -> onnxruntime.InferenceSession
    """An ONNX Runtime CPU session; a missing or unreadable file is a one-line :class:`DataError`."""
    import onnxruntime as ort
    from onnxruntime.capi.onnxruntime_pybind11_state import (
        Fail,
        InvalidArgument,
        InvalidGraph,
        InvalidProtobuf,
        NoSuchFile,
    )

    path = Path(onnx_path)
    if not path.is_file():
        raise DataError(f"ONNX model not found: {path} (make one with 'edgessl export RUN')")
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    # ORT's own types, not RuntimeError
    except (Fail, InvalidArgument, InvalidGraph, InvalidProtobuf, NoSuchFile) as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise DataError(
            f"cannot load ONNX model {path}: {reason[:200]}. "
            "The file is corrupt or truncated; export it again."
        ) from None
