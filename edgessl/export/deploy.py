"""The PyTorch module that LiteRT, Core ML and ExecuTorch convert: input step + encoder + optional head.

The ONNX path builds its heads and camera input in ONNX operators on the verified encoder
graph (:mod:`edgessl.export.heads`, :mod:`edgessl.export.inputs`). The other three
converters start from a PyTorch program (``torch.export``), so the same three stages are
written here as modules, operation for operation the ONNX ones:

- :class:`CameraInput`: uint8 RGB frames ``(N, H, W, 3)`` -> centre crop -> NCHW float
  ``/ 255`` -> bilinear resize (``align_corners=False``, no antialias);
- the representation (normalisation inside, as in every export);
- :class:`KnnHead` (``|b|^2 - 2 q.b``, k smallest, one-hot votes, ties to the class whose
  member is nearest) or :class:`LinearHead` (softmax of a folded probe), returning
  ``(scores, label)``.

:func:`deploy_module` puts them together; its outputs are the reference every converted
file is checked against.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgessl.export.inputs import Frames


class CameraInput(nn.Module):
    """uint8 ``(N, H, W, 3)`` frames -> float ``(N, 3, S, S)`` in [0, 1], as
    :func:`~edgessl.export.inputs.camera_input`."""

    def __init__(self, frames: Frames, channels_last: bool = True) -> None:
        super().__init__()
        self.frames = frames
        self.channels_last = channels_last

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        crop, size = self.frames.crop, self.frames.image_size
        top, left = (self.frames.height - crop) // 2, (self.frames.width - crop) // 2
        rows, columns = (1, 2) if self.channels_last else (2, 3)
        if crop != self.frames.height:  # a whole-frame slice would be an alias, which Core ML refuses
            frames = frames.narrow(rows, top, crop)
        if crop != self.frames.width:
            frames = frames.narrow(columns, left, crop)
        if self.channels_last:
            unit = frames.permute(0, 3, 1, 2).to(torch.float32) / 255.0
        else:  # Core ML's image input: NCHW float, its scale already applied by the runtime
            unit = frames
        if crop != size:
            unit = F.interpolate(unit, size=(size, size), mode="bilinear", align_corners=False)
        return unit


class KnnHead(nn.Module):
    """Euclidean majority vote over a labelled bank, tie-broken like :mod:`edgessl.export.heads`."""

    def __init__(self, bank: np.ndarray, bank_labels: np.ndarray, num_classes: int, k: int) -> None:
        super().__init__()
        bank = np.ascontiguousarray(bank, dtype=np.float32)
        self.k = min(k, len(bank))
        self.register_buffer("bank_t", torch.from_numpy(np.ascontiguousarray(bank.T)))
        self.register_buffer("bank_sq", torch.from_numpy((bank * bank).sum(1).astype(np.float32)))
        onehot = np.eye(num_classes, dtype=np.float32)[bank_labels.astype(np.int64)]
        self.register_buffer("bank_onehot", torch.from_numpy(onehot))
        rank_weight = (self.k - np.arange(self.k, dtype=np.float32)).reshape(1, self.k, 1)
        self.register_buffer("rank_weight", torch.from_numpy(rank_weight))

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        distance = self.bank_sq - 2.0 * (features @ self.bank_t)
        _, nearest = torch.topk(distance, self.k, dim=1, largest=False, sorted=True)
        votes = self.bank_onehot[nearest]  # (N, k, C)
        counts = votes.sum(1)
        nearest_bonus = (votes * self.rank_weight).amax(1)
        label = (counts * (self.k + 1.0) + nearest_bonus).argmax(1)
        return counts / float(self.k), label


class LinearHead(nn.Module):
    """``softmax(features @ weight + bias)`` and its argmax; ``weight`` is ``(D, C)``."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("weight", torch.from_numpy(np.ascontiguousarray(weight, dtype=np.float32)))
        self.register_buffer("bias", torch.from_numpy(np.ascontiguousarray(bias, dtype=np.float32)))

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = features @ self.weight + self.bias
        return logits.softmax(1), logits.argmax(1)


class DeployModule(nn.Module):
    """``input step -> representation -> head``; each stage optional except the representation."""

    def __init__(self, representation: nn.Module, camera: nn.Module | None, head: nn.Module | None) -> None:
        super().__init__()
        self.camera = camera
        self.representation = representation
        self.head = head

    def forward(self, images: torch.Tensor):
        unit = images if self.camera is None else self.camera(images)
        features = self.representation(unit)
        return features if self.head is None else self.head(features)


def deploy_module(
    representation: nn.Module, camera: nn.Module | None = None, head: nn.Module | None = None
) -> DeployModule:
    """The module a torch-side converter takes, in eval mode, with gradients off for every parameter."""
    module = DeployModule(representation, camera, head).eval()
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    return module


def run_module(module: nn.Module, inputs: np.ndarray, batch: int) -> tuple[np.ndarray, ...]:
    """The module's outputs on ``inputs`` in batches of exactly ``batch`` (the last one padded, then cut)."""
    outputs: list[list[np.ndarray]] = []
    with torch.no_grad():
        for start in range(0, len(inputs), batch):
            chunk = padded(inputs[start : start + batch], batch)
            got = module(torch.from_numpy(chunk))
            got = got if isinstance(got, tuple) else (got,)
            outputs.append([value[: min(batch, len(inputs) - start)].numpy() for value in got])
    return tuple(np.concatenate(column) for column in zip(*outputs, strict=True))


def padded(chunk: np.ndarray, batch: int) -> np.ndarray:
    """``chunk`` with its last row repeated up to ``batch`` rows (a fixed-batch program takes only that)."""
    if len(chunk) == batch:
        return np.ascontiguousarray(chunk)
    return np.ascontiguousarray(np.concatenate([chunk, np.repeat(chunk[-1:], batch - len(chunk), axis=0)]))
