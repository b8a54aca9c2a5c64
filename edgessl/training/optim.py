"""Optimisers and learning-rate schedules by name, built from a method's :class:`OptimizerConfig`.

``OPTIMIZERS`` maps ``sgd``, ``adam``, ``adamw`` and ``lars`` to builders; ``SCHEDULES``
maps ``cosine`` and ``constant`` to the shape after a linear warm-up. The trainer asks
for ``build_optimizer`` and ``build_scheduler`` and never branches on a name.

Learning rates follow the papers' linear scaling rule: ``OptimizerConfig.lr`` is the rate
for ``reference_batch_size`` and the rate used is ``lr * batch_size / reference_batch_size``
(SimCLR: 0.3 x B/256 with LARS; BYOL: 0.2 x B/256; MoCo v2: 0.03 for 256).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from edgessl.methods.base import OptimizerConfig
from edgessl.registry import Registry

OptimizerBuilder = Callable[[nn.Module, OptimizerConfig, float], Optimizer]
OPTIMIZERS: Registry[OptimizerBuilder] = Registry("optimizer")
SCHEDULES: Registry[Callable[[float], float]] = Registry("learning-rate schedule")


def scaled_lr(config: OptimizerConfig, batch_size: int) -> float:
    """The linear scaling rule (Goyal et al. 2017), used by SimCLR, BYOL and MoCo."""
    return config.lr * batch_size / config.reference_batch_size


class LARS(Optimizer):
    """Layer-wise Adaptive Rate Scaling (You et al. 2017) with SGD momentum, as SimCLR and BYOL use it.

    For every parameter tensor of a group with ``lars=True``: ``g <- g + wd * w``, then
    ``g <- g * eta * ||w|| / ||g||`` (when both norms are positive), then heavy-ball
    momentum ``v <- m * v + g``, ``w <- w - lr * v``. Groups with ``lars=False`` (biases
    and normalisation parameters, by :func:`lars_param_groups`) get neither weight decay
    nor the trust ratio, which is what the SimCLR and BYOL papers specify.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict],
        lr: float,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        trust_coefficient: float = 1e-3,
    ) -> None:
        if lr < 0 or momentum < 0 or weight_decay < 0 or trust_coefficient <= 0:
            raise ValueError(
                f"invalid LARS hyper-parameters lr={lr} momentum={momentum} wd={weight_decay} eta={trust_coefficient}"
            )
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "weight_decay": weight_decay,
            "trust_coefficient": trust_coefficient,
            "lars": True,
        }
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                grad = param.grad
                if group["lars"]:
                    grad = grad.add(param, alpha=group["weight_decay"])
                    grad = grad.mul(trust_ratio(param, grad, group["trust_coefficient"]))
                state = self.state[param]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = grad.detach().clone()
                else:
                    state["momentum_buffer"].mul_(group["momentum"]).add_(grad)
                param.add_(state["momentum_buffer"], alpha=-group["lr"])
        return loss


def trust_ratio(param: torch.Tensor, grad: torch.Tensor, eta: float) -> torch.Tensor:
    """``eta * ||w|| / ||g||``, or 1 where either norm is zero (fresh zero-initialised layers)."""
    w_norm, g_norm = param.norm(), grad.norm()
    ratio = eta * w_norm / g_norm
    return torch.where((w_norm > 0) & (g_norm > 0), ratio, torch.ones_like(ratio))


def is_excluded_from_lars(param: torch.Tensor) -> bool:
    """Biases and normalisation scales/shifts are the 1-D parameters."""
    return param.ndim <= 1


def lars_param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: weights adapted and decayed; biases and norm parameters neither."""
    params = [p for p in model.parameters() if p.requires_grad]
    adapted = [p for p in params if not is_excluded_from_lars(p)]
    plain = [p for p in params if is_excluded_from_lars(p)]
    return [
        {"params": adapted, "lars": True, "weight_decay": weight_decay},
        {"params": plain, "lars": False, "weight_decay": 0.0},
    ]


def trainable(model: nn.Module) -> list[torch.Tensor]:
    """Momentum targets have ``requires_grad=False`` and must stay out of the optimiser."""
    return [p for p in model.parameters() if p.requires_grad]


@OPTIMIZERS.register("sgd")
def _sgd(model: nn.Module, config: OptimizerConfig, lr: float) -> Optimizer:
    return torch.optim.SGD(
        trainable(model), lr=lr, momentum=config.momentum, weight_decay=config.weight_decay
    )


@OPTIMIZERS.register("adam")
def _adam(model: nn.Module, config: OptimizerConfig, lr: float) -> Optimizer:
    return torch.optim.Adam(trainable(model), lr=lr, weight_decay=config.weight_decay)


@OPTIMIZERS.register("adamw")
def _adamw(model: nn.Module, config: OptimizerConfig, lr: float) -> Optimizer:
    return torch.optim.AdamW(trainable(model), lr=lr, weight_decay=config.weight_decay)


@OPTIMIZERS.register("lars")
def _lars(model: nn.Module, config: OptimizerConfig, lr: float) -> Optimizer:
    return LARS(
        lars_param_groups(model, config.weight_decay),
        lr=lr,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
    )


def build_optimizer(model: nn.Module, config: OptimizerConfig, batch_size: int) -> Optimizer:
    """The method's optimiser at the linearly scaled learning rate for ``batch_size``."""
    return OPTIMIZERS.get(config.name)(model, config, scaled_lr(config, batch_size))


@SCHEDULES.register("cosine")
def _cosine(progress: float) -> float:
    """Half a cosine from 1 to 0 (SGDR without restarts, as SimCLR, BYOL and MoCo v2 use)."""
    return 0.5 * (1.0 + math.cos(math.pi * progress))


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

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        decay_steps = max(self.total_steps - self.warmup_steps, 1)
        return SCHEDULES.get(self.shape)(min((step - self.warmup_steps) / decay_steps, 1.0))


def warmup_schedule(config: OptimizerConfig, steps_per_epoch: int, total_steps: int) -> WarmupSchedule:
    SCHEDULES.get(config.schedule)  # fail on a wrong name now, not at the first step
    return WarmupSchedule(
        min(config.warmup_epochs * steps_per_epoch, total_steps), total_steps, config.schedule
    )


def build_scheduler(
    optimizer: Optimizer, config: OptimizerConfig, steps_per_epoch: int, total_steps: int
) -> LambdaLR:
    """A per-optimiser-step ``LambdaLR`` with ``config.warmup_epochs`` of linear warm-up.

    Building one sets the optimiser's learning rate to the first step's, so a resumed
    run loads the scheduler's state instead of building another.
    """
    return LambdaLR(optimizer, warmup_schedule(config, steps_per_epoch, total_steps))
