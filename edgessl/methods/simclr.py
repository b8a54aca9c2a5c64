"""SimCLR (Chen, Kornblith, Norouzi & Hinton 2020, "A Simple Framework for Contrastive Learning
of Visual Representations").

Two views of every image (SimCLR's crop, flip, strong colour distortion and blur), an
encoder, a 2-layer MLP projection head, and the NT-Xent loss over the 2N projections.
Under several processes the negatives are the whole global batch's (each process's
anchors against every process's projections, :class:`InfoNCELoss`) and BatchNorm is
global (``sync_batchnorm``), so N processes train the model one process would on the
global batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch

from edgessl.augment import simclr_view
from edgessl.config import NonNegativeFloat, PositiveFloat, PositiveFraction, PositiveInt
from edgessl.methods import METHODS
from edgessl.methods.base import RGB, MethodConfig, OptimizerConfig, lars_optimizer
from edgessl.methods.heads import mlp_head
from edgessl.methods.losses import InfoNCELoss
from edgessl.methods.recipes import PAPER, PAPER_RECIPE, SHORT, SHORT_REGIME, Recipe
from edgessl.methods.two_view import TwoViewMethod


@dataclass
class SimCLRConfig(MethodConfig):
    # SimCLR trains at 4096 (section 4) but reports batches down to 256 (figure 9); 256 fits
    # one edge-class GPU at 96x96, as the study's other methods.
    batch_size: PositiveInt = 256
    # SimCLR section 4 ("Default setting"): LARS, lr 0.3 x BatchSize/256, weight decay 1e-6, 10 warm-up
    # epochs, then cosine decay without restarts; appendix B.1: no weight decay or LARS adaptation on
    # biases and BN.
    optimizer: OptimizerConfig = field(default_factory=lambda: lars_optimizer(lr=0.3, weight_decay=1e-6))
    # 0.5: the best temperature of their CIFAR-10 study (appendix B.9), the small-image,
    # small-batch setting closest to 96px STL-10 at batch 256; 0.1 is their ImageNet choice at 4096.
    temperature: PositiveFloat = 0.5
    hidden_dim: PositiveInt = 2048  # SimCLR section 2.1 / B.4: hidden layer as wide as ResNet-50's h (2048)
    out_dim: PositiveInt = 128  # SimCLR section 4 / B.4: 128-d projection
    # google-research/simclr (`projection_head`, `linear_layer(use_bn=True)`): every layer of the
    # head is batch-normalised, the output one too (without ReLU); lightly's SimCLRProjectionHead as well.
    output_batch_norm: bool = True
    colour_strength: NonNegativeFloat = 1.0  # SimCLR appendix A: colour-distortion strength s = 1
    # SimCLR section 2.2 ("Global BN"): BN mean and variance aggregated over all devices, so a
    # positive pair cannot be found from shard statistics.
    sync_batchnorm: bool = True
    # SimCLR appendix A.1: crop area 8%..100% of the image
    crop_scale: tuple[PositiveFraction, PositiveFraction] = (0.08, 1.0)


@METHODS.register("simclr")
class SimCLR(TwoViewMethod):
    """Encoder + MLP projection head trained by NT-Xent on two views; the encoder is the representation."""

    name = "simclr"
    Config = SimCLRConfig
    recipes: ClassVar[dict[str, Recipe]] = {
        PAPER: PAPER_RECIPE,
        SHORT: Recipe(
            SHORT_REGIME,
            # lr 0.075 x sqrt(B): 1.2 at B = 256
            {"optimizer": {"lr": 1.2, "lr_scaling": "sqrt"}, "temperature": 0.2, "colour_strength": 0.5},
            (
                (
                    "lr 0.075 x sqrt(BatchSize), square-root scaling: SimCLR appendix B.1 (better than the "
                    "linear rule for small batches and fewer epochs, figure B.1)"
                ),
                (
                    "temperature 0.2: solo-learn's CIFAR SimCLR script; 0.5 (appendix B.9) is their "
                    "1000-epoch CIFAR setting"
                ),
                "colour strength 0.5: SimCLR appendix B.9 (CIFAR-10)",
            ),
        ),
    }

    def __init__(self, backbone: str, config: SimCLRConfig, image_size: int, mean: RGB, std: RGB) -> None:
        augment = simclr_view(config.colour_strength, config.crop_scale)  # both views drawn alike
        super().__init__(backbone, config, image_size, mean, std, views=(augment, augment))
        # BN in the hidden layer, as the official implementation (google-research/simclr).
        self.projector = mlp_head(
            self.encoder.feature_dim,
            config.hidden_dim,
            config.out_dim,
            batch_norm=True,
            out_batch_norm=config.output_batch_norm,
        )
        self.criterion = InfoNCELoss(config.temperature)

    def pair_loss(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        # One pass over both views: BN statistics over all 2N images, as the paper's global BN.
        z = self.projector(self.features(torch.cat((first, second))))
        return self.criterion(z[: len(first)], z[len(first) :])
