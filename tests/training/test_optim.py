"""Optimisers and schedules: LARS against a hand-written update, warm-up + cosine values, registry names."""

from __future__ import annotations

import io
import math

import pytest
import torch
from torch import nn

from edgessl.errors import UnknownNameError
from edgessl.methods import OptimizerConfig
from edgessl.training.optim import LARS, OPTIMIZERS, build_optimizer, build_scheduler, lars_param_groups


def test_lars_matches_hand_computed_update_and_skips_biases_and_norms() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    start = {name: p.detach().clone() for name, p in model.named_parameters()}
    lr, momentum, wd, eta = 0.5, 0.9, 1e-2, 1e-3
    optimizer = LARS(
        lars_param_groups(model, wd), lr=lr, momentum=momentum, weight_decay=wd, trust_coefficient=eta
    )
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
    assert [len(group["params"]) for group in optimizer.param_groups] == [
        1,
        3,
    ]  # weight | bias, BN weight, BN bias


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
