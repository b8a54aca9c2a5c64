"""Training cost: real optimiser steps are timed, and the projections follow from the rate."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch
from torch import nn

from edgessl.energy import EnergyMeter, EnergyReport
from edgessl.errors import ConfigError
from edgessl.methods.base import Method, MethodConfig, Representation
from edgessl.profiling.training_cost import (
    STL10_PRETEXT_IMAGES,
    TrainingCost,
    measure_training_throughput,
    profiling_accelerator,
    time_training_steps,
)
from edgessl.training.optim import OptimizerConfig
from edgessl.training.step import build_train_step

# accelerate keeps one device per process: profile where this process's trainer tests train
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


class _TinyMethod(Method):
    """A minimal method: predict the mean colour of the image from its features."""

    name = "tiny"

    def __init__(self) -> None:
        super().__init__("shufflenetv2", MethodConfig(), 16, (0.5,) * 3, (0.25,) * 3)
        self.encoder = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(4, 3)

    def make_views(self, images: torch.Tensor) -> Any:
        return self.normalize(images.float() / 255)

    def loss(self, views: Any) -> torch.Tensor:
        return ((self.head(self.encoder(views)) - views.mean(dim=(2, 3))) ** 2).mean()

    def representation(self) -> Representation:
        return Representation(self.normalize, self.encoder, 4)


def test_timed_steps_are_the_trainers_steps() -> None:
    """Weights learn, the loss falls, and the schedules advance once per step, as in training."""
    torch.manual_seed(0)
    model = _TinyMethod()
    before = model.head.weight.detach().clone()
    images = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8)
    with torch.no_grad():
        loss_before = model(images).loss.item()
    step = build_train_step(
        profiling_accelerator(torch.device("cpu")),
        model,
        optimizer_config=OptimizerConfig(),
        batch_size=4,
        steps_per_epoch=1,
        total_steps=4,
        images=images,
    )
    meter = EnergyMeter("cpu")
    time_training_steps(step, steps=3, warmup=1, meter=meter)
    assert not torch.equal(before, model.head.weight)  # backward and optimiser steps ran
    with torch.no_grad():
        assert model(images.to(DEVICE)).loss.item() < loss_before
    assert step.scheduler.lr.last_epoch == 4  # the hand-made step the profiler used to time had no schedule
    assert meter.report().seconds > 0


def test_projection_arithmetic() -> None:
    energy = EnergyReport(seconds=1000.0, energy_kwh=0.01, co2_kg=0.0042, source="tdp-model")
    cost = TrainingCost(
        "simclr",
        "resnet18",
        96,
        32,
        3,
        1,
        2,
        "cpu",
        "adam",
        images_per_second=100.0,
        epochs=100,
        energy_per_epoch=energy,
    )
    assert cost.seconds_per_epoch == STL10_PRETEXT_IMAGES / 100.0 == 1000.0
    assert cost.projected_seconds == 100_000.0 and cost.seconds_per_step == pytest.approx(0.32)
    projected = cost.projected_energy()
    assert (
        projected is not None
        and projected.energy_kwh == pytest.approx(1.0)
        and projected.co2_kg == pytest.approx(0.42)
    )
    assert cost.as_dict()["projected_energy"]["seconds"] == pytest.approx(100_000.0)


def test_real_method_step_is_measured() -> None:
    cost = measure_training_throughput(
        "simclr", "shufflenetv2", image_size=32, batch_size=4, steps=1, warmup=1, device=DEVICE, epochs=10
    )
    assert cost.images_per_second > 0 and cost.energy_per_epoch is not None
    assert cost.projected_seconds == pytest.approx(10 * STL10_PRETEXT_IMAGES / cost.images_per_second)


@pytest.fixture
def fresh_accelerate_state() -> Iterator[None]:
    """accelerate's process-wide state forgotten before and after (accelerate's own tests reset it so)."""
    from accelerate.state import AcceleratorState, GradientState

    def reset() -> None:
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()

    reset()
    yield
    reset()


@pytest.mark.usefixtures("fresh_accelerate_state")
def test_profiling_refuses_a_process_that_trains_at_another_precision() -> None:
    from accelerate import Accelerator

    Accelerator(cpu=True, mixed_precision="bf16")  # what a bf16 run earlier in this process leaves
    with pytest.raises(ConfigError, match="profile in a process of its own"):
        profiling_accelerator(torch.device("cpu"))
