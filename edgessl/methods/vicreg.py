"""VICReg (Bardes, Ponce & LeCun 2022, "VICReg: Variance-Invariance-Covariance Regularization for
Self-Supervised Learning").

One encoder and a 3-layer expander embed two views (BYOL's asymmetric augmentation).
Three terms on the embeddings: invariance (the two views' embeddings agree), variance
(every dimension keeps a standard deviation of at least 1 over the batch, so the
embeddings cannot collapse to a point) and covariance (dimensions are decorrelated, so
they cannot collapse to a line). No negatives, momentum target or batch-wise
standardisation of the embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch

from edgessl.augment import byol_views
from edgessl.config import NonNegativeFloat, PositiveFloat, PositiveInt
from edgessl.methods import METHODS
from edgessl.methods.base import RGB, Method, MethodConfig, OptimizerConfig, StepOutput
from edgessl.methods.heads import mlp_head
from edgessl.methods.losses import VICRegLoss
from edgessl.methods.recipes import PAPER, PAPER_RECIPE, SHORT, Recipe


def _vicreg_optimizer() -> OptimizerConfig:
    # VICReg section 4 ("Implementation details"), following BYOL and Barlow Twins: LARS,
    # lr 0.2 x BatchSize/256, weight decay 1e-6, 10 warm-up epochs, then cosine decay
    # (to 0.002 in the paper; to 0 here).
    return OptimizerConfig(
        name="lars",
        lr=0.2,
        reference_batch_size=256,
        weight_decay=1e-6,
        momentum=0.9,
        warmup_epochs=10,
        schedule="cosine",
        # the released main_vicreg.py: cosine to 0.002 of the peak (end_lr = base_lr * 0.001 * 2)
        final_lr_scale=2e-3,
        exclude_bias_and_norm=True,  # the released main_vicreg.py: biases and BN out of LARS and decay
    )


@dataclass
class VICRegConfig(MethodConfig):
    # VICReg trains at 2048 (section 4); 256 fits one edge-class GPU at 96x96, as the study's
    # other methods (Barlow Twins, whose recipe VICReg follows, reports 256 working).
    batch_size: PositiveInt = 256
    optimizer: OptimizerConfig = field(default_factory=_vicreg_optimizer)
    invariance_weight: NonNegativeFloat = 25.0  # VICReg section 4: lambda = 25 in eq. 6
    variance_weight: NonNegativeFloat = 25.0  # VICReg section 4: mu = 25 in eq. 6
    covariance_weight: NonNegativeFloat = 1.0  # VICReg section 4: nu = 1 in eq. 6
    variance_eps: PositiveFloat = 1e-4  # VICReg section 4: epsilon = 0.0001 in eq. 1
    # VICReg section 4: expander of 3 fully-connected layers of 8192, BN + ReLU after the first two.
    hidden_dim: PositiveInt = 8192
    out_dim: PositiveInt = 8192
    # The released main_vicreg.py converts the whole model to SyncBatchNorm: BN over the global batch.
    sync_batchnorm: bool = True


@METHODS.register("vicreg")
class VICReg(Method):
    """Encoder + 3-layer expander; variance-invariance-covariance loss on BYOL's two views."""

    name = "vicreg"
    Config = VICRegConfig
    recipes: ClassVar[dict[str, Recipe]] = {
        PAPER: PAPER_RECIPE,
        SHORT: Recipe(
            "100-300 epochs at batch 256 on 32-96 px images",
            {"optimizer": {"lr": 0.3, "weight_decay": 1e-4}, "hidden_dim": 2048, "out_dim": 2048},
            (
                (
                    "lr 0.3 x B/256, weight decay 1e-4, projector 2048-2048: solo-learn's CIFAR VICReg "
                    "script (LARS, 2048-wide expander, batch 256); "
                    "the paper's 8192-wide head and 1e-6 decay are for 1000 epochs at batch 2048"
                ),
            ),
        ),
    }

    def __init__(self, backbone: str, config: VICRegConfig, image_size: int, mean: RGB, std: RGB) -> None:
        super().__init__(backbone, config, image_size, mean, std)
        self.encoder = self.build_encoder(backbone)
        # The released code's hidden Linears keep a bias that their BN cancels; the last has none.
        self.expander = mlp_head(
            self.encoder.feature_dim,
            config.hidden_dim,
            config.out_dim,
            batch_norm=True,
            hidden_layers=2,
            out_bias=False,
        )
        self.criterion = VICRegLoss(
            config.invariance_weight, config.variance_weight, config.covariance_weight, config.variance_eps
        )
        self.augment_first, self.augment_second = byol_views()  # VICReg section 4 / released code: BYOL's

    def make_views(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.augment_first(images, self.image_size), self.augment_second(images, self.image_size)

    def _embed(self, view: torch.Tensor) -> torch.Tensor:
        return self.expander(self.encoder(self.normalize(view)))

    def loss(self, views: tuple[torch.Tensor, torch.Tensor]) -> StepOutput:
        first, second = views
        # Each view through the network separately (per-view BN statistics), as the released code.
        return self.criterion(self._embed(first), self._embed(second))
