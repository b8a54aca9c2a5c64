"""MAC and FLOP counts. MACs are multiply-accumulates (what thop reports); FLOPs = 2 x MACs."""

from __future__ import annotations

import torch
from torch import nn


def count_macs(model: nn.Module, image_size: int, in_channels: int = 3) -> float:
    """thop's MAC count of one image through ``model`` (a deep copy: thop adds buffers)."""
    import copy

    import thop

    probe = copy.deepcopy(model).eval()
    with torch.no_grad():
        macs, _ = thop.profile(probe, (torch.zeros(1, in_channels, image_size, image_size),), verbose=False)
    return float(macs)
