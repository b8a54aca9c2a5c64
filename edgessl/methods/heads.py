"""Projection and prediction heads: the small MLPs that sit on top of an encoder.

SimCLR's projection head, MoCo v2's MLP head and BYOL's projector and predictor are all
``Linear -> [BatchNorm] -> ReLU -> Linear``; Barlow Twins' projector and VICReg's
expander stack two such hidden layers and drop the output bias. They differ in widths, in
depth and in whether the hidden layers are batch-normalised, which each method's Config
states with its source. DINO's head (:class:`DINOHead`) is its own: GELU, an l2-normalised
bottleneck and a weight-normalised last layer.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

HEAD_LAYERS = 3  # vision_transformer.py DINOHead: nlayers=3 (main_dino.py sets no other)


def mlp_head(
    in_dim: int,
    hidden_dim: int,
    out_dim: int,
    batch_norm: bool,
    *,
    hidden_layers: int = 1,
    out_bias: bool = True,
    out_batch_norm: bool = False,
) -> nn.Sequential:
    """``hidden_layers`` x ``(Linear -> [BatchNorm1d] -> ReLU)`` at ``hidden_dim``, then
    ``Linear(hidden, out)``.

    A hidden Linear has no bias when BatchNorm follows it (the BN shift replaces it).
    ``out_bias=False`` where the loss standardises or centres the output per dimension
    (Barlow Twins, VICReg): a bias there would get no gradient. ``out_batch_norm`` batch-normalises
    the output too (SimCLR's official head), which replaces the output bias.
    """
    layers: list[nn.Module] = []
    width = in_dim
    for _ in range(hidden_layers):
        layers.append(nn.Linear(width, hidden_dim, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm1d(hidden_dim))
        layers.append(nn.ReLU(inplace=True))
        width = hidden_dim
    layers.append(nn.Linear(width, out_dim, bias=out_bias and not out_batch_norm))
    if out_batch_norm:
        layers.append(nn.BatchNorm1d(out_dim))
    return nn.Sequential(*layers)


class NormalizedLinear(nn.Module):
    """A linear layer without bias whose rows are l2-normalised, then scaled: ``weight_norm(Linear, dim=0)``.

    ``y = x @ (g * v / ||v||).T`` with ``v`` the ``weight`` and ``g`` the per-row ``scale``. With
    ``learn_scale=False`` (DINO's ``norm_last_layer``) ``g`` is 1 and not a tensor at all; otherwise a
    parameter of shape ``(out, 1)`` started at 1 (DINOHead fills ``weight_g`` with 1), 2-D as
    ``weight_g``, so weight decay treats it as DINO's ``get_params_groups`` does.

    Why not ``torch.nn.utils.parametrizations.weight_norm``: the fixed ``g`` would be a parameter
    with ``requires_grad=False`` inside the student, which edgessl reads as "a momentum target";
    here it does not exist, so nothing has to skip it. The state-dict names stay plain
    (``last_layer.weight``), and the forward is the same function of ``v`` (the same gradients).
    """

    def __init__(self, in_dim: int, out_dim: int, learn_scale: bool) -> None:
        super().__init__()
        # DINOHead wraps a default-initialised nn.Linear (its truncated-normal init runs before the
        # last layer exists): the direction starts as torch's Linear weight.
        self.weight = nn.Parameter(nn.Linear(in_dim, out_dim, bias=False).weight.detach().clone())
        self.scale = nn.Parameter(torch.ones(out_dim, 1)) if learn_scale else None

    def normalized_weight(self) -> torch.Tensor:
        weight = F.normalize(self.weight, dim=1)
        return weight if self.scale is None else weight * self.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.normalized_weight())


class DINOHead(nn.Module):
    """DINO's projection head (vision_transformer.py ``DINOHead``): MLP -> l2-normalise -> normalised linear.

    ``HEAD_LAYERS`` Linear layers (hidden, hidden, bottleneck) with GELU between them and
    optional BatchNorm before each GELU, truncated-normal weights (std 0.02) and zero
    biases; the bottleneck is l2-normalised and the last layer's output is the ``out_dim``
    logits over which the two networks' distributions are taken.
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int,
        bottleneck_dim: int,
        out_dim: int,
        batch_norm: bool,
        norm_last_layer: bool,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_dim
        for _ in range(HEAD_LAYERS - 1):
            layers.append(nn.Linear(width, hidden_dim))  # DINOHead keeps the bias even before BatchNorm
            if batch_norm:
                layers.append(nn.BatchNorm1d(hidden_dim))
            layers.append(nn.GELU())
            width = hidden_dim
        layers.append(nn.Linear(width, bottleneck_dim))
        self.mlp = nn.Sequential(*layers)
        for layer in self.mlp:
            if isinstance(layer, nn.Linear):  # DINOHead._init_weights
                nn.init.trunc_normal_(layer.weight, std=0.02)
                nn.init.zeros_(layer.bias)
        self.last_layer = NormalizedLinear(bottleneck_dim, out_dim, learn_scale=not norm_last_layer)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.last_layer(F.normalize(self.mlp(features), dim=-1))
