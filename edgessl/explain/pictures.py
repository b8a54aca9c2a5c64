"""Turning image tensors into something matplotlib shows."""

from __future__ import annotations

import numpy as np
import torch


def to_hwc(image: torch.Tensor) -> np.ndarray:
    """A displayable (H, W, 3) float array from a uint8 or [0, 1] float CHW image."""
    image = image.float() / 255.0 if image.dtype == torch.uint8 else image.float()
    return image.detach().cpu().clamp(0, 1).permute(1, 2, 0).numpy()
