"""Checkpoints: written atomically, loaded safely, found by epoch.

A checkpoint is a plain dict of tensors and primitives, so it loads with
``torch.load(weights_only=True)`` and nothing in it is ever executed:

``format``/``format_version``; ``metadata`` (method, backbone, train_config: the resolved
run, stored once; dataset, split, num_images, image_size, mean, std, epoch, step,
train_seconds, energy, edgessl_version); ``model`` (the method's state dict: encoder,
heads, momentum targets, queues); and, for resuming, ``optimizer``, ``scheduler``,
``position`` (epoch, step, steps_per_epoch, seed: the sampler position), ``rng`` (one
dict of torch/CUDA/numpy/python states per process) and, under fp16, ``scaler``.

Where a run keeps them and which one to use: :mod:`edgessl.runs`.
"""

from __future__ import annotations

import errno
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from edgessl.errors import CheckpointError, DiskFullError
from edgessl.files import atomic_output

FORMAT = "edgessl-checkpoint"
FORMAT_VERSION = 1


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Write ``state`` to ``path`` atomically: a temporary file in the same folder, then rename.

    A crash or full disk mid-write leaves the previous checkpoint intact and no temporary
    file; a full disk is a :class:`DiskFullError` saying how much space the folder has.
    """
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, **state}
    try:
        with atomic_output(path) as tmp, tmp.open("wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
    except (OSError, RuntimeError) as exc:  # torch's zip writer reports ENOSPC as a RuntimeError
        if not is_disk_full(exc, path.parent):
            raise
        raise DiskFullError(
            f"no space left to write {path} ({free_megabytes(path.parent):.0f} MB free there); "
            "free some space and "
            f"continue with --resume: {path.name} and the earlier checkpoints are intact"
        ) from None


def is_disk_full(exc: BaseException, folder: Path) -> bool:
    """Whether a failed write was for lack of space: ENOSPC/EDQUOT, or torch's writer failing on a full
    disk."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    return "write failed" in str(exc) or free_megabytes(folder) < 1


def free_megabytes(folder: Path) -> float:
    return shutil.disk_usage(folder).free / 1e6


def load_checkpoint(
    path: str | Path, map_location: str | torch.device = "cpu", mmap: bool = False
) -> dict[str, Any]:
    """Load an edgessl checkpoint with ``weights_only=True``; any problem is a :class:`CheckpointError`.

    torch's own message for an unsafe file suggests loading it with ``weights_only=False``,
    which would execute whatever the file holds; edgessl never passes that on. ``mmap``
    maps the tensors instead of reading them (cheap when only the metadata is needed).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception:  # noqa: BLE001 (torch raises many types for truncated, foreign or malicious files)
        raise CheckpointError(
            f"{path} is not a loadable edgessl checkpoint: it is corrupt, truncated, not a PyTorch file, "
            "or holds objects other than tensors and plain values (edgessl never loads those); "
            "use another checkpoint of the run"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not an edgessl checkpoint (no '{FORMAT}' marker); "
            "export and eval need one written by 'edgessl train'."
        )
    if state.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} was written by a newer edgessl (format {state['format_version']}); upgrade edgessl."
        )
    return state


REQUIRED_METADATA = {
    "method": str,
    "backbone": str,
    "image_size": int,
    "mean": (list, tuple),
    "std": (list, tuple),
}


def checkpoint_problems(state: dict[str, Any]) -> list[str]:
    """What a loaded checkpoint lacks for evaluation and export (empty when complete)."""
    metadata, model = state.get("metadata"), state.get("model")
    if not isinstance(metadata, dict):
        return ["no metadata"]
    problems = [
        f"metadata.{key} missing or not {kind.__name__ if isinstance(kind, type) else 'a list'}"
        for key, kind in REQUIRED_METADATA.items()
        if not isinstance(metadata.get(key), kind)
    ]
    if not isinstance(model, dict) or not all(isinstance(value, torch.Tensor) for value in model.values()):
        problems.append("no model weights")
    return problems


def describe_mismatch(
    expected: dict[str, torch.Tensor], given: dict[str, torch.Tensor], shown: int = 3
) -> str:
    """Which keys a state dict lacks, which it has extra, and which have the wrong shape (the first few
    of each)."""

    def first(names: list[str]) -> str:
        more = f" (+{len(names) - shown} more)" if len(names) > shown else ""
        return ", ".join(names[:shown]) + more

    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    shapes = [
        f"{key} {tuple(given[key].shape)} vs {tuple(expected[key].shape)}"
        for key in sorted(set(expected) & set(given))
        if given[key].shape != expected[key].shape
    ]
    parts = [
        f"{label}: {first(names)}"
        for label, names in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("shape (file vs model)", shapes),
        )
        if names
    ]
    return "; ".join(parts) or "no key or shape differs"


def load_weights(module: torch.nn.Module, weights: dict[str, torch.Tensor], source: str) -> None:
    """``module.load_state_dict(weights)``; a mismatch is one line listing what differs."""
    expected = module.state_dict()
    if set(expected) != set(weights) or any(weights[k].shape != v.shape for k, v in expected.items()):
        raise CheckpointError(
            f"{source} does not fit {type(module).__name__}: {describe_mismatch(expected, weights)}"
        )
    module.load_state_dict(weights)


@dataclass(frozen=True)
class LoadedRepresentation:
    """A trained feature extractor and what the checkpoint says about it."""

    model: torch.nn.Module  # edgessl.methods.Representation, in eval mode, on the CPU
    metadata: dict[str, Any]

    @property
    def epoch(self) -> int:
        return int(self.metadata.get("epoch", 0))


def recorded_arguments(state: dict[str, Any], source: str = "the checkpoint") -> tuple[Any, tuple[Any, ...]]:
    """The method class a loaded checkpoint records and its build arguments (backbone, config, image
    size, mean, std)."""
    from edgessl.methods import method_class

    problems = checkpoint_problems(state)
    if problems:
        raise CheckpointError(
            f"{source} carries the edgessl marker but cannot be used: {'; '.join(problems)}"
        )
    meta = state["metadata"]
    cls = method_class(meta["method"])
    return cls, (
        meta["backbone"],
        recorded_method_config(meta),
        meta["image_size"],
        tuple(meta["mean"]),
        tuple(meta["std"]),
    )


def recorded_method_config(meta: dict[str, Any]):  # -> edgessl.methods.MethodConfig
    """The method config a checkpoint's run was trained with: rebuilt from its resolved ``train_config``,
    or, in checkpoints written before the run was stored once, their separate ``method_config``."""
    from edgessl.config import config_from_dict
    from edgessl.methods import method_class, method_config_of_run

    if "method_config" in meta:
        return config_from_dict(method_class(meta["method"]).Config, meta["method_config"])
    return method_config_of_run(meta["train_config"])


def recorded_method(state: dict[str, Any], source: str = "the checkpoint"):  # -> edgessl.methods.Method
    """The method a loaded checkpoint records (method, backbone, image size, normalisation, config),
    untrained.

    A method with a frozen teacher rebuilds it from its recorded source.
    """
    from edgessl.methods import build_method

    cls, (backbone, config, image_size, mean, std) = recorded_arguments(state, source)
    return build_method(cls.name, backbone, image_size, mean, std, config)


def restore_method(state: dict[str, Any], source: str = "the checkpoint"):  # -> edgessl.methods.Method
    """Rebuild the method recorded in a loaded checkpoint and load all its weights (pretext heads
    included)."""
    method = recorded_method(state, source)
    meta = state["metadata"]
    load_weights(method, state["model"], f"the checkpoint of {meta['method']} on {meta['backbone']}")
    return method


def load_representation(path: str | Path) -> LoadedRepresentation:
    """The learned representation of a checkpoint, ready for evaluation or export.

    Only the representation is built (no pretext heads, no projector, no teacher) and only its
    weights are loaded, strictly, by the names :meth:`Method.representation_weight_names` gives:
    a run whose head has since changed shape (SimCLR's output BatchNorm, Split-Brain's
    hypercolumn) still evaluates and exports, and a distilled run never re-reads its teacher.
    """
    state = load_checkpoint(path)
    cls, arguments = recorded_arguments(state, str(path))
    model = cls.build_representation(*arguments)
    names = cls.representation_weight_names(list(model.state_dict()))
    weights = {own: state["model"][theirs] for own, theirs in names.items() if theirs in state["model"]}
    load_weights(model, weights, f"the encoder in {path}")
    return LoadedRepresentation(model=model.eval(), metadata={**state["metadata"], "checkpoint": str(path)})
