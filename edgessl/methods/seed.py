"""SEED (Fang, Wang, Wang, Zhang, Yang & Liu 2021, "SEED: Self-supervised Distillation for Visual
Representation").

A small student learns from a larger, already self-supervised and frozen teacher. Both
embed the same augmented image; the student's L2-normalised embedding is scored against
the teacher's embedding of that image and a FIFO queue of the teacher's past embeddings,
and it learns to match the teacher's own softmax over those similarities (a soft
cross-entropy, SEED eq. 3-4). The teacher's distribution is sharp (temperature 1e-4 in the
released code) and the student's softer (0.2), so the student is pulled towards the
teacher's neighbourhood structure rather than one positive.

How edgessl differs from the released code (jacobswan1/SEED, ``seed/builder.py``):
- The teacher's embedding is its learned representation (what an edgessl run keeps, and
  what any backbone weights file holds), not a MoCo projection head; the student's MLP maps
  to the teacher's feature width.
- The queue is (K, D) as edgessl's MoCo v2, and any K works (the release asserts K % batch == 0).
- Under several processes the queue takes every process's teacher embeddings in rank
  order, as the release's ``concat_all_gather``, so it is the same on every process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch.nn import functional as F

from edgessl import distributed
from edgessl.augment import mocov2_view
from edgessl.config import PositiveFloat, PositiveInt
from edgessl.distributed import at_least_float32
from edgessl.errors import ConfigError
from edgessl.methods import METHODS
from edgessl.methods.base import RGB, Method, MethodConfig, OptimizerConfig, StepOutput
from edgessl.methods.heads import mlp_head
from edgessl.methods.mocov2 import enqueue, mocov2_optimizer
from edgessl.methods.recipes import PAPER, PAPER_RECIPE, SHORT, SHORT_REGIME, Recipe
from edgessl.methods.teacher import TeacherConfig, load_teacher


@dataclass
class SEEDConfig(MethodConfig):
    batch_size: PositiveInt = 256  # SEED section 4.1 / tools/opts.py: -b 256
    # SEED tools/opts.py and main.py: MoCo v2's optimiser (SGD lr 0.03 x B/256, momentum 0.9, weight decay
    # 1e-4, cosine via --cos) over 200 epochs; its 5 warm-up epochs rise from 0.03 to 0.03 x B/256, which is
    # flat at the reference batch 256.
    optimizer: OptimizerConfig = field(default_factory=mocov2_optimizer)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)  # --teacher, --teacher-weights
    temperature: PositiveFloat = 0.2  # SEED tools/opts.py --temp: the student's softmax temperature
    # SEED tools/opts.py --distill-t: the teacher's (distillation) temperature
    teacher_temperature: PositiveFloat = 1e-4
    queue_size: PositiveInt = 65536  # SEED tools/opts.py --queue: K = 65,536 teacher embeddings
    # SEED builder.py with --student_mlp (default True): Linear(d, d) -> ReLU -> Linear(d, teacher dim),
    # d the student's feature width; None keeps that width.
    hidden_dim: PositiveInt | None = None

    def __post_init__(self) -> None:
        for name in ("temperature", "teacher_temperature"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"seed {name} must be positive (got {getattr(self, name)})")
        if self.queue_size < 1:
            raise ConfigError(f"seed queue_size must be at least 1 (got {self.queue_size})")
        if self.hidden_dim is not None and self.hidden_dim < 1:
            raise ConfigError(f"seed hidden_dim must be positive or null (got {self.hidden_dim})")


def seed_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    queue: torch.Tensor,
    temperature: float,
    teacher_temperature: float,
) -> torch.Tensor:
    """SEED eq. 4: soft cross-entropy between the teacher's and the student's softmax over
    ``[teacher embedding of this image, queue]`` similarities, averaged over the batch.

    ``student`` (N, D) and ``teacher`` (N, D) are normalised here; ``queue`` (K, D) holds unit vectors.
    The teacher's similarity to its own embedding is 1, as in the release (``t_emb . t_emb``).
    """
    with torch.autocast(student.device.type, enabled=False):
        s, t = F.normalize(at_least_float32(student), dim=1), F.normalize(at_least_float32(teacher), dim=1)
        queue = at_least_float32(queue)
        student_logits = torch.cat([(s * t).sum(1, keepdim=True), s @ queue.T], dim=1) / temperature
        teacher_logits = torch.cat([(t * t).sum(1, keepdim=True), t @ queue.T], dim=1) / teacher_temperature
        targets = teacher_logits.softmax(dim=1)
        return -(targets * student_logits.log_softmax(dim=1)).sum(dim=1).mean()


@METHODS.register("seed")
class SEED(Method):
    """Student encoder + MLP by gradient; a frozen teacher; a queue of teacher embeddings; soft
    cross-entropy."""

    name = "seed"
    Config = SEEDConfig
    frozen = ("teacher",)
    recipes: ClassVar[dict[str, Recipe]] = {
        PAPER: PAPER_RECIPE,
        SHORT: Recipe(
            SHORT_REGIME,
            {"queue_size": 4096, "optimizer": {"lr": 0.1, "weight_decay": 5e-4}},
            (
                (
                    "queue 4,096: 65,536 teacher embeddings are many passes over a 5,000-50,000-image set, "
                    "so most of the queue would be stale copies of the batch's own images (MoCo's "
                    "reasoning, He et al. 2020)"
                ),
                (
                    "SGD lr 0.1, weight decay 5e-4: the CIFAR-scale SGD setting every method's parity run "
                    "uses, measured for SEED in benchmarks/results/distillation.md (SEED publishes only "
                    "ImageNet settings)"
                ),
            ),
        ),
    }

    def __init__(self, backbone: str, config: SEEDConfig, image_size: int, mean: RGB, std: RGB) -> None:
        super().__init__(backbone, config, image_size, mean, std)
        self.teacher = load_teacher(config.teacher, image_size, mean, std)
        self.encoder = self.build_encoder(backbone)
        width = self.encoder.feature_dim
        self.head = mlp_head(width, config.hidden_dim or width, self.teacher.feature_dim, batch_norm=False)
        self.augment = mocov2_view()  # SEED main.py: mocov2_aug for a MoCo v2 teacher with the student MLP
        # SEED builder.py: the queue starts as random unit vectors; a buffer, so a resume restores it.
        queue = F.normalize(torch.randn(config.queue_size, self.teacher.feature_dim), dim=1)
        self.register_buffer("queue", queue)
        self.register_buffer("queue_pointer", torch.zeros((), dtype=torch.long))

    def make_views(self, images: torch.Tensor) -> torch.Tensor:
        return self.augment(images, self.image_size)  # one view: student and teacher see the same image

    def loss(self, view: torch.Tensor) -> StepOutput:
        student = self.head(self.encoder(self.normalize(view)))
        with torch.no_grad():
            teacher = F.normalize(at_least_float32(self.teacher(view)), dim=1)
        config = self.config
        # a copy: the queue is written below, and the loss's backward needs the values it saw
        queue = self.queue.clone()
        loss = seed_loss(student, teacher, queue, config.temperature, config.teacher_temperature)
        with torch.no_grad():
            agreement = (F.normalize(at_least_float32(student), dim=1) * teacher).sum(1).mean()
            enqueue(self.queue, self.queue_pointer, distributed.gather(teacher))  # every process's embeddings
        return StepOutput(loss, {"student_teacher_cosine": agreement})
