"""Barlow Twins (Zbontar, Jing, Misra, LeCun & Deny 2021, "Barlow Twins: Self-Supervised Learning
via Redundancy Reduction").

One encoder and a 3-layer projector embed two views (BYOL's asymmetric augmentation);
the loss pulls the cross-correlation matrix of the two batch-standardised embeddings
towards the identity: equal on the diagonal (invariance), zero off it (redundancy
reduction). No negatives, no momentum target, no predictor, no stop-gradient. Biases and
BN parameters learn at 0.024 times the weights' rate (0.0048 against 0.2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch

from edgessl.config import NonNegativeFloat, PositiveInt
from edgessl.methods import METHODS
from edgessl.methods.base import (
    RGB,
    MethodConfig,
    OptimizerConfig,
    ParamGroup,
    is_bias_or_norm,
    lars_optimizer,
)
from edgessl.methods.losses import BarlowTwinsLoss
from edgessl.methods.recipes import PAPER, PAPER_RECIPE, SHORT, Recipe
from edgessl.methods.redundancy import RedundancyReductionMethod, redundancy_head, solo_learn_short_recipe


def _barlow_twins_optimizer() -> OptimizerConfig:
    # Barlow Twins section 2 ("Optimization"), which follows BYOL: LARS, lr 0.2 x BatchSize/256
    # for the weights, 10 warm-up epochs, then cosine decay (to 1/1000 in the paper; to 0 here);
    # biases and BN excluded from LARS and decay.
    return lars_optimizer(
        lr=0.2,
        weight_decay=1.5e-6,  # Barlow Twins section 2 (the released main.py defaults to 1e-6)
        final_lr_scale=1e-3,  # Barlow Twins section 2: cosine decay "by a factor of 1000"
    )


@dataclass
class BarlowTwinsConfig(MethodConfig):
    # Barlow Twins trains at 2048 (section 2) and stays close to that down to 256 (section 4,
    # figure 2), unlike SimCLR; 256 fits one edge-class GPU at 96x96, as the study's other methods.
    batch_size: PositiveInt = 256
    optimizer: OptimizerConfig = field(default_factory=_barlow_twins_optimizer)
    # Barlow Twins section 2: biases and BN parameters at lr 0.0048 (x BatchSize/256), the weights at 0.2.
    bias_lr_scale: NonNegativeFloat = 0.024  # = 0.0048 / 0.2, so --lr moves both rates together
    # Barlow Twins section 2: lambda = 5e-3 from their search (the released main.py uses 0.0051).
    off_diagonal_weight: NonNegativeFloat = 5e-3
    # Barlow Twins section 2 ("Architecture"): 3 linear layers of 8192, BN + ReLU after the first two.
    hidden_dim: PositiveInt = 8192
    out_dim: PositiveInt = 8192
    # The released main.py converts the whole model to SyncBatchNorm: BN over the global batch.
    sync_batchnorm: bool = True


@METHODS.register("barlowtwins")
class BarlowTwins(RedundancyReductionMethod):
    """Encoder + 3-layer projector; cross-correlation loss on BYOL's two views; the encoder is the
    representation."""

    name = "barlowtwins"
    Config = BarlowTwinsConfig
    recipes: ClassVar[dict[str, Recipe]] = {
        PAPER: PAPER_RECIPE,
        SHORT: solo_learn_short_recipe("Barlow Twins", "projector"),
    }

    def __init__(
        self, backbone: str, config: BarlowTwinsConfig, image_size: int, mean: RGB, std: RGB
    ) -> None:
        super().__init__(backbone, config, image_size, mean, std)  # Barlow Twins section 2: BYOL's views
        # The released code: no bias in any projector Linear (BN follows, or the loss standardises).
        self.projector = redundancy_head(self.encoder.feature_dim, config.hidden_dim, config.out_dim)
        self.criterion = BarlowTwinsLoss(config.off_diagonal_weight)

    def embed(self, view: torch.Tensor) -> torch.Tensor:
        return self.projector(self.features(view))

    def param_groups(self) -> list[ParamGroup]:
        trainable = [p for p in self.parameters() if p.requires_grad]
        return [
            ParamGroup([p for p in trainable if not is_bias_or_norm(p)]),
            ParamGroup([p for p in trainable if is_bias_or_norm(p)], lr_scale=self.config.bias_lr_scale),
        ]
