"""Projection and prediction heads: the small MLPs that sit on top of an encoder.

SimCLR's projection head, MoCo v2's MLP head and BYOL's projector and predictor are all
``Linear -> [BatchNorm] -> ReLU -> Linear``; Barlow Twins' projector and VICReg's
expander stack two such hidden layers and drop the output bias. They differ in widths, in
depth and in whether the hidden layers are batch-normalised, which each method's Config
states with its source.
"""

from __future__ import annotations

from torch import nn


def mlp_head(
    in_dim: int,
    hidden_dim: int,
    out_dim: int,
    batch_norm: bool,
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
