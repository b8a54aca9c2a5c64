"""The batched operations against torchvision's per-image definitions."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from torchvision.transforms import RandomResizedCrop

from edgessl.augment import functional as AF


@pytest.fixture
def batch() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.rand(6, 3, 12, 10)


@pytest.fixture
def posterised() -> torch.Tensor:
    """Few grey levels, so many pixels have tied channels or no chroma (hue's edge cases)."""
    torch.manual_seed(1)
    return torch.randint(0, 4, (6, 3, 12, 10)) / 3.0


def per_image(fn, images: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    return torch.stack([fn(image, float(p)) for image, p in zip(images, params)])


@pytest.mark.parametrize(
    ("ours", "reference", "low", "high"),
    [
        (AF.adjust_brightness, TF.adjust_brightness, 0.0, 2.0),
        (AF.adjust_contrast, TF.adjust_contrast, 0.0, 2.0),
        (AF.adjust_saturation, TF.adjust_saturation, 0.0, 2.0),
        (AF.adjust_hue, TF.adjust_hue, -0.5, 0.5),
    ],
    ids=["brightness", "contrast", "saturation", "hue"],
)
@pytest.mark.parametrize("images", ["batch", "posterised"])
def test_colour_ops_match_torchvision(ours, reference, low, high, images, request) -> None:
    images = request.getfixturevalue(images)
    factors = torch.linspace(low, high, images.shape[0])
    torch.testing.assert_close(
        ours(images, factors), per_image(reference, images, factors), atol=2e-6, rtol=0
    )


def test_grayscale_matches_torchvision(batch: torch.Tensor) -> None:
    expected = torch.stack([TF.rgb_to_grayscale(image, num_output_channels=3) for image in batch])
    torch.testing.assert_close(AF.grayscale(batch), expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("kernel", [3, 5, 9])
def test_blur_per_sample_sigma_matches_torchvision(batch: torch.Tensor, kernel: int) -> None:
    sigmas = torch.tensor([0.1, 0.3, 0.7, 1.0, 1.5, 2.0])
    expected = torch.stack(
        [TF.gaussian_blur(image, [kernel, kernel], [float(s), float(s)]) for image, s in zip(batch, sigmas)]
    )
    torch.testing.assert_close(AF.gaussian_blur(batch, sigmas, kernel), expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize(("side", "kernel"), [(224, 23), (96, 9), (32, 3), (8, 3)])
def test_blur_kernel_is_odd_tenth_of_the_side(side: int, kernel: int) -> None:
    assert AF.blur_kernel_size(side, 0.1) == kernel


def test_solarize_is_exact_and_only_where_flagged(batch: torch.Tensor) -> None:
    flags = torch.tensor([True, False, True, True, False, True])
    out = AF.solarize(batch, flags)
    for image, result, flag in zip(batch, out, flags):
        assert torch.equal(result, TF.solarize(image, 0.5) if flag else image)


@pytest.mark.parametrize("size", [5, 10, 23])  # shrink (antialiased), keep, enlarge
def test_crop_matches_torchvision_resized_crop_and_flip(size: int) -> None:
    torch.manual_seed(0)
    images = torch.rand(8, 3, 12, 16)
    boxes = AF.sample_crop_boxes(8, 12, 16, (0.08, 1.0), (3 / 4, 4 / 3), torch.device("cpu"))
    flips = torch.tensor([True, False] * 4)
    out = AF.resized_crop(images, boxes, size, flips)
    for image, box, flip, result in zip(images, boxes.int().tolist(), flips, out):
        left, top, right, bottom = box
        expected = TF.resized_crop(image, top, left, bottom - top, right - left, [size, size], antialias=True)
        torch.testing.assert_close(result, expected.flip(-1) if flip else expected, atol=3e-6, rtol=0)


def test_full_box_crop_is_a_plain_resize() -> None:
    images = torch.rand(3, 3, 16, 16)
    full = torch.tensor([[0.0, 0.0, 16.0, 16.0]]).expand(3, 4)
    assert torch.equal(AF.resized_crop(images, full, 16), images)
    upsampled = F.interpolate(images, size=24, mode="bilinear", align_corners=False)
    torch.testing.assert_close(AF.resized_crop(images, full, 24), upsampled, atol=2e-6, rtol=0)


def test_crop_boxes_follow_torchvision_distribution() -> None:
    scale, ratio, n = (0.08, 1.0), (3 / 4, 4 / 3), 4000
    torch.manual_seed(0)
    boxes = AF.sample_crop_boxes(n, 48, 64, scale, ratio, torch.device("cpu"))
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    assert torch.equal(w, w.round()) and torch.equal(h, h.round())
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= 64).all() and (boxes[:, 3] <= 48).all()
    image = torch.empty(3, 48, 64)
    reference = torch.tensor(
        [RandomResizedCrop.get_params(image, list(scale), list(ratio)) for _ in range(n)]
    )
    ref_h, ref_w = reference[:, 2].float(), reference[:, 3].float()
    assert abs(float((w * h).mean() - (ref_w * ref_h).mean())) / (48 * 64) < 0.02
    assert abs(float((w / h).log().mean() - (ref_w / ref_h).log().mean())) < 0.03
    # Integer sides are rounded, so the ratio may overshoot its range by a rounding step.
    assert ((w / h).log().abs() <= math.log(4 / 3) + 0.1).all()


def test_crop_falls_back_to_a_centre_crop_when_nothing_fits() -> None:
    # A 10x40 strip cannot hold a crop of 90% of its area with a ratio near 1.
    boxes = AF.sample_crop_boxes(5, 10, 40, (0.9, 1.0), (0.9, 1.1), torch.device("cpu"))
    expected = torch.tensor([[(40 - 11) // 2, 0, (40 - 11) // 2 + 11, 10]], dtype=torch.float32)
    assert torch.equal(boxes, expected.expand(5, 4))


def test_padded_random_crop_matches_torchvision_random_crop_and_flip_per_sample() -> None:
    images = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8)
    out = AF.padded_random_crop(images, 2, 0.5, torch.Generator().manual_seed(3))
    assert out.dtype == torch.uint8 and out.shape == images.shape
    # The same draws, in the same order, replayed per image with torchvision's crop and flip.
    draws = torch.Generator().manual_seed(3)
    top = torch.randint(0, 5, (6, 1), generator=draws)
    left = torch.randint(0, 5, (6, 1), generator=draws)
    flips = torch.rand(6, generator=draws) < 0.5
    for i in range(6):
        padded = TF.pad(images[i], [2])  # zero fill, as RandomCrop(padding=2)
        expected = TF.crop(padded, int(top[i]), int(left[i]), 8, 8)
        expected = TF.hflip(expected) if flips[i] else expected
        assert torch.equal(out[i], expected), i
    assert flips.any() and not flips.all()  # both branches were checked


def test_padded_random_crop_without_padding_or_flip_is_the_identity() -> None:
    images = torch.rand(3, 3, 5, 5)
    assert torch.equal(AF.padded_random_crop(images, 0, 0.0), images)
