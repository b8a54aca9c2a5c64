"""A frozen teacher for distillation: built from wherever a user keeps one, hashed, never trained.

A teacher comes from an edgessl run folder or checkpoint (its learned representation,
with the normalisation and input size it was trained at) or from a backbone name
(registered, or ``timm:NAME``) with a weights file read by the same loader as
``edgessl train --weights`` (torchvision, timm or edgessl key layouts; ``.safetensors``,
or ``.pth`` with ``weights_only=True``). A teacher trained at another input size than the
student's sees the student's views resized to its own size.

The teacher is one of its method's :attr:`~edgessl.methods.base.Method.frozen` modules:
the trainer keeps it in eval mode and out of the optimiser, SyncBatchNorm and checkpoints.
What a checkpoint keeps instead is :attr:`FrozenTeacher.provenance` (source, backbone,
parameters, input size and a SHA-256 of its weights), which a resume checks against the
teacher it rebuilds.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgessl.backbones.base import Normalize, Representation
from edgessl.config import Fraction, PositiveFloat, PositiveInt
from edgessl.errors import CheckpointError, ConfigError, EdgesslError

RGB = tuple[float, float, float]


@dataclass
class TeacherConfig:
    """Where a distillation method's teacher comes from (``edgessl train --teacher``,
    ``--teacher-weights``)."""

    source: str = ""  # an edgessl run folder or checkpoint, or a backbone name (then `weights` is required)
    weights: str | None = None  # the backbone teacher's state dict (.safetensors, or .pth with weights_only)
    image_size: PositiveInt | None = None  # the teacher's input side; None: its run's size, or the student's
    # A backbone teacher's input normalisation (ImageNet's for torchvision/timm weights:
    # [0.485, 0.456, 0.406] / [0.229, 0.224, 0.225]); None: the student's dataset's. A run keeps its own.
    mean: list[Fraction] | None = None
    std: list[PositiveFloat] | None = None


class FrozenTeacher(nn.Module):
    """A representation that maps the student's float views in [0, 1] to the teacher's features."""

    def __init__(self, representation: Representation, image_size: int, provenance: dict[str, Any]) -> None:
        super().__init__()
        self.representation = representation
        self.feature_dim = representation.feature_dim
        self.image_size = image_size
        self.provenance = {**provenance, "sha256": weights_sha256(representation)}

    def forward(self, views: torch.Tensor) -> torch.Tensor:
        if views.shape[-1] != self.image_size or views.shape[-2] != self.image_size:
            size = (self.image_size, self.image_size)
            views = nn.functional.interpolate(views, size=size, mode="bilinear", antialias=True)
        return self.representation(views)


def weights_sha256(module: nn.Module) -> str:
    """SHA-256 of a module's state dict: every tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        data = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{data.dtype}:{tuple(data.shape)}".encode())
        digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def load_teacher(config: TeacherConfig, student_image_size: int, mean: RGB, std: RGB) -> FrozenTeacher:
    """The teacher ``config`` names; anything that does not resolve or fit is one :class:`ConfigError`
    line."""
    if not config.source:
        raise ConfigError(
            "this method distils from a teacher: pass --teacher RUN_FOLDER|CHECKPOINT, or --teacher BACKBONE "
            "--teacher-weights FILE (e.g. --teacher runs/simclr-resnet18)"
        )
    if config.image_size is not None and config.image_size < 8:
        raise ConfigError(f"teacher image_size must be at least 8 (got {config.image_size})")
    for name in ("mean", "std"):
        value = getattr(config, name)
        if value is not None and (len(value) != 3 or (name == "std" and min(value) <= 0)):
            raise ConfigError(f"teacher {name} must be 3 numbers (one per RGB channel, std > 0), got {value}")
    path = Path(config.source).expanduser()
    if path.exists():
        if config.weights is not None:
            raise ConfigError(
                f"--teacher-weights goes with a backbone name; {config.source} is a run or checkpoint, "
                "which carries its own weights: drop --teacher-weights"
            )
        return _teacher_from_run(path, config)
    return _teacher_from_backbone(config, student_image_size, mean, std)


def _teacher_from_run(path: Path, config: TeacherConfig) -> FrozenTeacher:
    from edgessl.checkpoints import load_representation
    from edgessl.runs import RunFolder

    checkpoint = path
    if path.is_dir():
        newest = RunFolder(path).newest()
        if newest is None:
            raise ConfigError(
                f"teacher {path} holds no checkpoint; train it first, or name a checkpoint file"
            )
        checkpoint = newest
    try:
        loaded = load_representation(checkpoint)
    except CheckpointError as exc:
        raise ConfigError(f"teacher: {exc}") from None
    meta = loaded.metadata
    provenance = {
        "source": str(checkpoint),
        "kind": "edgessl checkpoint",
        "method": meta["method"],
        "backbone": meta["backbone"],
        "epoch": meta.get("epoch"),
        "params": parameter_count(loaded.model),
        "train_seconds": meta.get("train_seconds"),  # what the teacher cost, for a study's Table 1
    }
    size = config.image_size or int(meta["image_size"])
    return FrozenTeacher(loaded.model, size, {**provenance, "image_size": size})


def _teacher_from_backbone(
    config: TeacherConfig, student_image_size: int, mean: RGB, std: RGB
) -> FrozenTeacher:
    from edgessl.backbones import build_backbone, load_backbone_weights

    try:
        encoder = build_backbone(config.source)
    except EdgesslError as exc:
        raise ConfigError(
            f"teacher '{config.source}' is neither a run folder, a checkpoint nor a backbone name: {exc}"
        ) from None
    if config.weights is None:
        raise ConfigError(
            f"teacher backbone '{config.source}' needs its trained weights: add --teacher-weights FILE "
            "(a state dict in torchvision, timm or edgessl layout; a random teacher teaches nothing)"
        )
    try:
        load_backbone_weights(encoder, config.weights)
    except EdgesslError as exc:
        raise ConfigError(
            f"--teacher-weights: {str(exc).replace('Check --backbone', 'Check --teacher')}"
        ) from None
    size = config.image_size or student_image_size
    normalize = Normalize(tuple(config.mean or mean), tuple(config.std or std))
    representation = Representation(normalize, encoder, encoder.feature_dim)
    provenance = {
        "source": str(Path(config.weights).expanduser().resolve()),
        "kind": "backbone weights",
        "backbone": config.source,
        "params": parameter_count(representation),
        "image_size": size,
    }
    return FrozenTeacher(representation, size, provenance)


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
