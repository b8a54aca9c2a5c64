"""Random views for contrastive and distillation methods, made batched on the batch's device.

A :class:`ViewAugment` is the usual SSL view pipeline — random resized crop, horizontal
flip, colour jitter, grayscale, Gaussian blur, solarisation — applied to a whole uint8
batch at once with independent random parameters per sample. Randomness comes from the
default RNG of the batch's device (or an explicit ``generator``), so saving and
restoring RNG states reproduces the views exactly.

Order of operations, as SimCLR's and BYOL's pipelines: crop -> flip -> colour jitter
-> grayscale -> blur -> solarise. Within colour jitter, brightness, contrast,
saturation and hue run in a random order drawn once per batch (torchvision draws it
per image; kornia's ColorJitter, like this, per batch), each sample with its own factors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from edgessl.augment import functional as AF
from edgessl.errors import ConfigError, DataError

# Colour-jitter operations by the ViewAugment field that sets their strength.
JITTER_OPS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "brightness": AF.adjust_brightness,
    "contrast": AF.adjust_contrast,
    "saturation": AF.adjust_saturation,
    "hue": AF.adjust_hue,
}


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 in [0, 255] or float in [0, 1] -> float32 in [0, 1], checking the batch layout."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise DataError(
            f"augmentation expects RGB batches shaped (N, 3, H, W), got {tuple(images.shape)}; "
            "convert grayscale images to RGB when loading the dataset"
        )
    if images.dtype == torch.uint8:
        return images / 255.0  # one kernel: converts and scales
    if not images.is_floating_point():
        raise DataError(f"augmentation expects uint8 or float images, got {images.dtype}")
    return images.float()


def apply_where(
    images: torch.Tensor, flags: torch.Tensor, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """``fn(images[idx], idx)`` written back in place for the flagged samples only.

    Skips the work of samples whose coin flip is off; with every flag on (or off) it
    avoids the gather and scatter. ``images`` must be a tensor this module owns.
    """
    index = flags.nonzero().squeeze(1)
    if index.numel() == images.shape[0]:
        return fn(images, index)
    if index.numel() > 0:
        images.index_copy_(0, index, fn(images.index_select(0, index), index))
    return images


def _check_unit(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"augmentation {name} must be a probability in [0, 1], got {value}")


def _check_range(name: str, bounds: tuple[float, float]) -> None:
    low, high = bounds
    if not 0.0 < low <= high:
        raise ConfigError(f"augmentation {name} must be (low, high) with 0 < low <= high, got {bounds}")


@dataclass(frozen=True)
class ViewAugment:
    """One view's random augmentation; the defaults are MoCo v2's / BYOL's jitter strengths.

    ``blur_kernel_fraction`` sets the Gaussian kernel to about that fraction of the
    output side, as SimCLR (see :func:`edgessl.augment.functional.blur_kernel_size`).
    A strength of 0 or a probability of 0 skips that operation (and its random draws).
    """

    crop_scale: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip_p: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1
    grayscale_p: float = 0.2
    blur_p: float = 0.5
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    blur_kernel_fraction: float = 0.1  # kernel ~10% of the image side, as SimCLR
    solarize_p: float = 0.0

    def __post_init__(self) -> None:
        for name in ("hflip_p", "jitter_p", "grayscale_p", "blur_p", "solarize_p"):
            _check_unit(name, getattr(self, name))
        for name in ("crop_scale", "crop_ratio", "blur_sigma"):
            _check_range(name, getattr(self, name))
        for name in ("brightness", "contrast", "saturation"):
            if getattr(self, name) < 0:
                raise ConfigError(f"augmentation {name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.hue <= 0.5:
            raise ConfigError(f"augmentation hue must be in [0, 0.5] (a fraction of a turn), got {self.hue}")
        if self.blur_kernel_fraction <= 0:
            raise ConfigError(
                f"augmentation blur_kernel_fraction must be > 0, got {self.blur_kernel_fraction}"
            )

    def __call__(
        self, images: torch.Tensor, out_size: int | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """uint8 ``(N, 3, H, W)`` or float in [0, 1] -> float32 in [0, 1] ``(N, 3, out, out)``.

        ``out_size`` defaults to the shorter input side. The result is on ``images``'
        device; ``generator``, if given, must be on that device too.
        """
        # Mixed precision would run the resampling matmuls in half precision; views stay float32.
        with torch.autocast(images.device.type, enabled=False):
            return self._views(to_float(images), out_size, generator)

    def _views(
        self, x: torch.Tensor, out_size: int | None, generator: torch.Generator | None
    ) -> torch.Tensor:
        """The pipeline on a float batch; every step after the crop works on tensors it owns."""
        n, _, height, width = x.shape
        size = out_size or min(height, width)
        device = x.device
        boxes = AF.sample_crop_boxes(
            n, height, width, self.crop_scale, self.crop_ratio, device, generator=generator
        )
        flips = AF.coin_flips(self.hflip_p, n, device, generator) if self.hflip_p > 0 else None
        x = AF.resized_crop(x, boxes, size, flips)
        x = self._jitter(x, generator)
        if self.grayscale_p > 0:
            x = apply_where(
                x, AF.coin_flips(self.grayscale_p, n, device, generator), lambda s, _: AF.grayscale(s)
            )
        if self.blur_p > 0:
            x = self._blur(x, size, generator)
        if self.solarize_p > 0:
            x = AF.solarize(x, AF.coin_flips(self.solarize_p, n, device, generator))
        return x.clamp_(0, 1)  # hue and blur round a few ulps past 1

    def jitter_ranges(self) -> dict[str, tuple[float, float]]:
        """Sampling range of each active jitter factor, as torchvision's ColorJitter."""
        ranges = {
            name: (max(0.0, 1.0 - getattr(self, name)), 1.0 + getattr(self, name))
            for name in ("brightness", "contrast", "saturation")
            if getattr(self, name) > 0
        }
        if self.hue > 0:
            ranges["hue"] = (-self.hue, self.hue)
        return ranges

    def _jitter(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        ranges = self.jitter_ranges()
        if self.jitter_p == 0 or not ranges:
            return x
        n, device = x.shape[0], x.device
        flags = AF.coin_flips(self.jitter_p, n, device, generator)
        factors = {name: AF.uniform(lo, hi, n, device, generator) for name, (lo, hi) in ranges.items()}
        order = torch.rand(len(ranges), device=device, generator=generator).argsort().tolist()
        names = [list(ranges)[i] for i in order]

        def jitter(subset: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
            for name in names:
                subset = JITTER_OPS[name](subset, factors[name][index])
            return subset

        return apply_where(x, flags, jitter)

    def _blur(self, x: torch.Tensor, size: int, generator: torch.Generator | None) -> torch.Tensor:
        n, device = x.shape[0], x.device
        flags = AF.coin_flips(self.blur_p, n, device, generator)
        sigmas = AF.uniform(*self.blur_sigma, n, device, generator)
        kernel = AF.blur_kernel_size(size, self.blur_kernel_fraction)
        return apply_where(x, flags, lambda s, index: AF.gaussian_blur(s, sigmas[index], kernel))


def simclr_view(strength: float = 1.0, crop_scale: tuple[float, float] = (0.08, 1.0)) -> ViewAugment:
    """SimCLR's view (Chen et al. 2020, "A Simple Framework for Contrastive Learning", appendix A).

    Crop scale (0.08, 1) and ratio (3/4, 4/3), flip 0.5 (A.1); colour jitter with
    strength s = 1.0 -> brightness/contrast/saturation 0.8 s, hue 0.2 s, applied with
    p 0.8, grayscale p 0.2 (A.1 pseudo-code); Gaussian blur p 0.5, sigma (0.1, 2.0),
    kernel 10% of the side (A.1). No solarisation. ``crop_scale`` narrows the crop's area
    range for data whose class is a whole object (a crop of 8% of the image loses it).
    """
    return ViewAugment(
        crop_scale=crop_scale,  # SimCLR A.1: (0.08, 1)
        brightness=0.8 * strength,  # SimCLR A.1: 0.8 s
        contrast=0.8 * strength,  # SimCLR A.1: 0.8 s
        saturation=0.8 * strength,  # SimCLR A.1: 0.8 s
        hue=0.2 * strength,  # SimCLR A.1: 0.2 s
        jitter_p=0.8,  # SimCLR A.1
        grayscale_p=0.2,  # SimCLR A.1
        blur_p=0.5,  # SimCLR A.1
        blur_sigma=(0.1, 2.0),  # SimCLR A.1
        solarize_p=0.0,
    )


def mocov2_view() -> ViewAugment:
    """MoCo v2's view (Chen et al. 2020b, "Improved Baselines with Momentum Contrastive Learning").

    Its ``aug_plus`` recipe (facebookresearch/moco ``main_moco.py``): crop scale (0.2, 1),
    jitter 0.4/0.4/0.4/0.1 with p 0.8, grayscale p 0.2, blur sigma (0.1, 2) with p 0.5, flip 0.5.
    """
    return ViewAugment(
        crop_scale=(0.2, 1.0),  # MoCo v2 aug_plus
        brightness=0.4,  # MoCo v2 aug_plus
        contrast=0.4,  # MoCo v2 aug_plus
        saturation=0.4,  # MoCo v2 aug_plus
        hue=0.1,  # MoCo v2 aug_plus
        jitter_p=0.8,  # MoCo v2 aug_plus
        grayscale_p=0.2,  # MoCo v2 aug_plus
        blur_p=0.5,  # MoCo v2 aug_plus
        blur_sigma=(0.1, 2.0),  # MoCo v2 aug_plus
        solarize_p=0.0,
    )


def byol_views() -> tuple[ViewAugment, ViewAugment]:
    """BYOL's two asymmetric views (Grill et al. 2020, "Bootstrap Your Own Latent", table 6).

    Both: crop scale (0.08, 1), flip 0.5, jitter brightness 0.4, contrast 0.4,
    saturation 0.2, hue 0.1 with p 0.8, grayscale p 0.2, blur sigma (0.1, 2.0) with a
    kernel of 23/224 of the side. They differ in blur p (1.0 / 0.1) and solarisation p (0 / 0.2).
    """
    first = ViewAugment(
        crop_scale=(0.08, 1.0),  # BYOL table 6
        brightness=0.4,  # BYOL table 6
        contrast=0.4,  # BYOL table 6
        saturation=0.2,  # BYOL table 6
        hue=0.1,  # BYOL table 6
        jitter_p=0.8,  # BYOL table 6
        grayscale_p=0.2,  # BYOL table 6
        blur_p=1.0,  # BYOL table 6, view 1
        blur_sigma=(0.1, 2.0),  # BYOL table 6
        blur_kernel_fraction=23 / 224,  # BYOL table 6: 23x23 kernel at 224
        solarize_p=0.0,  # BYOL table 6, view 1
    )
    second = replace(first, blur_p=0.1, solarize_p=0.2)  # BYOL table 6, view 2
    return first, second


def rotate_all_four(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """All four rotations of every image, for RotNet (Gidaris et al. 2018).

    Returns ``(4N, C, H, W)`` ordered rotation-major — the N images at 0 degrees, then
    at 90, 180 and 270 degrees counter-clockwise (``torch.rot90`` on H, W) — and labels
    ``(4N,)`` int64 holding the rotation index 0..3. Keeps the input dtype; square images only.
    """
    if images.ndim != 4 or images.shape[-1] != images.shape[-2]:
        raise DataError(
            f"rotation prediction needs square images (N, C, S, S), got {tuple(images.shape)}; "
            "set an image size when loading the dataset"
        )
    rotated = torch.cat([torch.rot90(images, k, dims=(2, 3)) for k in range(4)])
    labels = torch.arange(4, device=images.device).repeat_interleave(images.shape[0])
    return rotated, labels
