"""Batched augmentation on the training device with per-sample random parameters.

Methods call these on whole uint8 batches inside ``make_views``; nothing runs per
sample in Python or in DataLoader workers. ``functional`` holds the single operations
(per-sample parameters, torchvision's definitions); ``views`` the random pipelines and
the presets of SimCLR, MoCo v2 and BYOL, and RotNet's rotations; ``multicrop`` DINO's
two global and several local views.
"""

from edgessl.augment.multicrop import MultiCrop, dino_multicrop, local_crop_side
from edgessl.augment.views import (
    ViewAugment,
    byol_views,
    mocov2_view,
    rotate_all_four,
    simclr_view,
    to_float,
)

__all__ = [
    "MultiCrop",
    "ViewAugment",
    "byol_views",
    "dino_multicrop",
    "local_crop_side",
    "mocov2_view",
    "rotate_all_four",
    "simclr_view",
    "to_float",
]
