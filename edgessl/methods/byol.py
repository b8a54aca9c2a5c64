"""BYOL (Grill et al. 2020, "Bootstrap Your Own Latent: A New Approach to Self-Supervised Learning").

An online network (encoder, projector, predictor) predicts the projection a target network
(encoder, projector) makes of the other view. The target starts as an exact copy of the
online encoder and projector, gets no gradients, and follows them by an EMA whose tau goes
from 0.996 to 1 on a cosine schedule. The loss is symmetric, its two terms summed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from edgessl.augment import byol_views
from edgessl.config import Fraction, PositiveInt
from edgessl.methods import METHODS
from edgessl.methods.base import (
    RGB,
    MethodConfig,
    OptimizerConfig,
    StepOutput,
    cosine_momentum,
    lars_optimizer,
    momentum_target,
)
from edgessl.methods.heads import mlp_head
from edgessl.methods.losses import normalized_regression_loss
from edgessl.methods.recipes import PAPER, PAPER_RECIPE, SHORT, SHORT_REGIME, Recipe
from edgessl.methods.two_view import TwoViewMethod


def _byol_optimizer() -> OptimizerConfig:
    # BYOL section 3.3 / appendix C: LARS, lr 0.2 x BatchSize/256, weight decay 1.5e-6, 10 warm-up
    # epochs, then cosine decay; appendix C.1: biases and BN parameters excluded from LARS and decay.
    return lars_optimizer(lr=0.2, weight_decay=1.5e-6)


@dataclass
class BYOLConfig(MethodConfig):
    # BYOL trains at 4096 (section 3.3) and shows it holds up at 256 (section 5, figure 3a);
    # 256 fits one edge-class GPU at 96x96.
    batch_size: PositiveInt = 256
    optimizer: OptimizerConfig = field(default_factory=_byol_optimizer)
    base_momentum: Fraction = 0.996  # BYOL section 3.3: tau_base = 0.996, raised to 1 by a cosine
    hidden_dim: PositiveInt = 4096  # BYOL section 3.3: projector and predictor hidden layer 4096
    out_dim: PositiveInt = 256  # BYOL section 3.3: projection and prediction size 256
    # The official configuration (deepmind-research byol/configs/byol.py) accumulates BN
    # statistics across devices (cross_replica_axis), in the encoders and both MLPs.
    sync_batchnorm: bool = True


@METHODS.register("byol")
class BYOL(TwoViewMethod):
    """Online encoder + projector + predictor; EMA target encoder + projector; symmetric summed loss."""

    name = "byol"
    Config = BYOLConfig
    recipes: ClassVar[dict[str, Recipe]] = {
        PAPER: PAPER_RECIPE,
        SHORT: Recipe(
            SHORT_REGIME,
            {"base_momentum": 0.99, "optimizer": {"lr": 0.45, "weight_decay": 1e-6}},
            (
                (
                    "tau 0.99, lr 0.45 x B/256, weight decay 1e-6: DeepMind's 100-epoch preset "
                    "(deepmind-research byol/configs/byol.py; its 300-epoch preset keeps tau 0.99 at "
                    "lr 0.3); "
                    "0.996 / 0.2 / 1.5e-6 are its 1000-epoch values"
                ),
            ),
        ),
    }

    def __init__(self, backbone: str, config: BYOLConfig, image_size: int, mean: RGB, std: RGB) -> None:
        super().__init__(backbone, config, image_size, mean, std, views=byol_views())
        # BYOL section 3.3: Linear(4096) -> BN -> ReLU -> Linear(256), for both MLPs.
        self.projector = mlp_head(
            self.encoder.feature_dim, config.hidden_dim, config.out_dim, batch_norm=True
        )
        self.predictor = mlp_head(config.out_dim, config.hidden_dim, config.out_dim, batch_norm=True)
        self.target_encoder = momentum_target(self.encoder)
        self.target_projector = momentum_target(self.projector)

    def _online(self, view: torch.Tensor) -> torch.Tensor:
        return self.predictor(self.projector(self.features(view)))

    @torch.no_grad()
    def _target(self, view: torch.Tensor) -> torch.Tensor:
        return self.target_projector(self.target_encoder(self.normalize(view)))

    def pair_loss(self, first: torch.Tensor, second: torch.Tensor) -> StepOutput:
        # Each view through each network separately (per-view BN statistics), as the paper.
        predictions = self._online(first), self._online(second)
        # BYOL eq. 2-3: L + L~, summed — averaging them would halve the effective learning rate.
        loss = normalized_regression_loss(predictions[0], self._target(second)) + normalized_regression_loss(
            predictions[1], self._target(first)
        )
        with torch.no_grad():  # collapse shows as the std of the l2-normalised predictions going to 0
            spread = nn.functional.normalize(predictions[0].float(), dim=1).std(0).mean()
        return StepOutput(
            loss, {"prediction_std": spread, "tau": torch.tensor(self.last_momentum, device=loss.device)}
        )

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.encoder, self.target_encoder), (self.projector, self.target_projector)]

    def momentum(self, progress: float) -> float:
        return cosine_momentum(self.config.base_momentum, progress)  # BYOL section 3.3
