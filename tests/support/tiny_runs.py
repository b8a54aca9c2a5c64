"""The tiny run the trainer tests share: the ``tiny`` method (``tests/training/conftest.py``) on 16 px
shapes10.

``TINY_FLAGS`` is it as ``edgessl train`` flags; :func:`tiny_config` as a :class:`TrainConfig`,
each test file passing what it varies (epochs, seed, checkpoint cadence, determinism).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgessl.training.config import TrainConfig

TINY_RUN: dict[str, Any] = {
    "method": "tiny",
    "backbone": "tiny",
    "data": "shapes10",
    "split": "test",
    "image_size": 16,
}
TINY_FLAGS = [
    "--method",
    "tiny",
    "--backbone",
    "tiny",
    "--data",
    "shapes10",
    "--split",
    "test",
    "--image-size",
    "16",
]


def tiny_config(out: Path, **changes: Any) -> TrainConfig:
    """The tiny run writing to ``out``, at batch 64, with ``changes`` on top."""
    return TrainConfig(**{**TINY_RUN, "batch_size": 64, "out": str(out), **changes})
