"""Pretraining: configs, the Accelerate trainer, optimisers, checkpoints and run logs.

``from edgessl.training import train, TrainConfig`` is the entry point. The trainer (and
with it accelerate) is imported on first use, so evaluation code that only reads
checkpoints does not pay for it.
"""

from __future__ import annotations

from typing import Any

from edgessl.checkpoints import (
    LoadedRepresentation,
    load_checkpoint,
    load_representation,
    restore_method,
    save_checkpoint,
)
from edgessl.runs import list_checkpoints
from edgessl.training.config import TrainConfig

_TRAINER = ("train", "TrainResult", "TrainingInterrupted")


def __getattr__(name: str) -> Any:
    if name in _TRAINER:
        from edgessl.training import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "LoadedRepresentation",
    "TrainConfig",
    "TrainResult",
    "TrainingInterrupted",
    "list_checkpoints",
    "load_checkpoint",
    "load_representation",
    "restore_method",
    "save_checkpoint",
    "train",
]
