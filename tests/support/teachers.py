"""A small frozen teacher for the distillation tests: a ShuffleNetV2 weights file, written once per process.

Its weights are seeded random ones: the tests check the mechanics (frozen, hashed, rebuilt on
resume), which any weights show; learning from a trained teacher is what
``benchmarks/distillation.py`` measures.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path
from typing import Any

import torch

from edgessl.backbones import build_backbone
from edgessl.methods.teacher import TeacherConfig

TEACHER_BACKBONE = "shufflenetv2"  # BatchNorm throughout: its running statistics must not move


@functools.cache
def teacher_weights_file() -> Path:
    torch.manual_seed(1)
    path = Path(tempfile.mkdtemp(prefix="edgessl-teacher-")) / "teacher.pth"
    torch.save(build_backbone(TEACHER_BACKBONE).state_dict(), path)
    return path


def teacher_config() -> TeacherConfig:
    return TeacherConfig(source=TEACHER_BACKBONE, weights=str(teacher_weights_file()))


def teacher_fields(config_class: Any) -> dict[str, TeacherConfig]:
    """``{"teacher": ...}`` for a method config that has a teacher field, else nothing."""
    return {"teacher": teacher_config()} if "teacher" in config_class.__dataclass_fields__ else {}


def teacher_flags(config_class: Any) -> list[str]:
    """The same teacher as ``edgessl train`` flags."""
    if "teacher" not in config_class.__dataclass_fields__:
        return []
    return ["--teacher", TEACHER_BACKBONE, "--teacher-weights", str(teacher_weights_file())]
