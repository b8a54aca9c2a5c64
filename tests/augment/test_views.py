"""The random view pipelines: contract, exact special cases, randomness and presets."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF

from edgessl.augment import ViewAugment, byol_views, mocov2_view, rotate_all_four, simclr_view
from edgessl.errors import ConfigError, DataError

# Every operation off and the crop covering the whole image: the pipeline is a resize.
PLAIN = ViewAugment(
    crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), hflip_p=0.0, jitter_p=0.0, grayscale_p=0.0, blur_p=0.0
)
PRESETS = {
    "simclr": simclr_view(),
    "mocov2": mocov2_view(),
    "byol1": byol_views()[0],
    "byol2": byol_views()[1],
}


@pytest.fixture
def images() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randint(0, 256, (8, 3, 20, 20), dtype=torch.uint8)


@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize(("in_shape", "out_size", "side"), [((20, 20), None, 20), ((20, 28), 16, 16)])
def test_presets_give_float_views_in_unit_range(name: str, in_shape, out_size, side: int) -> None:
    batch = torch.randint(0, 256, (8, 3, *in_shape), dtype=torch.uint8)
    views = PRESETS[name](batch, out_size)
    assert views.shape == (8, 3, side, side) and views.dtype == torch.float32
    assert views.min() >= 0 and views.max() <= 1
    assert batch.dtype == torch.uint8  # the input is not modified


def test_uint8_and_float_inputs_give_the_same_views(images: torch.Tensor) -> None:
    torch.manual_seed(3)
    from_uint8 = simclr_view()(images)
    torch.manual_seed(3)
    floats = images.float() / 255
    from_float = simclr_view()(floats)
    torch.testing.assert_close(from_uint8, from_float)
    assert torch.equal(floats, images.float() / 255)  # a float input is not modified in place


def test_views_stay_float32_under_mixed_precision(images: torch.Tensor) -> None:
    torch.manual_seed(5)
    expected = simclr_view()(images)
    torch.manual_seed(5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        views = simclr_view()(images)
    assert views.dtype == torch.float32
    assert torch.equal(views, expected)


def test_full_crop_is_a_plain_resize(images: torch.Tensor) -> None:
    floats = images.float() / 255
    assert torch.equal(PLAIN(images), floats)
    resized = F.interpolate(floats, size=30, mode="bilinear", align_corners=False)
    torch.testing.assert_close(PLAIN(images, 30), resized, atol=2e-6, rtol=0)


def test_flip_with_p1_mirrors_every_image(images: torch.Tensor) -> None:
    flipped = ViewAugment(**{**PLAIN.__dict__, "hflip_p": 1.0})(images)
    assert torch.equal(flipped, torch.flip(images.float() / 255, dims=[-1]))


def test_grayscale_with_p1_matches_torchvision(images: torch.Tensor) -> None:
    gray = ViewAugment(**{**PLAIN.__dict__, "grayscale_p": 1.0})(images)
    expected = TF.rgb_to_grayscale(images.float() / 255, num_output_channels=3)
    torch.testing.assert_close(gray, expected, atol=1e-6, rtol=0)


def test_blur_with_fixed_sigma_matches_torchvision(images: torch.Tensor) -> None:
    aug = ViewAugment(
        **{**PLAIN.__dict__, "blur_p": 1.0, "blur_sigma": (1.3, 1.3), "blur_kernel_fraction": 0.25}
    )
    expected = TF.gaussian_blur(images.float() / 255, [5, 5], [1.3, 1.3])  # 2 * (20 * 0.25 // 2) + 1
    torch.testing.assert_close(aug(images), expected, atol=1e-6, rtol=0)


def test_solarize_with_p1_is_exact(images: torch.Tensor) -> None:
    solarized = ViewAugment(**{**PLAIN.__dict__, "solarize_p": 1.0})(images)
    assert torch.equal(solarized, TF.solarize(images.float() / 255, 0.5))


def test_coin_flips_hit_their_probability() -> None:
    torch.manual_seed(0)
    batch = torch.randint(0, 256, (2000, 3, 2, 2), dtype=torch.uint8)
    gray = ViewAugment(**{**PLAIN.__dict__, "grayscale_p": 0.2})(batch)
    fraction = float((gray[:, 0] == gray[:, 1]).all(-1).all(-1).float().mean())
    assert 0.17 < fraction < 0.23


def test_each_sample_gets_its_own_parameters() -> None:
    same = torch.randint(0, 256, (1, 3, 24, 24), dtype=torch.uint8).expand(16, -1, -1, -1)
    torch.manual_seed(0)
    views = simclr_view()(same).flatten(1)
    distinct = torch.cdist(views, views) + torch.eye(16)
    assert (distinct > 1e-3).all()


def test_same_seed_same_views_and_generator_is_honoured(images: torch.Tensor) -> None:
    aug = byol_views()[1]
    torch.manual_seed(7)
    first = aug(images)
    torch.manual_seed(7)
    assert torch.equal(aug(images), first)
    assert not torch.equal(aug(images), first)  # the RNG moved on
    assert torch.equal(aug(images, generator=torch.Generator().manual_seed(7)), first)


def test_jitter_changes_colours_only_when_its_coin_is_on(images: torch.Tensor) -> None:
    jitter_only = {**PLAIN.__dict__, "jitter_p": 1.0}
    torch.manual_seed(0)
    jittered = ViewAugment(**jitter_only)(images)
    assert ((jittered - images.float() / 255).abs().flatten(1).amax(1) > 0.01).all()
    off = ViewAugment(**{**jitter_only, "jitter_p": 0.0})(images)
    assert torch.equal(off, images.float() / 255)


def test_presets_carry_their_papers_numbers() -> None:
    simclr, moco, (byol1, byol2) = simclr_view(), mocov2_view(), byol_views()
    assert (simclr.brightness, simclr.hue, simclr.crop_scale) == (0.8, 0.2, (0.08, 1.0))
    assert (moco.brightness, moco.hue, moco.crop_scale, moco.blur_p) == (0.4, 0.1, (0.2, 1.0), 0.5)
    assert (byol1.saturation, byol1.blur_p, byol1.solarize_p) == (0.2, 1.0, 0.0)
    assert (byol2.saturation, byol2.blur_p, byol2.solarize_p) == (0.2, 0.1, 0.2)


@pytest.mark.parametrize(
    "bad",
    [
        {"hflip_p": 1.5},
        {"crop_scale": (0.5, 0.2)},
        {"hue": 0.7},
        {"brightness": -1.0},
        {"blur_sigma": (0, 1)},
    ],
)
def test_invalid_settings_are_config_errors(bad: dict) -> None:
    with pytest.raises(ConfigError):
        ViewAugment(**bad)


def test_wrong_layout_is_a_data_error() -> None:
    with pytest.raises(DataError, match=r"\(N, 3, H, W\)"):
        simclr_view()(torch.zeros(2, 1, 8, 8, dtype=torch.uint8))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_views_are_made_on_the_gpu_reproducibly(images: torch.Tensor) -> None:
    on_gpu = images.cuda()
    torch.cuda.manual_seed(0)
    views = byol_views()[0](on_gpu)
    torch.cuda.manual_seed(0)
    assert views.device == on_gpu.device and torch.equal(byol_views()[0](on_gpu), views)
    assert torch.equal(rotate_all_four(on_gpu)[0].cpu(), rotate_all_four(images)[0])


def test_rotate_all_four_is_exact_with_labels(images: torch.Tensor) -> None:
    rotated, labels = rotate_all_four(images)
    n = images.shape[0]
    assert rotated.shape == (4 * n, 3, 20, 20) and rotated.dtype == torch.uint8
    assert labels.dtype == torch.int64 and labels.tolist() == [k for k in range(4) for _ in range(n)]
    for k in range(4):
        assert torch.equal(rotated[k * n : (k + 1) * n], torch.rot90(images, k, dims=(2, 3)))
    # 90 degrees counter-clockwise: the top row becomes the left column, read bottom-up.
    assert torch.equal(rotated[n, :, :, 0].flip(-1), images[0, :, 0, :])


def test_rotation_needs_square_images() -> None:
    with pytest.raises(DataError, match="square"):
        rotate_all_four(torch.zeros(2, 3, 8, 10))
