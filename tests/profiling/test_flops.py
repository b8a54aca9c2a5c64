"""MAC counts: exact on hand-computable layers, the study's row for its five networks, and
the thop / torch.utils.flop_counter cross-check catching what thop misses."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from edgessl.backbones import STUDY_MACS_224, build_backbone
from edgessl.profiling.flops import count_compute, count_macs, count_parameters


def _tiny() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 10),
    )


def test_conv_and_linear_macs_match_hand_count() -> None:
    count = count_compute(_tiny(), image_size=16)
    conv = 8 * 16 * 16 * 3 * 3 * 3  # out channels x out pixels x (in channels x kernel)
    linear = 8 * 10
    assert count.thop_matmul_conv_macs == conv + linear
    assert count.flop_counter_macs == conv + linear
    assert count.macs >= conv + linear  # thop adds the average pool's adds
    assert count.flops == 2 * count.macs
    assert count.agrees and count.relative_difference == 0.0
    assert count_macs(_tiny(), 16) == count.macs  # the lead's signature still answers thop's total


# The study's row (Table 1, "Avg. FLOPs", thop-style multiply-accumulates at 224x224) was
# measured WITH each network's ImageNet classifier; edgessl's encoders have none, so the
# classifier's MACs are added back: a feature_dim x 1000 linear layer, except SqueezeNet
# whose classifier is a 1x1 conv 512 -> 1000 on its 13x13 map. The comparison uses the
# conv/linear MACs (where thop and flop_counter agree exactly): thop's total also counts
# 2 ops per BatchNorm element, +9% / +11% on MobileNetV2 / ShuffleNetV2, which the
# study's figures (the papers' multiply-add counts) do not include.
_HEAD_MACS_224 = {
    "efficientnet_lite0": 1280 * 1000,
    "mobilenetv2": 1280 * 1000,
    "resnet18": 512 * 1000,
    "shufflenetv2": 1024 * 1000,
    "squeezenet": 512 * 1000 * 13 * 13,
}

# thop totals of the encoders at 96x96 (STL-10), pinned so a change of variant shows.
_ENCODER_MACS_96 = {
    "efficientnet_lite0": 70_526_432,
    "mobilenetv2": 59_928_320,
    "resnet18": 334_932_992,
    "shufflenetv2": 8_008_864,
    "squeezenet": 42_690_240,
}


@pytest.mark.parametrize("name", sorted(STUDY_MACS_224))
def test_study_backbones_match_the_study_row_and_both_counters_agree(name: str) -> None:
    encoder = build_backbone(name)
    at_224 = count_compute(encoder, 224)
    assert at_224.agrees, (
        f"{name}: thop {at_224.thop_matmul_conv_macs:.4g} vs flop_counter {at_224.flop_counter_macs:.4g}"
    )
    with_head = at_224.flop_counter_macs + _HEAD_MACS_224[name]
    assert with_head == pytest.approx(STUDY_MACS_224[name], rel=0.10)
    assert count_macs(encoder, 96) == _ENCODER_MACS_96[name]


class _FunctionalHead(nn.Module):
    """A conv followed by a projection done with torch.matmul on a bare parameter: thop sees no module for
    it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1, bias=False)
        self.projection = nn.Parameter(torch.randn(4 * 8 * 8, 256))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.matmul(torch.flatten(self.conv(images), 1), self.projection)


class _SubclassedConv(nn.Conv2d):
    """Like timm's Conv2dSame: a subclass thop does not recognise (it matches exact types)."""


def test_functional_op_that_thop_misses_is_flagged_with_both_numbers() -> None:
    count = count_compute(_FunctionalHead(), image_size=8)
    conv, matmul = 4 * 8 * 8 * 3, 4 * 8 * 8 * 256
    assert count.thop_matmul_conv_macs == conv  # thop counted the conv only
    assert count.flop_counter_macs == conv + matmul
    assert not count.agrees
    assert count.relative_difference == pytest.approx(matmul / (conv + matmul))


def test_subclassed_module_that_thop_misses_is_flagged() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3), _SubclassedConv(8, 8, 3), nn.Flatten(), nn.LazyLinear(2))
    model(torch.zeros(1, 3, 12, 12))  # materialise the lazy layer
    count = count_compute(model, 12)
    assert not count.agrees and count.flop_counter_macs > count.thop_matmul_conv_macs


def test_functional_linear_is_counted_by_flop_counter() -> None:
    class Functional(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.randn(5, 3 * 4 * 4))

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            return F.linear(torch.flatten(images, 1), self.weight)

    count = count_compute(Functional(), 4)
    assert count.flop_counter_macs == 5 * 48 and count.thop_matmul_conv_macs == 0 and not count.agrees


def test_parameter_count_separates_frozen_parameters() -> None:
    model = _tiny()
    model[0].weight.requires_grad_(False)
    params = count_parameters(model)
    assert params.total == 8 * 3 * 9 + 8 * 10 + 10
    assert params.trainable == 8 * 10 + 10
