"""Per-optimiser-step schedules: the learning rate (linear warm-up, then a named shape) and weight decay.

``SCHEDULES`` maps ``cosine``, ``step`` and ``constant`` to the shape after the warm-up;
the trainer asks for ``build_scheduler`` and never branches on a name. Every schedule is a
function of the step held in plain fields, so a checkpoint stores it as primitives and a
resume with more epochs stretches the rest (:meth:`Schedules.stretch`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from edgessl.errors import ConfigError
from edgessl.methods.base import OptimizerConfig
from edgessl.registry import Registry

SCHEDULES: Registry[Callable[[float], float]] = Registry("learning-rate schedule")


@SCHEDULES.register("cosine")
def _cosine(progress: float) -> float:
    """Half a cosine from 1 to 0 (SGDR without restarts, as SimCLR, BYOL and MoCo v2 use)."""
    return 0.5 * (1.0 + math.cos(math.pi * progress))


# RotNet's released CIFAR-10 schedule (gidariss/FeatureLearningRotNet, config
# CIFAR10_RotNet_NIN4blocks: LUT_lr [(30, 0.1), (60, 0.02), (80, 0.004), (100, 0.0008)]):
# x0.2 after 30%, 60% and 80% of training, stated as fractions so it spans any run length.
STEP_MILESTONES = (0.3, 0.6, 0.8)
STEP_FACTOR = 0.2


@SCHEDULES.register("step")
def _step(progress: float) -> float:
    """RotNet's step decay: x0.2 at each of ``STEP_MILESTONES`` (fractions of training)."""
    return STEP_FACTOR ** sum(progress >= milestone for milestone in STEP_MILESTONES)


@SCHEDULES.register("constant")
def _constant(progress: float) -> float:
    return 1.0


@dataclass
class WarmupSchedule:
    """LR factor at optimiser step ``step``: linear warm-up, then the named shape over the rest.

    A plain object (not a closure) so ``LambdaLR.state_dict`` stores its fields, which
    are primitives and load with ``weights_only=True``.
    """

    warmup_steps: int
    total_steps: int
    shape: str
    floor: float = 0.0  # the factor the shape ends at (OptimizerConfig.final_lr_scale)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        decay_steps = max(self.total_steps - self.warmup_steps, 1)
        shape = SCHEDULES.get(self.shape)(min((step - self.warmup_steps) / decay_steps, 1.0))
        return self.floor + (1.0 - self.floor) * shape


def warmup_schedule(config: OptimizerConfig, steps_per_epoch: int, total_steps: int) -> WarmupSchedule:
    SCHEDULES.get(config.schedule)  # fail on a wrong name now, not at the first step
    return WarmupSchedule(
        min(config.warmup_epochs * steps_per_epoch, total_steps),
        total_steps,
        config.schedule,
        config.final_lr_scale,
    )


@dataclass
class WeightDecaySchedule:
    """Weight-decay factor at optimiser step ``step``: a cosine from 1 to ``end / start`` (DINO's
    schedule)."""

    total_steps: int
    end_ratio: float

    def __call__(self, step: int) -> float:
        progress = min(step / max(self.total_steps, 1), 1.0)
        return self.end_ratio + (1.0 - self.end_ratio) * _cosine(progress)


class Schedules:
    """What changes per optimiser step: the learning rate (warm-up, then a shape) and optionally weight decay.

    The learning rate is a ``LambdaLR`` (each group follows the factor times its own base
    rate, so a method's ``lr_scale`` holds throughout); weight decay, when
    ``weight_decay_end`` is set, scales every decayed group from its base value. Both are
    functions of the step, so ``state_dict`` is the ``LambdaLR``'s (primitives only).
    """

    def __init__(
        self, optimizer: Optimizer, config: OptimizerConfig, steps_per_epoch: int, total_steps: int
    ) -> None:
        self.optimizer, self.config = optimizer, config
        for group in optimizer.param_groups:
            group.setdefault("base_weight_decay", group.get("weight_decay", 0.0))
        self.lr = LambdaLR(optimizer, warmup_schedule(config, steps_per_epoch, total_steps))
        self.stretch(steps_per_epoch, total_steps)

    def stretch(self, steps_per_epoch: int, total_steps: int) -> None:
        """Follow a run of ``total_steps`` (a resume with more epochs stretches the rest of the schedules)."""
        self.lr.lr_lambdas = [
            warmup_schedule(self.config, steps_per_epoch, total_steps) for _ in self.lr.lr_lambdas
        ]
        end = self.config.weight_decay_end
        self.weight_decay = (
            None if end is None else WeightDecaySchedule(total_steps, end / self.config.weight_decay)
        )
        self._apply_weight_decay()

    def step(self) -> None:
        self.lr.step()
        self._apply_weight_decay()

    def get_last_lr(self) -> list[float]:
        return self.lr.get_last_lr()

    def state_dict(self) -> dict[str, Any]:
        return self.lr.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.lr.load_state_dict(state)
        self._apply_weight_decay()

    def _apply_weight_decay(self) -> None:
        if self.weight_decay is None:
            return
        factor = self.weight_decay(self.lr.last_epoch)
        for group in self.optimizer.param_groups:
            if group.get("decayed", True):
                group["weight_decay"] = group["base_weight_decay"] * factor


def build_scheduler(
    optimizer: Optimizer, config: OptimizerConfig, steps_per_epoch: int, total_steps: int
) -> Schedules:
    """Per-optimiser-step schedules with ``config.warmup_epochs`` of linear warm-up.

    Building them sets the optimiser's learning rate to the first step's, so a resumed
    run loads their state instead of building others.
    """
    if config.weight_decay_end is not None and not config.weight_decay > 0:
        raise ConfigError(
            "optimizer.weight_decay_end needs a positive optimizer.weight_decay to start the schedule from"
        )
    return Schedules(optimizer, config, steps_per_epoch, total_steps)
