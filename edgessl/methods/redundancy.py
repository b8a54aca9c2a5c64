"""What Barlow Twins and VICReg share: both regularise statistics of two embeddings over the batch,
and VICReg follows Barlow Twins' recipe, itself BYOL's.

Both take BYOL's two asymmetric views, one encoder and a head of three Linear layers (BN + ReLU
after the first two; no output bias, since the loss standardises or centres every dimension and a
bias there would get no gradient), pass each view through the network on its own (per-view BN
statistics, as both released codes) and score the two embeddings with their loss. What differs
is the loss, the optimiser and the head's name (Barlow Twins' projector, VICReg's expander), which
stays each paper's word because checkpoints name the head's weights by it.
"""

from __future__ import annotations

from abc import abstractmethod

import torch
from torch import nn

from edgessl.augment import byol_views
from edgessl.methods.base import RGB, MethodConfig, StepOutput
from edgessl.methods.heads import mlp_head
from edgessl.methods.recipes import SHORT_REGIME, Recipe
from edgessl.methods.two_view import TwoViewMethod


def redundancy_head(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Sequential:
    """Barlow Twins' projector and VICReg's expander: 3 Linear layers, BN + ReLU after the first two,
    no biases (BN follows the hidden ones, the loss standardises the output)."""
    return mlp_head(in_dim, hidden_dim, out_dim, batch_norm=True, hidden_layers=2, out_bias=False)


def solo_learn_short_recipe(paper: str, head: str) -> Recipe:
    """The ``short`` recipe of both: solo-learn's CIFAR script of the method, which sets the same values
    for the two (``head`` is the paper's name for its head)."""
    return Recipe(
        SHORT_REGIME,
        {"optimizer": {"lr": 0.3, "weight_decay": 1e-4}, "hidden_dim": 2048, "out_dim": 2048},
        (
            (
                f"lr 0.3 x B/256, weight decay 1e-4, projector 2048-2048: solo-learn's CIFAR {paper} "
                f"script (LARS, 2048-wide {head}, batch 256); "
                "the paper's 8192-wide head and 1e-6 decay are for 1000 epochs at batch 2048"
            ),
        ),
    )


class RedundancyReductionMethod(TwoViewMethod):
    """Encoder + 3-layer head on BYOL's two views, each embedded on its own; a subclass builds the
    head under its paper's name, says how a view is embedded, and sets ``criterion`` (its loss)."""

    criterion: nn.Module  # the loss of the two views' embeddings, (N, D) each, as a StepOutput

    def __init__(self, backbone: str, config: MethodConfig, image_size: int, mean: RGB, std: RGB) -> None:
        super().__init__(backbone, config, image_size, mean, std, views=byol_views())

    @abstractmethod
    def embed(self, view: torch.Tensor) -> torch.Tensor:
        """The head's embedding of one view."""

    def pair_loss(self, first: torch.Tensor, second: torch.Tensor) -> StepOutput:
        # Each view through the network separately (per-view BN statistics), as the released codes.
        return self.criterion(self.embed(first), self.embed(second))
