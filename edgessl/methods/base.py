"""The contract between a self-supervised method and the trainer.

A method is a small ``nn.Module``: how views are made from a uint8 batch, the loss on
those views, which modules follow others by momentum, which are frozen (a teacher it
distils from), and which module is the learned representation. It knows nothing about
devices, loops or checkpoints; the trainer knows no method by name.

What the trainer does for every method, in this order each step: sets :attr:`Method.progress`,
runs ``forward`` (views, then loss) and backward, clips gradients (``OptimizerConfig.clip_grad_norm``),
calls :meth:`Method.before_optimizer_step`, steps the optimiser, then
:meth:`Method.after_optimizer_step` (momentum targets). Frozen modules (:attr:`Method.frozen`)
stay in eval mode with no gradients, outside the optimiser, SyncBatchNorm, the disk estimate
and the checkpoint; their provenance (:meth:`Method.frozen_provenance`) goes into the
checkpoint's metadata instead, so a resume can refuse a teacher that changed.
"""

from __future__ import annotations

import copy
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

import torch
from torch import nn

from edgessl import distributed
from edgessl.backbones import Encoder, build_backbone
from edgessl.backbones.base import Normalize, Representation
from edgessl.config import Fraction, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt
from edgessl.methods.recipes import PAPER, PAPER_RECIPE, Recipe

RGB = tuple[float, float, float]


@dataclass
class OptimizerConfig:
    """Optimiser and schedule; every method overrides the defaults with its paper's."""

    name: str = "adam"  # one of edgessl.training.optim.OPTIMIZERS
    lr: PositiveFloat = 1e-3  # for the method's reference batch size, scaled with it by ``lr_scaling``
    reference_batch_size: PositiveInt = 256
    # "linear": lr x B / reference (Goyal et al. 2017); "sqrt": lr x sqrt(B / reference)
    # (SimCLR appendix B.1, for small batches and short schedules)
    lr_scaling: str = "linear"
    weight_decay: NonNegativeFloat = 0.0
    momentum: Fraction = 0.9  # SGD / LARS only
    warmup_epochs: NonNegativeInt = 0
    # one of edgessl.training.schedules.SCHEDULES ("cosine", "step", "constant"), after warmup
    schedule: str = "cosine"
    final_lr_scale: Fraction = 0.0  # the schedule ends at this fraction of the peak rate (Barlow Twins: 1e-3)
    # Biases and normalisation parameters (the 1-D ones) get no weight decay and no LARS
    # trust ratio, as SimCLR and BYOL specify.
    exclude_bias_and_norm: bool = False
    # cosine schedule of weight decay to this value (DINO); None: constant
    weight_decay_end: NonNegativeFloat | None = None
    # Gradient clipping before each optimiser step: None is off. "total" scope clips the norm of all
    # gradients together (torch's clip_grad_norm_); "parameter" clips each tensor's own (DINO's
    # utils.clip_gradients).
    clip_grad_norm: PositiveFloat | None = None
    clip_grad_scope: str = "total"
    kwargs: dict[str, Any] = field(default_factory=dict)  # further optimiser arguments, e.g. Adam betas


def lars_optimizer(*, lr: float, weight_decay: float, final_lr_scale: float = 0.0) -> OptimizerConfig:
    """LARS as BYOL set it up and SimCLR, Barlow Twins and VICReg kept it: lr for batch 256, scaled
    linearly; momentum 0.9; 10 warm-up epochs, then cosine decay; biases and normalisation parameters
    out of the trust ratio and the weight decay.

    What the papers differ in (the rate, the decay, where the cosine ends) are the arguments, cited
    where each method calls it.
    """
    return OptimizerConfig(
        name="lars",
        lr=lr,
        reference_batch_size=256,
        weight_decay=weight_decay,
        momentum=0.9,
        warmup_epochs=10,
        schedule="cosine",
        final_lr_scale=final_lr_scale,
        exclude_bias_and_norm=True,
    )


@dataclass
class MethodConfig:
    """Hyper-parameters shared by all methods; subclasses add their own fields."""

    batch_size: PositiveInt = 256
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    # Under several processes, BatchNorm over the global batch (SyncBatchNorm) rather than each
    # process's shard; on where the method's paper normalises globally. No effect in one process.
    sync_batchnorm: bool = False


@dataclass
class ParamGroup:
    """Parameters that share optimisation settings; a method declares its groups in
    :meth:`Method.param_groups`."""

    params: list[nn.Parameter]
    lr_scale: float = 1.0  # multiplies the run's (scaled) learning rate, e.g. Barlow Twins' biases
    weight_decay: NonNegativeFloat = None  # None: the optimiser config's


def is_bias_or_norm(param: torch.Tensor) -> bool:
    """Biases and normalisation scales/shifts are the 1-D parameters (what SimCLR, BYOL and Barlow Twins
    exclude)."""
    return param.ndim <= 1


class TrainingProgress(NamedTuple):
    """Where training is when a step runs: what schedules inside a method (DINO's teacher temperature,
    its frozen last layer in the first epoch) are functions of."""

    step: int  # 0-based index of the optimiser step being taken
    steps_per_epoch: int
    total_steps: int

    @property
    def epoch(self) -> int:
        """0-based epoch of this step."""
        return self.step // self.steps_per_epoch


class StepOutput(NamedTuple):
    """What one forward pass of a method gives the trainer: the loss and the method's own diagnostics."""

    loss: torch.Tensor
    metrics: dict[str, torch.Tensor]


class Method(nn.Module, ABC):
    """Base class of self-supervised methods; see the module docstring for the contract.

    ``forward(images)`` returns the loss (and diagnostics) so that distributed wrappers
    (DDP through accelerate) see every parameter used in the step.
    """

    name: ClassVar[str]
    Config: ClassVar[type[MethodConfig]] = MethodConfig
    # Named hyper-parameter sets over the Config defaults (:mod:`edgessl.methods.recipes`).
    recipes: ClassVar[dict[str, Recipe]] = {PAPER: PAPER_RECIPE}
    # Attribute names of frozen submodules (a teacher): see the module docstring.
    frozen: ClassVar[tuple[str, ...]] = ()
    # Which attributes make the learned representation: Representation part -> attribute of the method.
    # Evaluation and export build only these (:meth:`build_representation`) and load their weights by name.
    representation_source: ClassVar[Mapping[str, str]] = {"preprocess": "normalize", "encoder": "encoder"}
    # Whether momentum targets copy the online BatchNorm statistics (BYOL, MoCo) or keep their own (DINO).
    momentum_copies_buffers: ClassVar[bool] = True

    def __init__(self, backbone: str, config: MethodConfig, image_size: int, mean: RGB, std: RGB) -> None:
        super().__init__()
        self.backbone_name = backbone
        self.config = config
        self.image_size = image_size
        self.normalize = Normalize(mean, std)
        self.last_momentum = self.momentum(0.0)
        self.progress = TrainingProgress(0, 1, 1)  # set by the trainer before every step

    @classmethod
    def build_representation(
        cls, backbone: str, config: MethodConfig, image_size: int, mean: RGB, std: RGB
    ) -> Representation:
        """An untrained representation of this method, built alone (no pretext heads, no teacher), whose
        state-dict names :meth:`representation_weight_names` maps to the method's own."""
        encoder = cls.build_encoder(backbone)
        return Representation(Normalize(mean, std), encoder, encoder.feature_dim)

    @classmethod
    def representation_weight_names(cls, names: list[str]) -> dict[str, str]:
        """Representation state-dict name -> the method's state-dict name, for ``names`` of the
        representation."""
        parts = sorted(cls.representation_source.items(), key=lambda item: -len(item[0]))
        mapped = {}
        for name in names:
            part, attribute = next((p, a) for p, a in parts if name.startswith(f"{p}."))
            mapped[name] = attribute + name[len(part) :]
        return mapped

    @staticmethod
    def build_encoder(backbone: str, in_channels: int = 3) -> Encoder:
        return build_backbone(backbone, in_channels)

    @abstractmethod
    def make_views(self, images: torch.Tensor) -> Any:
        """Batched augmentation of a uint8 (N, 3, H, W) batch on its device; no gradients."""

    @abstractmethod
    def loss(self, views: Any) -> torch.Tensor | StepOutput:
        """The scalar training loss on views made by :meth:`make_views`, alone or with diagnostics.

        Diagnostics (``StepOutput(loss, {"pos_neg_gap": ...})``) are detached scalars the
        trainer averages over the steps between log lines and logs beside the loss.
        """

    def representation(self) -> Representation:
        """The module whose features are evaluated and exported (shares weights with self)."""
        encoder = getattr(self, self.representation_source["encoder"])
        return Representation(
            getattr(self, self.representation_source["preprocess"]), encoder, encoder.feature_dim
        )

    # ----------------------------------------------------------------- frozen modules

    def frozen_modules(self) -> dict[str, nn.Module]:
        return {name: getattr(self, name) for name in self.frozen}

    def frozen_provenance(self) -> dict[str, Any]:
        """What each frozen module is and where it came from (its ``provenance`` attribute), for the
        checkpoint."""
        return {
            name: dict(getattr(module, "provenance", {})) for name, module in self.frozen_modules().items()
        }

    def _frozen_prefixes(self) -> tuple[str, ...]:
        return tuple(f"{name}." for name in self.frozen)

    def train(self, mode: bool = True) -> Method:
        """Train mode for everything but the frozen modules, which stay in eval mode (their BatchNorm never
        moves)."""
        super().train(mode)
        for module in self.frozen_modules().values():
            module.eval()
        return self

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The learned state only: frozen modules are rebuilt from their source, never stored."""
        state = super().state_dict(*args, **kwargs)
        if not self.frozen:
            return state
        prefix = kwargs.get("prefix", args[1] if len(args) > 1 else "")  # as the parent passes it when nested
        frozen = tuple(prefix + name for name in self._frozen_prefixes())
        for key in [key for key in state if key.startswith(frozen)]:
            del state[key]
        return state

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False):
        """Load the learned state; frozen modules keep their weights (strictness applies to the rest)."""
        result = super().load_state_dict(state_dict, strict=False, assign=assign)
        frozen = self._frozen_prefixes()
        missing = [key for key in result.missing_keys if not frozen or not key.startswith(frozen)]
        if strict and (missing or result.unexpected_keys):
            raise RuntimeError(
                f"state dict does not fit {type(self).__name__}: missing {missing[:3]}, unexpected "
                f"{result.unexpected_keys[:3]}"
            )
        return type(result)(missing, result.unexpected_keys)

    def forward(self, images: torch.Tensor) -> StepOutput:
        with torch.no_grad():
            views = self.make_views(images)
        return self.step_output(views)

    def step_output(self, views: Any) -> StepOutput:
        """:meth:`loss` as a :class:`StepOutput`, whether or not the method reports diagnostics."""
        out = self.loss(views)
        return out if isinstance(out, StepOutput) else StepOutput(out, {})

    def global_batchnorm_modules(self) -> list[nn.Module]:
        """The submodules whose BatchNorm layers ``sync_batchnorm`` makes global: all but the frozen ones by
        default.

        MoCo v2 names its query side only: its key encoder's per-process statistics are its shuffled BN.
        """
        return [module for name, module in self.named_children() if name not in self.frozen]

    def synchronize_batchnorm(self, device: torch.device | str) -> int:
        """Make the BatchNorm layers of :meth:`global_batchnorm_modules` global (for training on
        ``device``) when ``config.sync_batchnorm`` is on; returns how many
        (:func:`edgessl.distributed.convert_sync_batchnorm`).

        The trainer calls it under several processes, before DDP wraps the method (the layers
        keep their parameter tensors, and their state-dict names, so checkpoints load either way).
        """
        if not self.config.sync_batchnorm:
            return 0
        return sum(
            distributed.convert_sync_batchnorm(module, device) for module in self.global_batchnorm_modules()
        )

    def param_groups(self) -> list[ParamGroup]:
        """How the optimiser treats this method's parameters; one group of every trainable one by default."""
        return [ParamGroup(self.trainable_parameters())]

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters the optimiser steps: not momentum targets, not frozen modules."""
        frozen = {id(p) for module in self.frozen_modules().values() for p in module.parameters()}
        return [p for p in self.parameters() if p.requires_grad and id(p) not in frozen]

    def before_optimizer_step(self) -> None:
        """Called after backward and gradient clipping, before the optimiser steps (DINO cancels its last
        layer's gradients in the first epoch here); nothing by default."""

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """(online, target) pairs where target follows online by EMA; none by default."""
        return []

    def momentum(self, progress: float) -> float:
        """EMA coefficient at ``progress`` in [0, 1] of training (1.0 = target frozen)."""
        return 1.0

    @torch.no_grad()
    def after_optimizer_step(self, progress: float) -> None:
        """Move every momentum target towards its online module."""
        tau = self.momentum(progress)
        self.last_momentum = tau  # a diagnostic methods may report; not state (a function of progress)
        for online, target in self.momentum_pairs():
            for p_online, p_target in zip(online.parameters(), target.parameters(), strict=True):
                p_target.lerp_(p_online.detach(), 1.0 - tau)
            if self.momentum_copies_buffers:
                for b_online, b_target in zip(online.buffers(), target.buffers(), strict=True):
                    b_target.copy_(b_online)


def cosine_momentum(base: float, progress: float) -> float:
    """BYOL's schedule: tau = 1 - (1 - base) * (cos(pi * progress) + 1) / 2, from base to 1."""
    return 1.0 - (1.0 - base) * (math.cos(math.pi * progress) + 1.0) / 2.0


def momentum_target(online: nn.Module) -> nn.Module:
    """A target that follows ``online`` by EMA (BYOL's, MoCo's keys, DINO's teacher): an exact copy, never
    initialised on its own, that gets no gradients."""
    return copy.deepcopy(online).requires_grad_(False)
