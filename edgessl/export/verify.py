"""Every export is checked before it is published: ``onnx.checker``, then numbers.

ONNX Runtime runs the file on real images from the dataset and its outputs are
compared with a reference (PyTorch for fp32, the fp32 ONNX model for int8 and ORT
format): maximum absolute difference, the same relative to the largest reference
magnitude, and the cosine between feature vectors. Past tolerance the export raises
:class:`ExportError` and, because the file is checked under a temporary name, nothing
is published.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx

from edgessl.export.metadata import ExportError
from edgessl.export.ort_eval import onnx_features
from edgessl.export.session import open_session

FP32_RELATIVE_TOLERANCE = 1e-4  # max |onnx - torch| / max |torch|
FP32_MIN_COSINE = 0.99999
INT8_MIN_MEAN_COSINE = 0.90  # static int8 of these CNNs measures 0.95-0.999 on real images


@dataclass(frozen=True)
class Parity:
    """How close a candidate's outputs are to a reference's, over ``images`` inputs."""

    images: int
    max_abs: float
    max_relative: float  # max_abs / max |reference|
    min_cosine: float
    mean_cosine: float

    def summary(self) -> str:
        return (
            f"{self.images} images: max |diff| {self.max_abs:.3g}, relative {self.max_relative:.3g}, "
            f"cosine min {self.min_cosine:.6f} mean {self.mean_cosine:.6f}"
        )

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def compare(reference: np.ndarray, candidate: np.ndarray) -> Parity:
    """Parity of two ``(N, D)`` output arrays (float64 arithmetic)."""
    ref, cand = reference.astype(np.float64), candidate.astype(np.float64)
    diff = np.abs(ref - cand)
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(cand, axis=1)
    cosine = np.where(norms > 0, (ref * cand).sum(1) / np.maximum(norms, 1e-300), 1.0)
    scale = float(np.abs(ref).max()) or 1.0
    return Parity(
        len(ref), float(diff.max()), float(diff.max()) / scale, float(cosine.min()), float(cosine.mean())
    )


def check_onnx(path: Path) -> None:
    """``onnx.checker`` with full shape inference; a failure is an :class:`ExportError`."""
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ExportError(
            f"the exported graph is invalid ONNX: {(str(exc).splitlines() or ['?'])[0][:300]}"
        ) from None


def torch_features(model, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """PyTorch reference outputs of ``model`` on uint8 images (same scaling as ONNX's input)."""
    import torch

    with torch.no_grad():
        chunks = [
            model.eval()(torch.from_numpy(images[i : i + batch_size]).float() / 255.0)
            for i in range(0, len(images), batch_size)
        ]
    return torch.cat(chunks).numpy()


def require(
    parity: Parity,
    what: str,
    max_relative: float | None = None,
    min_cosine: float = 0.0,
    min_mean_cosine: float = 0.0,
) -> Parity:
    """``parity`` if it is within the limits; otherwise an :class:`ExportError` naming each one missed."""
    limits = [
        (
            max_relative is not None and not parity.max_relative <= max_relative,
            f"relative error {parity.max_relative:.3g} > {max_relative}",
        ),
        (not parity.min_cosine >= min_cosine, f"min cosine {parity.min_cosine:.6f} < {min_cosine}"),
        (
            not parity.mean_cosine >= min_mean_cosine,
            f"mean cosine {parity.mean_cosine:.6f} < {min_mean_cosine}",
        ),
    ]
    failures = [message for failed, message in limits if failed]
    if failures:
        raise ExportError(
            f"{what} failed verification ({'; '.join(failures)}; {parity.summary()}); "
            "nothing was written. Report this with the backbone name."
        )
    return parity


def verify_against(
    path: Path,
    reference: np.ndarray,
    images: np.ndarray,
    what: str,
    *,
    max_relative: float | None = None,
    min_cosine: float = 0.0,
    min_mean_cosine: float = 0.0,
) -> Parity:
    """Check ``path`` and compare its outputs on ``images`` with ``reference``; raise past tolerance."""
    if path.suffix == ".onnx":
        check_onnx(path)
    return require(
        compare(reference, onnx_features(open_session(path), images)),
        what,
        max_relative,
        min_cosine,
        min_mean_cosine,
    )


def verify_fp32(
    path: Path, reference: np.ndarray, images: np.ndarray, what: str = "fp32 ONNX export"
) -> Parity:
    """ONNX Runtime against PyTorch's outputs ``reference`` on real ``images``, within
    :data:`FP32_RELATIVE_TOLERANCE`."""
    return verify_against(
        path, reference, images, what, max_relative=FP32_RELATIVE_TOLERANCE, min_cosine=FP32_MIN_COSINE
    )


def verify_int8(path: Path, reference: np.ndarray, images: np.ndarray, what: str = "int8 export") -> Parity:
    """int8 ONNX Runtime against PyTorch's fp32 outputs ``reference``: mean cosine at least
    :data:`INT8_MIN_MEAN_COSINE`."""
    return verify_against(path, reference, images, what, min_mean_cosine=INT8_MIN_MEAN_COSINE)
