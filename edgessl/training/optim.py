"""Optimisers by name, built from a method's :class:`OptimizerConfig`, and gradient clipping.

``OPTIMIZERS`` maps ``sgd``, ``adam``, ``adamw`` and ``lars`` to builders; the trainer asks
for ``build_optimizer`` and never branches on a name. What changes per step (learning-rate
and weight-decay schedules) is :mod:`.schedules`'.

Learning rates follow the papers' scaling rules: ``OptimizerConfig.lr`` is the rate for
``reference_batch_size`` and the rate used is ``lr * batch_size / reference_batch_size``
(SimCLR: 0.3 x B/256 with LARS; BYOL: 0.2 x B/256; MoCo v2: 0.03 for 256), or with
``lr_scaling="sqrt"`` ``lr * sqrt(batch_size / reference_batch_size)`` (SimCLR appendix B.1).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer

from edgessl.errors import ConfigError
from edgessl.methods.base import Method, OptimizerConfig, ParamGroup, is_bias_or_norm
from edgessl.registry import Registry

OptimizerBuilder = Callable[[list[dict[str, Any]], OptimizerConfig, float], Optimizer]
OPTIMIZERS: Registry[OptimizerBuilder] = Registry("optimizer")


LR_SCALING: Registry[Callable[[float], float]] = Registry("learning-rate scaling")
LR_SCALING.register("linear")(lambda ratio: ratio)  # Goyal et al. 2017, as SimCLR, BYOL and MoCo
LR_SCALING.register("sqrt")(math.sqrt)  # SimCLR appendix B.1: 0.075 x sqrt(B) for small batches


def scaled_lr(config: OptimizerConfig, batch_size: int) -> float:
    """``config.lr`` moved from the reference batch size to ``batch_size`` by ``config.lr_scaling``."""
    return config.lr * LR_SCALING.get(config.lr_scaling)(batch_size / config.reference_batch_size)


class LARS(Optimizer):
    """Layer-wise Adaptive Rate Scaling (You et al. 2017) with SGD momentum, as SimCLR and BYOL use it.

    For every parameter tensor of a group with ``lars=True``: ``g <- g + wd * w``, then
    ``g <- g * eta * ||w|| / ||g||`` (when both norms are positive), then heavy-ball
    momentum ``v <- m * v + g``, ``w <- w - lr * v``. Groups with ``lars=False`` (biases
    and normalisation parameters, with ``exclude_bias_and_norm``) get neither weight decay
    nor the trust ratio, which is what the SimCLR and BYOL papers specify.

    Why not ``timm.optim.Lars``: timm follows the LARS paper's ratio
    ``eta * ||w|| / (||g|| + wd * ||w||)``, while SimCLR's and BYOL's released code (the
    methods edgessl reproduces) use ``eta * ||w|| / ||g + wd * w||``; the two differ
    whenever weight decay is on, so parity with those implementations needs this one.
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
                f"invalid LARS hyper-parameters lr={lr} momentum={momentum} wd={weight_decay} "
                f"eta={trust_coefficient}"
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


def torch_param_groups(model: nn.Module, config: OptimizerConfig, lr: float) -> list[dict[str, Any]]:
    """The method's :class:`ParamGroup` s as torch groups at their own lr and weight decay.

    With ``exclude_bias_and_norm`` each group is split in two: its weights (decayed, and
    adapted by LARS) and its biases and norm parameters (neither). ``decayed`` marks the
    groups a weight-decay schedule scales.
    """
    declared = model.param_groups() if isinstance(model, Method) else [ParamGroup(trainable(model))]
    groups = []
    for group in declared:
        decay = config.weight_decay if group.weight_decay is None else group.weight_decay
        params = [p for p in group.params if p.requires_grad]
        split = config.exclude_bias_and_norm
        plain = [p for p in params if split and is_bias_or_norm(p)]
        adapted = [p for p in params if not (split and is_bias_or_norm(p))]
        base = {"lr": lr * group.lr_scale}
        groups.append({**base, "params": adapted, "weight_decay": decay, "lars": True, "decayed": True})
        if plain:
            groups.append({**base, "params": plain, "weight_decay": 0.0, "lars": False, "decayed": False})
    return [group for group in groups if group["params"]]


def trainable(model: nn.Module) -> list[torch.Tensor]:
    """Momentum targets have ``requires_grad=False`` and must stay out of the optimiser."""
    return [p for p in model.parameters() if p.requires_grad]


@OPTIMIZERS.register("sgd")
def _sgd(groups: list[dict[str, Any]], config: OptimizerConfig, lr: float) -> Optimizer:
    return torch.optim.SGD(groups, lr=lr, momentum=config.momentum, **config.kwargs)


@OPTIMIZERS.register("adam")
def _adam(groups: list[dict[str, Any]], config: OptimizerConfig, lr: float) -> Optimizer:
    return torch.optim.Adam(groups, lr=lr, **config.kwargs)


@OPTIMIZERS.register("adamw")
def _adamw(groups: list[dict[str, Any]], config: OptimizerConfig, lr: float) -> Optimizer:
    return torch.optim.AdamW(groups, lr=lr, **config.kwargs)


@OPTIMIZERS.register("lars")
def _lars(groups: list[dict[str, Any]], config: OptimizerConfig, lr: float) -> Optimizer:
    return LARS(groups, lr=lr, momentum=config.momentum, **config.kwargs)


def build_optimizer(model: nn.Module, config: OptimizerConfig, batch_size: int) -> Optimizer:
    """The method's optimiser over its parameter groups, at the linearly scaled learning rate for
    ``batch_size``."""
    lr = scaled_lr(config, batch_size)
    builder = OPTIMIZERS.get(config.name)
    try:
        return builder(torch_param_groups(model, config, lr), config, lr)
    # an argument it does not take, or a bad value (betas=[0.5])
    except (TypeError, ValueError, IndexError) as exc:
        raise ConfigError(f"optimizer.kwargs {config.kwargs} do not fit {config.name}: {exc}") from None


Clipper = Callable[[list[torch.Tensor], float], None]
CLIP_SCOPES: Registry[Clipper] = Registry("gradient-clipping scope")


@CLIP_SCOPES.register("total")
def _clip_total(params: list[torch.Tensor], max_norm: float) -> None:
    """The norm of all gradients together, at most ``max_norm`` (torch's ``clip_grad_norm_``)."""
    torch.nn.utils.clip_grad_norm_(params, max_norm)


@CLIP_SCOPES.register("parameter")
def _clip_each(params: list[torch.Tensor], max_norm: float) -> None:
    """Each tensor's gradient norm at most ``max_norm`` on its own: DINO's ``utils.clip_gradients``
    (facebookresearch/dino), which scales a gradient by ``max_norm / (norm + 1e-6)`` when that is below 1."""
    for param in params:
        if param.grad is not None:
            scale = max_norm / (param.grad.detach().norm() + 1e-6)
            param.grad.mul_(scale.clamp(max=1.0))


def clip_gradients(optimizer: Optimizer, config: OptimizerConfig) -> None:
    """Clip the (unscaled) gradients of ``optimizer``'s parameters as ``config`` says; nothing when
    ``clip_grad_norm`` is None. Under fp16 the caller unscales first (``accelerator.unscale_gradients``)."""
    if config.clip_grad_norm is None:
        return
    params = [p for group in optimizer.param_groups for p in group["params"]]
    CLIP_SCOPES.get(config.clip_grad_scope)(params, config.clip_grad_norm)


def check_clipping(config: OptimizerConfig) -> None:
    """A wrong scope or a non-positive norm fails when the step is built, not at the first step."""
    CLIP_SCOPES.get(config.clip_grad_scope)
    if config.clip_grad_norm is not None and not config.clip_grad_norm > 0:
        raise ConfigError(
            f"optimizer.clip_grad_norm must be positive or null (off), got {config.clip_grad_norm}"
        )
