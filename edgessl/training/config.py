"""Plain dataclass configs, converted to and from dicts (YAML files, checkpoints, CLI)."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, TypeVar

from edgessl.errors import ConfigError

C = TypeVar("C")


def config_to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def config_from_dict(cls: type[C], values: dict[str, Any]) -> C:
    """Build dataclass ``cls`` from ``values``, recursing into nested dataclasses.

    Unknown keys are an error naming the valid ones, so a typo in a YAML file is
    caught instead of silently ignored.
    """
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} option(s) {', '.join(unknown)}; valid: {', '.join(fields)}")
    kwargs: dict[str, Any] = {}
    for name, value in values.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            value = config_from_dict(hint, value)
        elif isinstance(value, list) and typing.get_origin(hint) is tuple:
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


PRECISIONS = ("no", "bf16", "fp16")  # accelerate's mixed_precision values


@dataclasses.dataclass
class TrainConfig:
    """One pretraining run, as ``edgessl train`` flags, a YAML file or the study runner give it.

    ``None`` means "the method's paper default" (batch size, learning rate) or "the
    dataset's native size" (image size). ``lr`` is the rate for the method's reference
    batch size and is scaled linearly with the batch size, as the papers do.
    """

    method: str = "simclr"
    backbone: str = "shufflenetv2"
    data: str = "shapes10"
    data_root: str | None = None
    split: str = "unlabeled"
    image_size: int | None = None
    epochs: int = 100
    batch_size: int | None = None  # global batch per optimiser step (all processes, all accumulation steps)
    lr: float | None = None
    save_every: int = 5
    out: str = "runs/{method}-{backbone}"
    seed: int = 0
    precision: str = "no"
    grad_accum: int = 1
    deterministic: bool = False
    max_steps: int | None = None  # stop after this many optimiser steps in all (the schedule still spans `epochs`)
    time_budget_s: float | None = None  # stop (and save) once this much training time has passed in all
    method_overrides: dict[str, Any] = dataclasses.field(default_factory=dict)  # merged into the method's Config

    def __post_init__(self) -> None:
        problems = [
            message
            for failed, message in (
                (self.epochs < 1, f"epochs must be at least 1 (got {self.epochs})"),
                (self.save_every < 1, f"save_every must be at least 1 (got {self.save_every})"),
                (self.grad_accum < 1, f"grad_accum must be at least 1 (got {self.grad_accum})"),
                (self.precision not in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)} (got '{self.precision}')"),
                (self.batch_size is not None and self.batch_size < 1, f"batch_size must be positive (got {self.batch_size})"),
                (self.lr is not None and not self.lr > 0, f"lr must be positive (got {self.lr})"),
                (self.max_steps is not None and self.max_steps < 1, f"max_steps must be at least 1 (got {self.max_steps})"),
                (self.image_size is not None and self.image_size < 8, f"image_size must be at least 8 (got {self.image_size})"),
            )
            if failed
        ]
        if problems:
            raise ConfigError("; ".join(problems))

    @property
    def run_dir(self) -> str:
        """``out`` with ``{method}`` and ``{backbone}`` filled in (``timm:`` names made path-safe)."""
        backbone = self.backbone.replace(":", "_").replace("/", "_")
        return self.out.format(method=self.method, backbone=backbone)


def nest_dotted(values: dict[str, Any]) -> dict[str, Any]:
    """``{"optimizer.lr": 0.1}`` -> ``{"optimizer": {"lr": 0.1}}``, so ``--set`` reaches nested fields."""
    nested: dict[str, Any] = {}
    for key, value in values.items():
        *parents, leaf = key.split(".")
        node = nested
        for parent in parents:
            node = node.setdefault(parent, {})
        if isinstance(value, dict):
            node.setdefault(leaf, {}).update(nest_dotted(value))
        else:
            node[leaf] = value
    return nested


def merge_config(cls: type[C], base: C, overrides: dict[str, Any]) -> C:
    """``base`` with ``overrides`` (possibly dotted or nested) applied; unknown keys are errors."""
    merged = config_to_dict(base)

    def deep_update(target: dict[str, Any], changes: dict[str, Any]) -> None:
        for key, value in changes.items():
            if isinstance(value, dict) and isinstance(target.get(key), dict):
                deep_update(target[key], value)
            else:
                target[key] = value

    deep_update(merged, nest_dotted(overrides))
    return config_from_dict(cls, merged)
