"""Optimisers and schedules: LARS against a hand-written update, warm-up + cosine values, registry names."""

from __future__ import annotations

import io
import math

import pytest
import torch
from torch import nn

from edgessl.errors import ConfigError, UnknownNameError
from edgessl.methods import Method, MethodConfig, OptimizerConfig, ParamGroup
from edgessl.training.optim import LARS, OPTIMIZERS, build_optimizer, torch_param_groups
from edgessl.training.schedules import build_scheduler


def test_lars_matches_hand_computed_update_and_skips_biases_and_norms() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    start = {name: p.detach().clone() for name, p in model.named_parameters()}
    lr, momentum, wd, eta = 0.5, 0.9, 1e-2, 1e-3
    config = OptimizerConfig(name="lars", weight_decay=wd, exclude_bias_and_norm=True)
    optimizer = LARS(torch_param_groups(model, config, lr), lr=lr, momentum=momentum, trust_coefficient=eta)
    grads = []
    for _ in range(2):
        optimizer.zero_grad()
        model(torch.randn(8, 4)).pow(2).sum().backward()
        grads.append({name: p.grad.clone() for name, p in model.named_parameters()})
        optimizer.step()
    for name, param in model.named_parameters():
        w, v = start[name].clone(), None
        for g in (step[name] for step in grads):
            if name == "0.weight":  # the only matrix: decayed and scaled by eta * |w| / |g + wd w|
                g = g + wd * w
                g = g * eta * w.norm() / g.norm()
            v = g if v is None else momentum * v + g
            w = w - lr * v
        torch.testing.assert_close(param.detach(), w, msg=name)
    assert [group["lars"] for group in optimizer.param_groups] == [True, False]
    # weight | bias, BN weight, BN bias
    assert [len(group["params"]) for group in optimizer.param_groups] == [1, 3]


def test_lars_state_round_trips_weights_only() -> None:
    model = nn.Linear(3, 2)
    optimizer = build_optimizer(
        model, OptimizerConfig(name="lars", lr=0.3, weight_decay=1e-6), batch_size=512
    )
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.6)  # 0.3 x 512 / 256
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    buffer = io.BytesIO()
    torch.save(optimizer.state_dict(), buffer)
    buffer.seek(0)
    again = build_optimizer(nn.Linear(3, 2), OptimizerConfig(name="lars"), batch_size=256)
    again.load_state_dict(torch.load(buffer, weights_only=True))
    assert again.param_groups[0]["lr"] == pytest.approx(0.6)


def test_every_registered_optimiser_takes_a_step() -> None:
    for name in OPTIMIZERS:
        model = nn.Linear(3, 1)
        before = model.weight.detach().clone()
        optimizer = build_optimizer(
            model, OptimizerConfig(name=name, lr=0.1, weight_decay=1e-4), batch_size=256
        )
        model(torch.ones(2, 3)).sum().backward()
        optimizer.step()
        assert not torch.equal(model.weight, before), name
    with pytest.raises(UnknownNameError, match="lars"):
        build_optimizer(nn.Linear(1, 1), OptimizerConfig(name="larss"), 256)


def test_warmup_then_cosine_per_step_and_constant() -> None:
    param = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=1.0)
    scheduler = build_scheduler(
        optimizer, OptimizerConfig(warmup_epochs=2, schedule="cosine"), steps_per_epoch=5, total_steps=30
    )
    lrs = []
    for _ in range(30):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[:10] == pytest.approx([(i + 1) / 10 for i in range(10)])
    assert lrs[10] == pytest.approx(1.0) and lrs[20] == pytest.approx(0.5 * (1 + math.cos(math.pi * 10 / 20)))
    assert lrs[29] == pytest.approx(0.5 * (1 + math.cos(math.pi * 19 / 20)))
    constant = build_scheduler(torch.optim.SGD([param], lr=2.0), OptimizerConfig(schedule="constant"), 5, 30)
    assert constant.get_last_lr() == [2.0]
    with pytest.raises(UnknownNameError):
        build_scheduler(optimizer, OptimizerConfig(schedule="cosin"), 5, 30)


class TwoGroups(Method):
    """A method that declares its own groups: biases at a tenth of the rate, no decay on the second layer."""

    name = "two-groups"

    def __init__(self) -> None:
        super().__init__("none", MethodConfig(), 8, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
        self.first, self.second = nn.Linear(3, 3), nn.Linear(3, 1)

    def make_views(self, images):
        return images

    def loss(self, views):
        return self.second(self.first(views)).pow(2).mean()

    def representation(self):
        raise NotImplementedError

    def param_groups(self) -> list[ParamGroup]:
        return [
            ParamGroup([self.first.weight, self.second.weight]),
            ParamGroup([self.first.bias], lr_scale=0.1),
            ParamGroup([self.second.bias], weight_decay=0.0),
        ]


def test_method_param_groups_keep_their_lr_scale_and_decay_through_the_schedule() -> None:
    config = OptimizerConfig(name="sgd", lr=0.2, weight_decay=1e-3, warmup_epochs=1)
    optimizer = build_optimizer(TwoGroups(), config, batch_size=512)  # 0.2 x 512 / 256 = 0.4
    scheduler = build_scheduler(optimizer, config, steps_per_epoch=4, total_steps=20)
    for _ in range(7):
        optimizer.step()
        scheduler.step()
    lrs = [group["lr"] for group in optimizer.param_groups]
    assert lrs[1] == pytest.approx(0.1 * lrs[0]) and lrs[2] == pytest.approx(lrs[0])
    # step 7: 3 of 16 decay steps
    assert lrs[0] == pytest.approx(0.4 * 0.5 * (1 + math.cos(math.pi * 3 / 16)))
    assert [group["weight_decay"] for group in optimizer.param_groups] == [1e-3, 1e-3, 0.0]


def test_optimizer_kwargs_reach_the_optimiser_and_wrong_ones_are_one_line() -> None:
    optimizer = build_optimizer(
        nn.Linear(2, 2), OptimizerConfig(name="adam", kwargs={"betas": (0.5, 0.999)}), 256
    )
    assert optimizer.param_groups[0]["betas"] == (0.5, 0.999)
    with pytest.raises(ConfigError, match="do not fit sgd"):
        build_optimizer(nn.Linear(2, 2), OptimizerConfig(name="sgd", kwargs={"betas": (0.5, 0.999)}), 256)


def test_weight_decay_schedule_is_a_cosine_from_start_to_end_on_decayed_groups_only() -> None:
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    config = OptimizerConfig(name="sgd", weight_decay=0.04, weight_decay_end=0.4, exclude_bias_and_norm=True)
    optimizer = build_optimizer(model, config, 256)
    scheduler = build_scheduler(optimizer, config, steps_per_epoch=5, total_steps=10)
    decays = []
    for _ in range(10):
        decays.append([group["weight_decay"] for group in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    expected = [0.4 + (0.04 - 0.4) * 0.5 * (1 + math.cos(math.pi * step / 10)) for step in range(10)]
    assert [d[0] for d in decays] == pytest.approx(expected) and all(d[1] == 0.0 for d in decays)
    with pytest.raises(ConfigError, match="weight_decay_end needs a positive"):
        build_scheduler(optimizer, OptimizerConfig(weight_decay=0.0, weight_decay_end=0.1), 5, 10)


def test_schedule_ends_at_final_lr_scale_of_the_peak() -> None:
    param = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=2.0)
    scheduler = build_scheduler(optimizer, OptimizerConfig(final_lr_scale=1e-3, schedule="cosine"), 5, 10)
    lrs = []
    for _ in range(11):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[0] == pytest.approx(2.0) and lrs[-1] == pytest.approx(2.0 * 1e-3)
    assert lrs[5] == pytest.approx(2.0 * (1e-3 + (1 - 1e-3) * 0.5))  # half way down the cosine


def test_rotnet_step_schedule_divides_by_five_at_30_60_and_80_percent() -> None:
    param = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.1)
    scheduler = build_scheduler(
        optimizer, OptimizerConfig(schedule="step"), steps_per_epoch=10, total_steps=100
    )
    lrs = []
    for _ in range(100):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    # The released config's LUT_lr: 0.1 for epochs 0-29, 0.02 to 59, 0.004 to 79, 0.0008 to 99.
    assert [lrs[i] for i in (0, 29, 30, 59, 60, 79, 80, 99)] == pytest.approx(
        [0.1, 0.1, 0.02, 0.02, 0.004, 0.004, 0.0008, 0.0008]
    )


def test_lr_scaling_linear_and_square_root() -> None:
    from edgessl.training.optim import scaled_lr

    linear = OptimizerConfig(lr=0.3, reference_batch_size=256)
    sqrt = OptimizerConfig(lr=1.2, reference_batch_size=256, lr_scaling="sqrt")
    assert scaled_lr(linear, 1024) == pytest.approx(1.2)
    # SimCLR appendix B.1: 0.075 x sqrt(B), i.e. 1.2 at 256 and 2.4 at 1024.
    assert scaled_lr(sqrt, 1024) == pytest.approx(0.075 * math.sqrt(1024))
    assert scaled_lr(sqrt, 64) == pytest.approx(0.075 * math.sqrt(64))
    with pytest.raises(UnknownNameError):
        scaled_lr(OptimizerConfig(lr_scaling="cubic"), 256)
