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

from edgessl.config import NonNegativeFloat, PositiveFloat, PositiveInt
from edgessl.methods import METHODS
from edgessl.methods.base import RGB, MethodConfig, OptimizerConfig, lars_optimizer
from edgessl.methods.losses import VICRegLoss
from edgessl.methods.recipes import PAPER, PAPER_RECIPE, SHORT, Recipe
from edgessl.methods.redundancy import RedundancyReductionMethod, redundancy_head, solo_learn_short_recipe


def _vicreg_optimizer() -> OptimizerConfig:
    # VICReg section 4 ("Implementation details"), following BYOL and Barlow Twins: LARS,
    # lr 0.2 x BatchSize/256, weight decay 1e-6, 10 warm-up epochs, then cosine decay
    # (to 0.002 in the paper; to 0 here); the released main_vicreg.py: biases and BN out of LARS and decay.
    return lars_optimizer(
        lr=0.2,
        weight_decay=1e-6,
        # the released main_vicreg.py: cosine to 0.002 of the peak (end_lr = base_lr * 0.001 * 2)
        final_lr_scale=2e-3,
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
class VICReg(RedundancyReductionMethod):
    """Encoder + 3-layer expander; variance-invariance-covariance loss on BYOL's two views."""

    name = "vicreg"
    Config = VICRegConfig
    recipes: ClassVar[dict[str, Recipe]] = {
        PAPER: PAPER_RECIPE,
        SHORT: solo_learn_short_recipe("VICReg", "expander"),
    }

    def __init__(self, backbone: str, config: VICRegConfig, image_size: int, mean: RGB, std: RGB) -> None:
        super().__init__(backbone, config, image_size, mean, std)  # BYOL's views: VICReg section 4
        # The released code's hidden Linears keep a bias that their BN cancels; the last has none.
        self.expander = redundancy_head(self.encoder.feature_dim, config.hidden_dim, config.out_dim)
        self.criterion = VICRegLoss(
            config.invariance_weight, config.variance_weight, config.covariance_weight, config.variance_eps
        )

    def embed(self, view: torch.Tensor) -> torch.Tensor:
        return self.expander(self.features(view))
