"""DINO (Caron et al. 2021, "Emerging Properties in Self-Supervised Vision Transformers"), on CNNs.

Self-distillation without labels: a student network (encoder + DINO head) is trained to
match, on every view of an image, the output distribution a teacher network gives on the
*other* global views. The teacher has the student's architecture, starts as its copy, gets
no gradients and follows it by an EMA (tau 0.996 -> 1, cosine). Collapse is avoided by
centring (a running mean of the teacher's outputs is subtracted) and sharpening (a low
teacher temperature), with no predictor, negatives or batch-wise standardisation.

Views are multi-crop (:mod:`edgessl.augment.multicrop`): two global crops at the training
resolution, which both networks see, and local crops at 96/224 of it, which only the
student sees. The student runs one encoder pass per resolution (DINO's ``MultiCropWrapper``:
the global crops together, then the local crops together) and its head on all of them.
The teacher's forward runs in train mode, so its BatchNorm layers normalise with its own
batch statistics and keep their own running statistics: only parameters are EMA'd
(``momentum_copies_buffers = False``), as ``main_dino.py``. Evaluation uses the teacher's
encoder, as DINO's ``eval_knn.py`` / ``eval_linear.py`` (``--checkpoint_key teacher``).

The defaults are the ResNet-50 run of the DINO README (SGD, lr 0.03 x B/256, weight decay
1e-4, crop scales (0.14, 1) / (0.05, 0.14)); everything it does not set is a
``main_dino.py`` argument default. Both are cited field by field.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from edgessl import distributed
from edgessl.augment import MultiCrop, dino_multicrop, local_crop_side
from edgessl.backbones import Encoder
from edgessl.backbones.base import smallest_side
from edgessl.config import Fraction, NonNegativeInt, PositiveFloat, PositiveFraction, PositiveInt
from edgessl.errors import ConfigError
from edgessl.methods import METHODS
from edgessl.methods.base import (
    RGB,
    Method,
    MethodConfig,
    OptimizerConfig,
    StepOutput,
    cosine_momentum,
    momentum_target,
)
from edgessl.methods.heads import DINOHead
from edgessl.methods.losses import dino_loss, dino_teacher_probabilities
from edgessl.methods.recipes import PAPER, PAPER_RECIPE, SHORT, SHORT_REGIME, Recipe

GLOBAL_CROPS = 2  # main_dino.py: the teacher sees the 2 global views only (teacher(images[:2]))
DINO_LR = 0.03  # the DINO README's ResNet-50 run: --lr 0.03 (for batch 256, linearly scaled)
DINO_MIN_LR = 1e-6  # main_dino.py --min_lr: the cosine ends at 1e-6 (an absolute rate)


def _dino_optimizer() -> OptimizerConfig:
    # The DINO README's ResNet-50 command: --optimizer sgd --lr 0.03 --weight_decay 1e-4
    # --weight_decay_end 1e-4; main_dino.py: SGD momentum 0.9, lr x B/256, 10 linear warm-up
    # epochs, then cosine to --min_lr 1e-6.
    return OptimizerConfig(
        name="sgd",
        lr=DINO_LR,
        reference_batch_size=256,  # main_dino.py: lr * batch / 256 ("linear scaling rule")
        weight_decay=1e-4,  # DINO README ResNet-50: --weight_decay 1e-4
        momentum=0.9,  # main_dino.py: torch.optim.SGD(params_groups, lr=0, momentum=0.9)
        warmup_epochs=10,  # main_dino.py --warmup_epochs 10
        schedule="cosine",  # main_dino.py: utils.cosine_scheduler
        # main_dino.py --min_lr 1e-6 is absolute; here a fraction of the peak, exact at batch 256
        # (at batch B DINO's fraction is 1e-6 / (0.03 B/256): both are ~0 next to the peak).
        final_lr_scale=DINO_MIN_LR / DINO_LR,
        # utils.get_params_groups: biases and 1-D (norm) parameters get no weight decay.
        exclude_bias_and_norm=True,
        # DINO README ResNet-50: --weight_decay_end 1e-4 = --weight_decay, i.e. constant (no schedule).
        weight_decay_end=None,
        clip_grad_norm=3.0,  # main_dino.py --clip_grad 3.0
        clip_grad_scope="parameter",  # utils.clip_gradients: each parameter's gradient norm on its own
    )


@dataclass
class DINOConfig(MethodConfig):
    # main_dino.py trains at --batch_size_per_gpu 64 on the README's 8 GPUs (512); the lr is given for
    # 256 and scaled linearly, and 256 fits one edge-class GPU at 96x96, as the study's other methods.
    batch_size: PositiveInt = 256
    optimizer: OptimizerConfig = field(default_factory=_dino_optimizer)
    # Head (vision_transformer.py DINOHead, as main_dino.py builds it): 3-layer MLP with GELU,
    # l2-normalised bottleneck, weight-normalised last layer without bias.
    hidden_dim: PositiveInt = 2048  # DINOHead hidden_dim=2048
    bottleneck_dim: PositiveInt = 256  # DINOHead bottleneck_dim=256
    out_dim: PositiveInt = 65536  # main_dino.py --out_dim 65536
    use_bn_in_head: bool = False  # main_dino.py --use_bn_in_head False
    norm_last_layer: bool = True  # main_dino.py --norm_last_layer True (weight_g fixed to 1)
    # main_dino.py --freeze_last_layer 1: no last-layer update in epoch 0
    freeze_last_layer: NonNegativeInt = 1
    momentum_teacher: Fraction = 0.996  # main_dino.py --momentum_teacher 0.996, cosine to 1
    # Temperatures (main_dino.py DINOLoss): the teacher's is warmed up linearly per epoch, then constant.
    student_temp: PositiveFloat = 0.1  # DINOLoss student_temp=0.1
    teacher_temp: PositiveFloat = 0.04  # main_dino.py --teacher_temp 0.04
    warmup_teacher_temp: PositiveFloat = 0.04  # main_dino.py --warmup_teacher_temp 0.04
    warmup_teacher_temp_epochs: NonNegativeInt = 0  # main_dino.py --warmup_teacher_temp_epochs 0
    center_momentum: Fraction = 0.9  # DINOLoss center_momentum=0.9
    # Multi-crop (main_dino.py DataAugmentationDINO).
    local_crops_number: NonNegativeInt = 8  # main_dino.py --local_crops_number 8
    # DINO README ResNet-50: --global_crops_scale 0.14 1 --local_crops_scale 0.05 0.14
    global_crops_scale: tuple[PositiveFraction, PositiveFraction] = (0.14, 1.0)
    local_crops_scale: tuple[PositiveFraction, PositiveFraction] = (0.05, 0.14)
    # None: the data's image size for global crops, and DINO's 96/224 of it for local crops (96 px at
    # 224), raised to the smallest side the encoder accepts (SqueezeNet's unpadded pools need 17 px).
    global_crop_size: PositiveInt | None = None
    local_crop_size: PositiveInt | None = None
    # DataAugmentationDINO: GaussianBlur(1.0) / GaussianBlur(0.1), Solarization(0.2) on the second global
    # crop only
    global_blur_p: tuple[Fraction, Fraction] = (1.0, 0.1)
    global_solarize_p: tuple[Fraction, Fraction] = (0.0, 0.2)
    local_blur_p: Fraction = 0.5  # DataAugmentationDINO: GaussianBlur(p=0.5) on the local crops
    # main_dino.py converts the BatchNorm layers of the student and of the teacher to SyncBatchNorm.
    sync_batchnorm: bool = True


def teacher_temperature(epoch: int, warmup_temp: float, temp: float, warmup_epochs: int) -> float:
    """DINO's teacher temperature in ``epoch`` (0-based): ``np.linspace(warmup_temp, temp, warmup_epochs)``
    over the first ``warmup_epochs`` epochs, then ``temp`` (main_dino.py ``DINOLoss.teacher_temp_schedule``).

    A high temperature early makes training unstable (the released code's comment), hence the warm-up.
    """
    if epoch >= warmup_epochs:
        return temp
    if warmup_epochs == 1:  # np.linspace(a, b, 1) is [a]
        return warmup_temp
    if epoch == warmup_epochs - 1:  # np.linspace ends exactly on its stop value
        return temp
    step = (temp - warmup_temp) / (warmup_epochs - 1)
    return warmup_temp + epoch * step


@torch.no_grad()
def update_center(center: torch.Tensor, teacher: torch.Tensor, momentum: float) -> None:
    """``center <- m * center + (1 - m) * mean(teacher outputs)``, in place (DINO section 3.1, eq. 4;
    main_dino.py ``update_center``).

    The mean is over the global batch: each process's mean, averaged over processes (equal shards),
    is DINO's all-reduced sum divided by the global count.
    """
    batch_mean = distributed.mean_reduce(teacher.detach().to(center.dtype).mean(dim=0, keepdim=True))
    center.mul_(momentum).add_(batch_mean, alpha=1.0 - momentum)


def resolution_runs(crops: Sequence[torch.Tensor]) -> list[tuple[int, int]]:
    """``(start, end)`` of each run of consecutive crops with the same side (DINO's ``MultiCropWrapper``)."""
    runs: list[tuple[int, int]] = []
    for index, crop in enumerate(crops):
        if runs and crops[runs[-1][0]].shape[-2:] == crop.shape[-2:]:
            runs[-1] = (runs[-1][0], index + 1)
        else:
            runs.append((index, index + 1))
    return runs


def crop_sizes(config: DINOConfig, image_size: int, encoder: Encoder) -> tuple[int, int]:
    """Global and local crop sides: the configured ones, or the image size and DINO's 96/224 of it.

    The 96/224 local side is raised to the smallest the encoder accepts (SqueezeNet at 32 px:
    17 rather than 14); a configured side the encoder cannot take is an error.
    """
    global_size = config.global_crop_size or image_size
    if config.local_crop_size is not None:
        local = config.local_crop_size
        if smallest_side(encoder, local, local) is None:
            raise ConfigError(
                f"local_crop_size {local} px is too small for this backbone; choose a larger one"
            )
        return global_size, local
    local = smallest_side(encoder, local_crop_side(global_size), global_size)
    if local is None:
        raise ConfigError(f"the backbone does not accept {global_size} px crops; use a larger image size")
    return global_size, local


def _check(config: DINOConfig) -> None:
    problems = []
    if not (config.student_temp > 0 and config.teacher_temp > 0 and config.warmup_teacher_temp > 0):
        problems.append("temperatures must be positive")
    if not 0 <= config.center_momentum < 1:
        problems.append(f"center_momentum must be in [0, 1), got {config.center_momentum}")
    if config.warmup_teacher_temp_epochs < 0 or config.freeze_last_layer < 0:
        problems.append("warmup_teacher_temp_epochs and freeze_last_layer must be >= 0")
    if problems:
        raise ConfigError("DINO: " + "; ".join(problems))


@METHODS.register("dino")
class DINO(Method):
    """Student encoder + DINO head, EMA teacher of both; cross-view distillation on multi-crop views."""

    name = "dino"
    Config = DINOConfig
    representation_source: ClassVar[dict[str, str]] = {
        "preprocess": "normalize",
        "encoder": "teacher_encoder",
    }
    momentum_copies_buffers: ClassVar[bool] = False  # main_dino.py EMAs parameters only
    recipes: ClassVar[dict[str, Recipe]] = {
        PAPER: PAPER_RECIPE,
        SHORT: Recipe(
            SHORT_REGIME,
            {
                "momentum_teacher": 0.9995,
                "teacher_temp": 0.07,
                "out_dim": 4096,
                "local_crops_number": 0,
                "global_crops_scale": (0.08, 1.0),
                "global_blur_p": (0.0, 0.0),
                "optimizer": {
                    "name": "lars",
                    "lr": 0.3,
                    "weight_decay": 1e-6,
                    "final_lr_scale": 0.0,
                    "clip_grad_norm": None,
                },
            },
            (
                (
                    "tau 0.9995, 4096 prototypes (out_dim), LARS lr 0.3 x B/256, weight decay 1e-6, "
                    "batch 256: "
                    "solo-learn's CIFAR DINO script (scripts/pretrain/cifar/dino.yaml; projector 2048 -> 256 "
                    "as the paper); its LARS clips the trust ratio (eta 0.02, clip_lr), which edgessl's "
                    "LARS does not, "
                    "so the usual eta 1e-3 is kept, as the Barlow Twins and VICReg short recipes"
                ),
                (
                    "teacher temperature 0.07 without warm-up, gradient clipping off, cosine to 0: "
                    "the defaults of "
                    "solo-learn's solo/methods/dino.py (teacher_temperature 0.07, clip_grad 0) and scheduler "
                    "(min_lr 0.0), which its CIFAR script keeps"
                ),
                (
                    "two 32 px crops of scale (0.08, 1), no local crops, no blur, solarisation 0 / 0.2: "
                    "solo-learn's "
                    "CIFAR DINO augmentations (scripts/pretrain/cifar/augmentations/asymmetric.yaml)"
                ),
            ),
        ),
    }

    def __init__(self, backbone: str, config: DINOConfig, image_size: int, mean: RGB, std: RGB) -> None:
        super().__init__(backbone, config, image_size, mean, std)
        _check(config)
        self.encoder = self.build_encoder(backbone)
        self.head = DINOHead(
            self.encoder.feature_dim,
            config.hidden_dim,
            config.bottleneck_dim,
            config.out_dim,
            batch_norm=config.use_bn_in_head,
            norm_last_layer=config.norm_last_layer,
        )
        # main_dino.py: the teacher starts with the student's weights and gets no gradients.
        self.teacher_encoder = momentum_target(self.encoder)
        self.teacher_head = momentum_target(self.head)
        self.register_buffer("center", torch.zeros(1, config.out_dim))  # DINOLoss.center: saved, resumed
        global_size, local_size = crop_sizes(config, image_size, self.encoder)
        self.augment: MultiCrop = dino_multicrop(
            global_size,
            local_size,
            local_crops=config.local_crops_number,
            global_scale=config.global_crops_scale,
            local_scale=config.local_crops_scale,
            global_blur_p=config.global_blur_p,
            global_solarize_p=config.global_solarize_p,
            local_blur_p=config.local_blur_p,
        )

    def make_views(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.augment(images))

    def teacher_temperature(self) -> float:
        c = self.config
        return teacher_temperature(
            self.progress.epoch, c.warmup_teacher_temp, c.teacher_temp, c.warmup_teacher_temp_epochs
        )

    def _student(self, crops: Sequence[torch.Tensor]) -> torch.Tensor:
        """Head outputs of every crop: one encoder pass per resolution, then the head on all
        (MultiCropWrapper)."""
        features = [self.encoder(self.normalize(torch.cat(crops[a:b]))) for a, b in resolution_runs(crops)]
        return self.head(torch.cat(features))

    @torch.no_grad()
    def _teacher(self, global_crops: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.teacher_head(self.teacher_encoder(self.normalize(torch.cat(list(global_crops)))))

    def loss(self, views: tuple[torch.Tensor, ...]) -> StepOutput:
        teacher = self._teacher(views[:GLOBAL_CROPS])
        student = self._student(views)
        temperature = self.teacher_temperature()
        loss = dino_loss(student, teacher, self.center, self.config.student_temp, temperature, GLOBAL_CROPS)
        # collapse to one dimension drives this to 0, to uniform outputs to log(out_dim)
        with torch.no_grad():
            targets = dino_teacher_probabilities(teacher, self.center, temperature)
            entropy = -(targets * targets.clamp_min(1e-30).log()).sum(-1).mean()
        update_center(self.center, teacher, self.config.center_momentum)  # after the loss, as DINOLoss
        device = loss.device
        return StepOutput(
            loss,
            {
                "teacher_entropy": entropy,
                "teacher_temp": torch.tensor(temperature, device=device),
                "tau": torch.tensor(self.last_momentum, device=device),
            },
        )

    def before_optimizer_step(self) -> None:
        """utils.cancel_gradients_last_layer: no last-layer update in the first ``freeze_last_layer``
        epochs."""
        if self.progress.epoch < self.config.freeze_last_layer:
            for param in self.head.last_layer.parameters():
                param.grad = None

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.encoder, self.teacher_encoder), (self.head, self.teacher_head)]

    def momentum(self, progress: float) -> float:
        return cosine_momentum(self.config.momentum_teacher, progress)  # main_dino.py momentum_schedule
