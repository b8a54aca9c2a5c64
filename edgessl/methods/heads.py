"""Projection and prediction heads: the small MLPs that sit on top of an encoder.

SimCLR's projection head, MoCo v2's MLP head and BYOL's projector and predictor are all
``Linear -> [BatchNorm] -> ReLU -> Linear``; they differ in widths and in whether the
hidden layer is batch-normalised, which each method's Config states with its source.
"""

from __future__ import annotations

from torch import nn


def mlp_head(in_dim: int, hidden_dim: int, out_dim: int, batch_norm: bool) -> nn.Sequential:
    """``Linear(in, hidden) -> [BatchNorm1d] -> ReLU -> Linear(hidden, out)``.

    The hidden Linear has no bias when BatchNorm follows it (the BN shift replaces it).
    """
    layers: list[nn.Module] = [nn.Linear(in_dim, hidden_dim, bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm1d(hidden_dim))
    layers += [nn.ReLU(inplace=True), nn.Linear(hidden_dim, out_dim)]
    return nn.Sequential(*layers)
