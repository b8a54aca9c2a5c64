"""Batched augmentation on the training device with per-sample random parameters.

Methods call these on whole uint8 batches inside ``make_views``; nothing runs per
sample in Python or in DataLoader workers. ``functional`` holds the single operations
(per-sample parameters, torchvision's definitions); ``views`` the random pipelines and
the presets of SimCLR, MoCo v2 and BYOL, and RotNet's rotations.
"""

from edgessl.augment.views import (
    ViewAugment,
    byol_views,
    mocov2_view,
    rotate_all_four,
    simclr_view,
    to_float,
)

__all__ = ["ViewAugment", "byol_views", "mocov2_view", "rotate_all_four", "simclr_view", "to_float"]
