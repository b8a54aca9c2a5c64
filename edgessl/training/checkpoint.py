"""Checkpoints: written atomically, loaded safely, found by epoch.

A checkpoint is a plain dict of tensors and primitives, so it loads with
``torch.load(weights_only=True)`` and nothing in it is ever executed:

``format``/``format_version``; ``metadata`` (method, backbone, method_config,
train_config, dataset, split, num_images, image_size, mean, std, epoch, step,
train_seconds, energy, edgessl_version); ``model`` (the method's state dict: encoder,
heads, momentum targets, queues); and, for resuming, ``optimizer``, ``scheduler``,
``position`` (epoch, step, steps_per_epoch, seed: the sampler position), ``rng`` (one
dict of torch/CUDA/numpy/python states per process) and, under fp16, ``scaler``.

A run folder keeps ``checkpoints/epoch_NNNN.pt`` every few epochs and ``last.pt``.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from edgessl.errors import CheckpointError

FORMAT = "edgessl-checkpoint"
FORMAT_VERSION = 1
CHECKPOINT_DIR = "checkpoints"
LAST = "last.pt"
_EPOCH_FILE = re.compile(r"^epoch_(\d+)\.pt$")


def epoch_checkpoint_name(epoch: int) -> str:
    return f"epoch_{epoch:04d}.pt"


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Write ``state`` to ``path`` atomically: a temporary file in the same folder, then rename.

    A crash or full disk mid-write leaves the previous checkpoint intact.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, **state}
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load an edgessl checkpoint with ``weights_only=True``; any problem is a :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(
            f"cannot read checkpoint {path}: {reason[:200]}. The file is corrupt, truncated or not a "
            "PyTorch checkpoint; use another checkpoint of the run (e.g. the previous epoch_*.pt)."
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an edgessl checkpoint (no '{FORMAT}' marker); export and eval need one written by 'edgessl train'.")
    if state.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path} was written by a newer edgessl (format {state['format_version']}); upgrade edgessl.")
    return state


def checkpoint_epoch(path: Path) -> int | None:
    match = _EPOCH_FILE.match(path.name)
    return int(match.group(1)) if match else None


def list_checkpoints(run_or_checkpoint: str | Path) -> list[Path]:
    """Every epoch checkpoint of a run folder ordered by epoch, or the single file given.

    A run folder means all of its checkpoints, never "the first file found"; ``last.pt``
    is used only when the run kept no epoch checkpoint.
    """
    target = Path(run_or_checkpoint)
    if target.is_file():
        return [target]
    folder = target / CHECKPOINT_DIR if (target / CHECKPOINT_DIR).is_dir() else target
    if not folder.is_dir():
        raise CheckpointError(f"no run folder or checkpoint at {target}")
    epochs = sorted((p for p in folder.iterdir() if checkpoint_epoch(p) is not None), key=checkpoint_epoch)
    if epochs:
        return epochs
    if (folder / LAST).is_file():
        return [folder / LAST]
    raise CheckpointError(f"{target} holds no checkpoints (expected {CHECKPOINT_DIR}/epoch_NNNN.pt or {LAST})")


@dataclass(frozen=True)
class LoadedRepresentation:
    """A trained feature extractor and what the checkpoint says about it."""

    model: torch.nn.Module  # edgessl.methods.Representation, in eval mode, on the CPU
    metadata: dict[str, Any]

    @property
    def epoch(self) -> int:
        return int(self.metadata.get("epoch", 0))


def restore_method(state: dict[str, Any]):  # -> edgessl.methods.Method
    """Rebuild the method recorded in a loaded checkpoint and load its weights."""
    from edgessl.methods import build_method, method_class
    from edgessl.training.config import config_from_dict

    meta = state["metadata"]
    cls = method_class(meta["method"])
    config = config_from_dict(cls.Config, meta.get("method_config", {}))
    method = build_method(meta["method"], meta["backbone"], meta["image_size"], tuple(meta["mean"]), tuple(meta["std"]), config)
    try:
        method.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint weights do not fit {meta['method']} on {meta['backbone']}: {str(exc).splitlines()[0]}") from None
    return method


def load_representation(path: str | Path) -> LoadedRepresentation:
    """The learned representation of a checkpoint, ready for evaluation or export."""
    state = load_checkpoint(path)
    method = restore_method(state)
    model = method.representation().eval()
    return LoadedRepresentation(model=model, metadata={**state["metadata"], "checkpoint": str(path)})
