"""What pretraining costs: measured images/s of a real step, projected to epochs, energy and CO2.

One step is what the trainer runs: ``loss = method(images_uint8)`` (augmentation on the
device, forward of every branch), ``loss.backward()``, an optimiser step and the
method's momentum update. The first ``warmup`` steps are not timed (allocator, oneDNN
kernel selection). The time per STL-10 pretext epoch is ``STL10_PRETEXT_IMAGES /
images_per_second`` and N epochs take N times that: data loading is excluded (edgessl
keeps datasets in memory as uint8, so it is small), and so are evaluation passes.

Energy is measured (or modelled) by :class:`EnergyMeter` over the timed steps and scaled
to the projected time, i.e. the power drawn during the measured steps is assumed to hold.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from edgessl.energy import EnergyMeter, EnergyReport
from edgessl.methods.base import Method
from edgessl.profiling.latency import torch_threads
from edgessl.training.optim import build_optimizer

STL10_PRETEXT_IMAGES = 100_000  # STL-10's unlabelled split, the study's pretext set


@dataclass
class TrainingCost:
    """Measured pretraining throughput and what it implies for a full run."""

    method: str
    backbone: str
    image_size: int
    batch_size: int
    steps: int
    warmup: int
    threads: int
    device: str
    optimizer: str
    images_per_second: float
    epochs: int
    epoch_images: int = STL10_PRETEXT_IMAGES
    energy_per_epoch: EnergyReport | None = None

    @property
    def seconds_per_step(self) -> float:
        return self.batch_size / self.images_per_second

    @property
    def seconds_per_epoch(self) -> float:
        return self.epoch_images / self.images_per_second

    @property
    def projected_seconds(self) -> float:
        return self.seconds_per_epoch * self.epochs

    def projected_energy(self) -> EnergyReport | None:
        return None if self.energy_per_epoch is None else self.energy_per_epoch.scaled(self.epochs)

    def as_dict(self) -> dict[str, Any]:
        values = asdict(self)
        projected = self.projected_energy()
        values.update(
            seconds_per_step=self.seconds_per_step,
            seconds_per_epoch=self.seconds_per_epoch,
            projected_seconds=self.projected_seconds,
            energy_per_epoch=None if self.energy_per_epoch is None else self.energy_per_epoch.as_dict(),
            projected_energy=None if projected is None else projected.as_dict(),
        )
        return values


def time_training_steps(
    model: Method, images: torch.Tensor, steps: int, warmup: int, meter: EnergyMeter
) -> None:
    """Run ``warmup`` then ``steps`` trainer steps of ``model`` on ``images``; ``meter`` spans the timed ones."""
    model.train()
    optimizer = build_optimizer(model, model.config.optimizer, len(images))  # the trainer's, LARS included
    total = max(warmup + steps, 1)

    def step(index: int) -> None:
        optimizer.zero_grad(set_to_none=True)
        model(images).loss.backward()
        optimizer.step()
        model.after_optimizer_step(index / total)

    for index in range(warmup):
        step(index)
    with meter:
        for index in range(warmup, warmup + steps):
            step(index)


def measure_training_throughput(
    method: str,
    backbone: str,
    image_size: int = 96,
    batch_size: int = 32,
    steps: int = 5,
    warmup: int = 2,
    device: str | torch.device = "cpu",
    threads: int = 1,
    epochs: int = 1,
    meter: EnergyMeter | None = None,
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5),
    std: tuple[float, float, float] = (0.25, 0.25, 0.25),
    seed: int = 0,
) -> TrainingCost:
    """Time ``steps`` real pretraining steps of ``method`` on random uint8 images.

    ``mean``/``std`` only shift the normalisation and do not change the cost. ``meter``
    (default: an :class:`EnergyMeter` on ``device`` with its defaults) measures the timed
    steps; its report is scaled to one epoch.
    """
    from edgessl.methods import build_method

    device = torch.device(device)
    with torch_threads(threads):
        torch.manual_seed(seed)
        model = build_method(method, backbone, image_size, mean, std).to(device)
        images = torch.randint(
            0, 256, (batch_size, 3, image_size, image_size), dtype=torch.uint8, device=device
        )
        meter = meter if meter is not None else EnergyMeter(device)
        time_training_steps(model, images, steps, warmup, meter)
        measured = meter.report()
    images_per_second = batch_size * steps / measured.seconds
    epoch_scale = STL10_PRETEXT_IMAGES / (batch_size * steps)
    return TrainingCost(
        method=method,
        backbone=backbone,
        image_size=image_size,
        batch_size=batch_size,
        steps=steps,
        warmup=warmup,
        threads=threads,
        device=str(device),
        optimizer=model.config.optimizer.name,
        images_per_second=images_per_second,
        epochs=epochs,
        energy_per_epoch=measured.scaled(epoch_scale),
    )
