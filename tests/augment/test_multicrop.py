"""Multi-crop: how many views, at which sizes, reproducibly, and DINO's per-view settings."""

from __future__ import annotations

import pytest
import torch

from edgessl.augment import MultiCrop, ViewAugment, dino_multicrop, local_crop_side
from edgessl.errors import ConfigError


@pytest.fixture
def images() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randint(0, 256, (6, 3, 24, 24), dtype=torch.uint8)


@pytest.mark.parametrize("local_crops", [0, 3])
def test_two_global_and_n_local_float_views_of_their_own_sizes(
    images: torch.Tensor, local_crops: int
) -> None:
    augment = dino_multicrop(global_size=20, local_size=9, local_crops=local_crops)
    views = augment(images)
    assert len(views) == augment.crops == 2 + local_crops
    assert [tuple(v.shape) for v in views] == [(6, 3, 20, 20)] * 2 + [(6, 3, 9, 9)] * local_crops
    assert all(v.dtype == torch.float32 and v.min() >= 0 and v.max() <= 1 for v in views)
    assert images.dtype == torch.uint8  # the batch itself is untouched


def test_a_seeded_generator_reproduces_every_view_and_another_seed_does_not(images: torch.Tensor) -> None:
    augment = dino_multicrop(global_size=16, local_size=8, local_crops=2)
    first = augment(images, generator=torch.Generator().manual_seed(5))
    again = augment(images, generator=torch.Generator().manual_seed(5))
    other = augment(images, generator=torch.Generator().manual_seed(6))
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert all(not torch.equal(a, b) for a, b in zip(first, other, strict=True))
    # and the views of one call are distinct draws, not copies of one another
    assert not torch.equal(first[0], first[1]) and not torch.equal(first[2], first[3])


def test_dino_views_differ_only_in_blur_solarisation_and_crop_scale() -> None:
    augment = dino_multicrop(
        global_size=32, local_size=14, local_crops=8, global_scale=(0.14, 1.0), local_scale=(0.05, 0.14)
    )
    (first, second), local = augment.global_views, augment.local_view
    assert (first.blur_p, first.solarize_p) == (1.0, 0.0)  # DataAugmentationDINO global_transfo1
    assert (second.blur_p, second.solarize_p) == (0.1, 0.2)  # global_transfo2
    assert (local.blur_p, local.solarize_p) == (0.5, 0.0)  # local_transfo
    assert first.crop_scale == second.crop_scale == (0.14, 1.0) and local.crop_scale == (0.05, 0.14)
    shared = (
        "hflip_p",
        "jitter_p",
        "brightness",
        "contrast",
        "saturation",
        "hue",
        "grayscale_p",
        "blur_sigma",
    )
    expected = (0.5, 0.8, 0.4, 0.4, 0.2, 0.1, 0.2, (0.1, 2.0))
    for view in (first, second, local):
        assert tuple(getattr(view, name) for name in shared) == expected


def test_only_the_second_global_view_is_solarised() -> None:
    """White images stay >= 0.6 under every other operation (brightness >= 0.6; the rest keep a constant
    image); solarisation takes them to <= 0.4, so the solarised samples can be counted."""
    white = torch.full((400, 3, 8, 8), 255, dtype=torch.uint8)
    torch.manual_seed(0)
    views = dino_multicrop(global_size=8, local_size=4, local_crops=2)(white)
    solarised = [float((view.amax(dim=(1, 2, 3)) <= 0.4).float().mean()) for view in views]
    assert solarised[0] == 0.0 and solarised[2:] == [0.0, 0.0]
    assert 0.15 < solarised[1] < 0.25  # p 0.2


def test_defaults_are_main_dinos_arguments() -> None:
    augment = dino_multicrop(global_size=224, local_size=96)
    assert augment.local_crops == 8  # --local_crops_number 8
    assert augment.global_views[0].crop_scale == (0.4, 1.0)  # --global_crops_scale 0.4 1
    assert augment.local_view.crop_scale == (0.05, 0.4)  # --local_crops_scale 0.05 0.4


@pytest.mark.parametrize(("image_size", "local"), [(224, 96), (96, 41), (64, 27), (32, 14), (16, 7)])
def test_local_side_is_96_224ths_of_the_image(image_size: int, local: int) -> None:
    assert local_crop_side(image_size) == local


def test_bad_layouts_are_config_errors() -> None:
    view = ViewAugment()
    with pytest.raises(ConfigError, match="no larger than the global"):
        MultiCrop((view, view), view, 2, global_size=16, local_size=20)
    with pytest.raises(ConfigError, match=">= 0"):
        MultiCrop((view, view), view, -1, global_size=16, local_size=8)
    with pytest.raises(ConfigError, match="exactly two"):
        MultiCrop((view,), view, 2, global_size=16, local_size=8)  # type: ignore[arg-type]
