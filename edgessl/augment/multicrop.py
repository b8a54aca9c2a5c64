"""Multi-crop views (Caron et al. 2020, SwAV section 3.2; DINO, Caron et al. 2021, section 3.1).

Two *global* views of every image at the training resolution and a number of *local*
views: small crops of small parts of the image, resampled to a lower resolution. Local
views are cheap (at DINO's 96 px a local view costs about a fifth of a 224 px global one),
so a method can compare many more views per image for little more compute, and learns
"local-to-global" correspondences by matching a local view to a global one.

Every view is a :class:`~edgessl.augment.views.ViewAugment` applied to the whole uint8
batch at once on its device, as every other method's views: the global views each have
their own augmentation (DINO's two globals differ in blur and solarisation, as BYOL's two
views), the local views share one. The result is a list of float32 batches in [0, 1],
the global views first, which is the order DINO's loss and its multi-crop forward expect.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from edgessl.augment.views import ViewAugment
from edgessl.errors import ConfigError


@dataclass(frozen=True)
class MultiCrop:
    """Two global views at ``global_size`` and ``local_crops`` local views at ``local_size``."""

    global_views: tuple[ViewAugment, ViewAugment]
    local_view: ViewAugment
    local_crops: int
    global_size: int
    local_size: int

    def __post_init__(self) -> None:
        if len(self.global_views) != 2:
            raise ConfigError(f"multi-crop takes exactly two global views, got {len(self.global_views)}")
        if self.local_crops < 0:
            raise ConfigError(f"the number of local crops must be >= 0, got {self.local_crops}")
        if not 0 < self.local_size <= self.global_size:
            raise ConfigError(
                f"local crops must be at least 1 px and no larger than the global ones, got local "
                f"{self.local_size} px and global {self.global_size} px"
            )

    @property
    def crops(self) -> int:
        """How many views one call returns."""
        return 2 + self.local_crops

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """uint8 ``(N, 3, H, W)`` -> ``[global, global, local, ...]``, float32 ``(N, 3, side, side)`` each.

        Each view draws its own random parameters for every sample; ``generator``, if given,
        is used for all of them (one seeded generator reproduces the whole list).
        """
        views = [augment(images, self.global_size, generator) for augment in self.global_views]
        views += [self.local_view(images, self.local_size, generator) for _ in range(self.local_crops)]
        return views


def local_crop_side(image_size: int) -> int:
    """DINO's local resolution scaled to the data: 96 px local views for 224 px global ones."""
    return max(1, round(image_size * 96 / 224))


def dino_multicrop(
    global_size: int,
    local_size: int,
    *,
    local_crops: int = 8,
    global_scale: tuple[float, float] = (0.4, 1.0),
    local_scale: tuple[float, float] = (0.05, 0.4),
    global_blur_p: tuple[float, float] = (1.0, 0.1),
    global_solarize_p: tuple[float, float] = (0.0, 0.2),
    local_blur_p: float = 0.5,
) -> MultiCrop:
    """DINO's multi-crop augmentation (facebookresearch/dino ``main_dino.py``, ``DataAugmentationDINO``).

    Every view: random resized crop, flip p 0.5, colour jitter brightness 0.4, contrast
    0.4, saturation 0.2, hue 0.1 with p 0.8, grayscale p 0.2, Gaussian blur sigma
    U(0.1, 2) (``utils.GaussianBlur``) — BYOL's pipeline (table 6). The first global view
    is always blurred and never solarised, the second blurred with p 0.1 and solarised with
    p 0.2; local views are blurred with p 0.5 and never solarised. The defaults of the
    scales and the number of local crops are ``main_dino.py``'s argument defaults;
    DINO's ResNet-50 run narrows them (``edgessl.methods.dino``).

    Differences from the released pipeline, which works on PIL images: resampling is
    antialiased bilinear rather than bicubic, and the blur kernel is 23/224 of the side
    (BYOL's) where PIL's ``GaussianBlur`` has no kernel size.
    """
    first = ViewAugment(
        crop_scale=global_scale,
        hflip_p=0.5,  # DataAugmentationDINO: RandomHorizontalFlip(p=0.5)
        brightness=0.4,  # DataAugmentationDINO: ColorJitter(0.4, 0.4, 0.2, 0.1) with p 0.8
        contrast=0.4,
        saturation=0.2,
        hue=0.1,
        jitter_p=0.8,
        grayscale_p=0.2,  # DataAugmentationDINO: RandomGrayscale(p=0.2)
        blur_p=global_blur_p[0],  # DataAugmentationDINO: GaussianBlur(1.0) on the first global view
        blur_sigma=(0.1, 2.0),  # utils.GaussianBlur: radius_min 0.1, radius_max 2
        blur_kernel_fraction=23 / 224,  # BYOL table 6: 23x23 at 224 (PIL's blur has no kernel size)
        solarize_p=global_solarize_p[0],  # DataAugmentationDINO: no solarisation on the first global view
    )
    second = replace(
        first,
        blur_p=global_blur_p[1],  # DataAugmentationDINO: GaussianBlur(0.1) on the second global view
        solarize_p=global_solarize_p[1],  # DataAugmentationDINO: Solarization(0.2) on the second
    )
    local = replace(
        first,
        crop_scale=local_scale,
        blur_p=local_blur_p,  # DataAugmentationDINO: GaussianBlur(p=0.5) on the local views
        solarize_p=0.0,  # DataAugmentationDINO: no solarisation on the local views
    )
    return MultiCrop((first, second), local, local_crops, global_size, local_size)
