"""Batched image operations with one parameter per sample.

Every function takes a float batch ``(N, 3, H, W)`` in [0, 1] on any device and a
parameter tensor of shape ``(N,)`` on the same device, and applies one whole-batch
kernel instead of a Python loop over samples: this is what lets augmentation run on
the training device (the GPU when there is one) rather than in CPU DataLoader workers.
The colour operations follow the definitions of ``torchvision.transforms.functional``
(the tests check them against it), so presets written for torchvision mean the same here.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# ITU-R 601-2 luma weights, as torchvision's rgb_to_grayscale (and PIL's "L" mode).
LUMA = (0.2989, 0.587, 0.114)

# Attempts of the rejection sampler before falling back to a centre crop (torchvision uses 10).
CROP_ATTEMPTS = 10


def uniform(
    low: float, high: float, n: int, device: torch.device, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``n`` float32 draws from U[low, high) on ``device``."""
    return torch.rand(n, device=device, generator=generator) * (high - low) + low


def coin_flips(
    p: float, n: int, device: torch.device, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``n`` booleans, each True with probability ``p``."""
    return torch.rand(n, device=device, generator=generator) < p


def sample_crop_boxes(
    n: int,
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    device: torch.device,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Random-resized-crop boxes ``(n, 4)`` as ``x1, y1, x2, y2`` pixel edges (float32).

    Same distribution as torchvision's ``RandomResizedCrop.get_params``: area fraction
    uniform in ``scale``, log aspect ratio uniform in ``log(ratio)``, integer sides,
    the first of ``CROP_ATTEMPTS`` draws that fits, else a centre crop with the ratio
    clamped. All attempts of all samples are drawn at once, so the cost does not grow
    with the batch in Python.
    """
    shape = (n, CROP_ATTEMPTS)
    area = (
        height
        * width
        * (torch.rand(shape, device=device, generator=generator) * (scale[1] - scale[0]) + scale[0])
    )
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(torch.rand(shape, device=device, generator=generator) * (log_hi - log_lo) + log_lo)
    w = torch.round(torch.sqrt(area * aspect))
    h = torch.round(torch.sqrt(area / aspect))
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.to(torch.uint8).argmax(dim=1, keepdim=True)  # index of the first True (0 if none)
    w, h = w.gather(1, first).squeeze(1), h.gather(1, first).squeeze(1)
    # Offsets uniform over the integers 0..side-crop, as torch.randint(0, side - crop + 1).
    top = torch.floor(torch.rand(n, device=device, generator=generator) * (height - h + 1))
    left = torch.floor(torch.rand(n, device=device, generator=generator) * (width - w + 1))

    fallback_w, fallback_h = _centre_crop_size(height, width, ratio)
    found = fits.any(dim=1)
    w = torch.where(found, w, torch.full_like(w, fallback_w))
    h = torch.where(found, h, torch.full_like(h, fallback_h))
    top = torch.where(found, top, torch.full_like(top, (height - fallback_h) // 2))
    left = torch.where(found, left, torch.full_like(left, (width - fallback_w) // 2))
    return torch.stack([left, top, left + w, top + h], dim=1)


def _centre_crop_size(height: int, width: int, ratio: tuple[float, float]) -> tuple[int, int]:
    """torchvision's fallback crop: the whole image with its aspect ratio clamped into ``ratio``."""
    in_ratio = width / height
    if in_ratio < min(ratio):
        return width, round(width / min(ratio))
    if in_ratio > max(ratio):
        return round(height * max(ratio)), height
    return width, height


def resize_weights(
    start: torch.Tensor, length: torch.Tensor, size: int, side: int, flip: torch.Tensor | None = None
) -> torch.Tensor:
    """Per-sample resampling matrices ``(N, size, side)`` along one axis.

    Row ``o`` of sample ``n`` holds the weights of the input pixels that make output pixel
    ``o`` when the span ``[start, start + length)`` is resized to ``size`` pixels: the
    triangle (bilinear) filter, widened by the scale factor when shrinking — torchvision's
    ``antialias=True`` — restricted to the span and normalised, as resizing a crop.
    Reversing the rows of the samples in ``flip`` mirrors their output for free.
    """
    scale = (length / size).unsqueeze(1)
    outputs = torch.arange(size, device=start.device, dtype=start.dtype) + 0.5
    centres = start.unsqueeze(1) + outputs * scale  # (N, size), in pixel-edge coordinates
    if flip is not None:
        centres = torch.where(flip.unsqueeze(1), centres.flip(1), centres)
    pixels = torch.arange(side, device=start.device, dtype=start.dtype) + 0.5
    distance = (pixels - centres.unsqueeze(2)) / scale.clamp(min=1.0).unsqueeze(2)
    weights = (1 - distance.abs()).clamp_(min=0)
    inside = (pixels >= start.view(-1, 1, 1)) & (pixels < (start + length).view(-1, 1, 1))
    weights = weights * inside
    return weights / weights.sum(dim=2, keepdim=True)


def resized_crop(
    images: torch.Tensor, boxes: torch.Tensor, size: int, flip: torch.Tensor | None = None
) -> torch.Tensor:
    """Crop each image to its box ``(x1, y1, x2, y2)``, resize it to ``size x size``, mirror the flagged ones.

    Matches torchvision's ``resized_crop(..., antialias=True)`` (then ``hflip``) per image.
    Resizing is separable and linear, so each axis is one batched matrix product with the
    per-sample matrices of :func:`resize_weights`: two ``bmm`` calls for the whole batch,
    which BLAS runs fast on any device, and the flip costs nothing.
    """
    n, c, h, w = images.shape
    across = resize_weights(boxes[:, 0], boxes[:, 2] - boxes[:, 0], size, w, flip)  # (N, size, W)
    down = resize_weights(boxes[:, 1], boxes[:, 3] - boxes[:, 1], size, h)  # (N, size, H)
    rows = torch.bmm(images.reshape(n, c * h, w), across.transpose(1, 2)).view(n, c, h, size)
    return torch.matmul(down.unsqueeze(1), rows)


def padded_random_crop(
    images: torch.Tensor, padding: int, flip_p: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """torchvision's ``RandomCrop(size, padding)`` (zero padding) then ``RandomHorizontalFlip(flip_p)``,
    batched.

    Each sample is zero-padded by ``padding`` on every side and cropped back to its size at
    offsets uniform over the ``2 * padding + 1`` positions per axis; any dtype (uint8 stays uint8).
    """
    n, _, height, width = images.shape
    device = images.device
    padded = F.pad(images, (padding,) * 4)
    top = torch.randint(0, 2 * padding + 1, (n, 1), device=device, generator=generator)
    left = torch.randint(0, 2 * padding + 1, (n, 1), device=device, generator=generator)
    rows = top + torch.arange(height, device=device)  # (n, H)
    cols = left + torch.arange(width, device=device)  # (n, W)
    flips = coin_flips(flip_p, n, device, generator).unsqueeze(1)
    cols = torch.where(flips, cols.flip(1), cols)
    batch = torch.arange(n, device=device).view(n, 1, 1)
    crops = padded.permute(0, 2, 3, 1)[batch, rows.unsqueeze(2), cols.unsqueeze(1)]  # (n, H, W, C)
    return crops.permute(0, 3, 1, 2).contiguous()


def rgb_to_grayscale(images: torch.Tensor) -> torch.Tensor:
    """Luma ``(N, 1, H, W)`` with the ITU-R 601-2 weights."""
    r, g, b = images.unbind(1)
    return torch.mul(r, LUMA[0]).add_(g, alpha=LUMA[1]).add_(b, alpha=LUMA[2]).unsqueeze(1)


def _blend(images: torch.Tensor, other: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """``factor * images + (1 - factor) * other``, clamped to [0, 1] (torchvision's ``_blend``).

    ``torch.lerp`` does the blend in one kernel instead of three.
    """
    return torch.lerp(other.expand_as(images), images, factors.view(-1, 1, 1, 1)).clamp_(0, 1)


def adjust_brightness(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Scale intensities by each sample's factor (0 gives black, 1 the original)."""
    return (images * factors.view(-1, 1, 1, 1)).clamp_(0, 1)


def adjust_contrast(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Blend each image with its mean luma (0 gives flat grey, 1 the original)."""
    # Mean luma = luma of the channel means: one reduction, no grayscale image.
    luma = torch.tensor(LUMA, device=images.device, dtype=images.dtype)
    mean = (images.mean(dim=(2, 3)) @ luma).view(-1, 1, 1, 1)
    return _blend(images, mean, factors)


def adjust_saturation(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Blend each image with its own grayscale version (0 gives grey, 1 the original)."""
    return _blend(images, rgb_to_grayscale(images), factors)


def adjust_hue(images: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Rotate hue by each sample's shift in turns (in [-0.5, 0.5]), keeping saturation and value.

    Hue as torchvision's RGB -> HSV, then back with the closed form of HSV -> RGB:
    ``channel = min + C * clamp(|((n + 6 H) mod 6) - 2| - 1, 0, 1)`` for n = 5, 3, 1
    (R, G, B), where ``C = max - min`` is the chroma. The closed form needs no per-pixel
    sector gather, so the whole rotation is a dozen element-wise kernels, most in place.
    """
    r, g, b = images.unbind(1)
    high, low = images.amax(dim=1), images.amin(dim=1)
    chroma = high - low
    # Hue in sixths of a turn times the chroma; where channels tie the cases agree, so ties need no rule.
    scaled = torch.where(
        high == r,
        g - b,
        torch.where(high == g, (b - r).add_(chroma, alpha=2), (r - g).add_(chroma, alpha=4)),
    )
    sixths = scaled.div_(chroma.clamp(min=1e-12)).add_(6 * shifts.view(-1, 1, 1)).unsqueeze(1)
    n = torch.tensor([5.0, 3.0, 1.0], device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    weight = torch.add(n, sixths).remainder_(6).sub_(2).abs_().sub_(1).clamp_(0, 1)
    return weight.mul_(chroma.unsqueeze(1)).add_(low.unsqueeze(1))


def grayscale(images: torch.Tensor) -> torch.Tensor:
    """Luma repeated over three channels, so grayscale views keep the encoder's input shape."""
    return rgb_to_grayscale(images).expand(-1, 3, -1, -1).contiguous()


def blur_kernel_size(side: int, fraction: float) -> int:
    """Odd kernel of about ``fraction`` of the image side: ``2 * (side * fraction // 2) + 1``, at least 3.

    As SimCLR's reference code (``data_util.py``: ``kernel_size = image_size // 10``,
    ``radius = kernel_size // 2``, kernel ``2 * radius + 1``): 23 at 224, 9 at 96, 3 at 32.
    """
    return max(3, 2 * (int(side * fraction) // 2) + 1)


def gaussian_kernels(sigmas: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Normalised 1-D Gaussian kernels ``(N, kernel_size)``, one per sigma (torchvision's sampling)."""
    half = (kernel_size - 1) / 2
    x = torch.linspace(-half, half, kernel_size, device=sigmas.device, dtype=sigmas.dtype)
    weights = torch.exp(-0.5 * (x.unsqueeze(0) / sigmas.unsqueeze(1)) ** 2)
    # Tails below 1e-30 (small sigmas) would be denormal floats, which make CPU convolutions crawl.
    weights = torch.where(weights < 1e-30, torch.zeros_like(weights), weights)
    return weights / weights.sum(dim=1, keepdim=True)


def gaussian_blur(images: torch.Tensor, sigmas: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Separable Gaussian blur with one sigma per sample and reflect padding (as torchvision).

    The batch is folded into channels, ``(1, N*3, H, W)``, so one grouped (depthwise)
    convolution per axis blurs every image with its own kernel.
    """
    n, c, h, w = images.shape
    kernels = gaussian_kernels(sigmas.to(images.dtype), kernel_size).repeat_interleave(c, dim=0)
    pad = kernel_size // 2
    x = F.pad(images.reshape(1, n * c, h, w), (pad, pad, pad, pad), mode="reflect")
    x = F.conv2d(x, kernels.view(n * c, 1, 1, kernel_size), groups=n * c)
    x = F.conv2d(x, kernels.view(n * c, 1, kernel_size, 1), groups=n * c)
    return x.view(n, c, h, w)


def solarize(images: torch.Tensor, flags: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Invert the pixels at or above ``threshold`` (``x -> 1 - x``) in the images whose flag is True."""
    return torch.where(flags.view(-1, 1, 1, 1) & (images >= threshold), 1 - images, images)
