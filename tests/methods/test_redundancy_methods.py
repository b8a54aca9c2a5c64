"""Barlow Twins and VICReg as methods: separate per-view passes, diagnostics, and the papers' optimiser
groups."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from edgessl.augment import byol_views
from edgessl.methods import Method
from edgessl.methods.barlowtwins import BarlowTwins
from edgessl.methods.losses import BarlowTwinsLoss, VICRegLoss
from edgessl.methods.vicreg import VICReg
from edgessl.training.optim import build_optimizer
from edgessl.training.schedules import build_scheduler

SmallMethod = Callable[..., Method]


def uint8_batch(n: int = 6, size: int = 32) -> torch.Tensor:
    torch.manual_seed(3)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8)


def test_both_use_byols_two_asymmetric_views(small_method: SmallMethod) -> None:
    first, second = byol_views()
    for name in ("barlowtwins", "vicreg"):
        method = small_method(name)
        assert (method.augment_first, method.augment_second) == (first, second)
        views = method.make_views(uint8_batch())
        assert [tuple(v.shape) for v in views] == [(6, 3, 32, 32)] * 2 and not torch.equal(*views)


@pytest.mark.parametrize("name", ["barlowtwins", "vicreg"])
def test_loss_embeds_each_view_separately_and_reports_its_terms(name: str, small_method: SmallMethod) -> None:
    torch.manual_seed(0)
    method = small_method(name, "shufflenetv2")  # BatchNorm: per-view and joint passes differ
    assert isinstance(method, BarlowTwins | VICReg)
    head = method.projector if isinstance(method, BarlowTwins) else method.expander
    views = method.make_views(uint8_batch())

    def embed(images: torch.Tensor) -> torch.Tensor:
        return head(method.encoder(method.normalize(images)))

    config = method.config
    if isinstance(method, BarlowTwins):
        reference = BarlowTwinsLoss(config.off_diagonal_weight)
    else:
        reference = VICRegLoss(
            config.invariance_weight, config.variance_weight, config.covariance_weight, config.variance_eps
        )
    expected = reference(embed(views[0]), embed(views[1]))
    got = method.loss(views)
    assert got.loss.item() == pytest.approx(expected.loss.item(), rel=1e-6)
    assert got.metrics.keys() == expected.metrics.keys()
    joint = embed(torch.cat(views))
    assert reference(joint[:6], joint[6:]).loss.item() != pytest.approx(got.loss.item(), rel=1e-3)
    terms = got.metrics
    if isinstance(method, BarlowTwins):
        weighted = terms["on_diagonal"] + 5e-3 * terms["off_diagonal"]
    else:
        weighted = 25 * terms["invariance"] + 25 * terms["variance"] + terms["covariance"]
    assert got.loss.item() == pytest.approx(weighted.item(), rel=1e-6)


def test_barlow_twins_biases_and_bn_learn_at_0_0048_and_skip_lars_and_decay(
    small_method: SmallMethod,
) -> None:
    method = small_method("barlowtwins", "shufflenetv2")
    config = method.config.optimizer
    # Barlow Twins section 2 at its batch of 2048: weights 0.2 x 2048/256 = 1.6, biases/BN 0.0048 x 8 = 0.0384
    optimizer = build_optimizer(method, config, batch_size=2048)
    weights, others = optimizer.param_groups
    assert (weights["lr"], weights["weight_decay"], weights["lars"]) == (pytest.approx(1.6), 1.5e-6, True)
    assert (others["lr"], others["weight_decay"], others["lars"]) == (pytest.approx(0.0384), 0.0, False)
    assert all(p.ndim > 1 for p in weights["params"]) and all(p.ndim == 1 for p in others["params"])
    trainable = [p for p in method.parameters() if p.requires_grad]
    assert len(weights["params"]) + len(others["params"]) == len(trainable)
    assert any(p is method.projector[1].weight for p in others["params"])  # a BN scale of the projector
    scheduler = build_scheduler(optimizer, config, steps_per_epoch=2, total_steps=40)  # 10 warm-up epochs
    for step in range(30):
        cosine = 1e-3 + (1 - 1e-3) * 0.5 * (1 + math.cos(math.pi * (step - 20) / 20))  # decays to 1/1000
        expected = 1.6 * ((step + 1) / 20 if step < 20 else cosine)
        assert weights["lr"] == pytest.approx(expected) and others["lr"] == pytest.approx(0.024 * expected)
        optimizer.step()
        scheduler.step()


def test_vicreg_has_one_rate_and_keeps_biases_and_bn_out_of_lars_and_decay(small_method: SmallMethod) -> None:
    method = small_method("vicreg", "shufflenetv2")
    optimizer = build_optimizer(method, method.config.optimizer, batch_size=2048)
    weights, others = optimizer.param_groups
    assert weights["lr"] == others["lr"] == pytest.approx(1.6)  # VICReg section 4: 0.2 x 2048/256
    assert (weights["weight_decay"], weights["lars"], others["weight_decay"], others["lars"]) == (
        1e-6,
        True,
        0.0,
        False,
    )
    assert all(p.ndim == 1 for p in others["params"])


def test_projectors_follow_the_papers_three_layers_without_output_bias(small_method: SmallMethod) -> None:
    for name in ("barlowtwins", "vicreg"):
        method = small_method(name, hidden_dim=24, out_dim=12)
        head = method.projector if isinstance(method, BarlowTwins) else method.expander
        kinds = [type(layer).__name__ for layer in head]
        assert kinds == ["Linear", "BatchNorm1d", "ReLU", "Linear", "BatchNorm1d", "ReLU", "Linear"]
        assert [layer.out_features for layer in head if isinstance(layer, torch.nn.Linear)] == [24, 24, 12]
        assert all(layer.bias is None for layer in head if isinstance(layer, torch.nn.Linear))
