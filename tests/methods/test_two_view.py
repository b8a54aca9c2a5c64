"""The two-view base: what SimCLR, MoCo v2, BYOL, Barlow Twins and VICReg no longer write themselves."""

from __future__ import annotations

import pytest
import torch

from edgessl.augment import ViewAugment, byol_views
from edgessl.backbones import build_backbone
from edgessl.methods import MethodConfig, method_class
from edgessl.methods.base import lars_optimizer, momentum_target
from edgessl.methods.two_view import TwoViewMethod

MEAN, STD = (0.45, 0.44, 0.40), (0.25, 0.25, 0.26)
TWO_VIEW = ["simclr", "mocov2", "byol", "barlowtwins", "vicreg"]


class Agreement(TwoViewMethod):
    """The smallest two-view method: the features of the two views agree."""

    name = "agreement"

    def __init__(self, backbone: str, config: MethodConfig, image_size: int, mean, std) -> None:
        super().__init__(backbone, config, image_size, mean, std, views=byol_views())
        self.head = torch.nn.Linear(self.encoder.feature_dim, 4)

    def pair_loss(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        return (self.head(self.features(first)) - self.head(self.features(second))).pow(2).mean()


def uint8_batch() -> torch.Tensor:
    return torch.randint(
        0, 256, (4, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1)
    )


def test_the_views_are_the_first_recipe_then_the_second_and_the_loss_takes_them_by_name() -> None:
    torch.manual_seed(0)
    method = Agreement("squeezenet", MethodConfig(), 32, MEAN, STD)
    images = uint8_batch()
    torch.manual_seed(5)
    first, second = method.make_views(images)
    torch.manual_seed(5)
    assert torch.equal(first, method.augment_first(images, 32))
    assert torch.equal(second, method.augment_second(images, 32))
    assert method.loss((first, second)).item() == method.pair_loss(first, second).item()
    assert method(images).loss.requires_grad and method(images).metrics == {}


def test_the_encoder_is_built_first_from_the_seed_and_is_the_representation() -> None:
    torch.manual_seed(0)
    method = Agreement("squeezenet", MethodConfig(), 32, MEAN, STD)
    torch.manual_seed(0)
    alone = build_backbone("squeezenet")
    assert all(
        torch.equal(a, b) for a, b in zip(method.encoder.state_dict().values(), alone.state_dict().values())
    )
    assert method.representation().encoder is method.encoder
    images = torch.rand(2, 3, 32, 32)
    assert torch.equal(method.features(images), method.encoder(method.normalize(images)))


@pytest.mark.parametrize("name", TWO_VIEW)
def test_every_two_view_method_is_one(name: str) -> None:
    assert issubclass(method_class(name), TwoViewMethod)


def test_symmetric_methods_draw_both_views_from_one_recipe(small_method) -> None:
    for name in ("simclr", "mocov2"):
        method = small_method(name)
        assert isinstance(method.augment_first, ViewAugment) and method.augment_first is method.augment_second


def test_lars_optimizer_is_byols_setup_with_the_papers_differences_as_arguments() -> None:
    config = lars_optimizer(lr=0.2, weight_decay=1e-6, final_lr_scale=2e-3)
    assert (config.name, config.lr, config.reference_batch_size, config.weight_decay, config.momentum) == (
        "lars",
        0.2,
        256,
        1e-6,
        0.9,
    )
    assert (config.warmup_epochs, config.schedule, config.final_lr_scale, config.exclude_bias_and_norm) == (
        10,
        "cosine",
        2e-3,
        True,
    )


def test_a_momentum_target_is_an_exact_copy_without_gradients() -> None:
    online = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    target = momentum_target(online)
    for p_online, p_target in zip(online.state_dict().values(), target.state_dict().values(), strict=True):
        assert torch.equal(p_online, p_target) and p_online.data_ptr() != p_target.data_ptr()
    assert not any(p.requires_grad for p in target.parameters()) and all(
        p.requires_grad for p in online.parameters()
    )
