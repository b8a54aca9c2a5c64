"""What pretraining costs: measured images/s of the trainer's step, projected to epochs, energy and CO2.

The timed step is the trainer's own :class:`~edgessl.training.step.TrainStep`, built by
the same :func:`~edgessl.training.step.build_train_step`: the method's forward on uint8
images (augmentation on the device, every branch), accelerate's backward, the method's
optimiser (LARS included) and schedules, and its momentum update. The first ``warmup``
steps are not timed (allocator, oneDNN kernel selection). The time per STL-10 pretext epoch is
``STL10_PRETEXT_IMAGES / images_per_second`` and N epochs take N times that: data loading is
excluded (edgessl keeps datasets in memory as uint8, so it is small), and so are evaluation passes.

Energy is measured (or modelled) by :class:`EnergyMeter` over the timed steps and scaled
to the projected time, i.e. the power drawn during the measured steps is assumed to hold.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from edgessl.energy import EnergyMeter, EnergyReport
from edgessl.errors import ConfigError
from edgessl.methods import TrainingProgress
from edgessl.profiling.latency import torch_threads
from edgessl.training.step import TrainStep, build_train_step

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


def time_training_steps(step: TrainStep, steps: int, warmup: int, meter: EnergyMeter) -> None:
    """Run ``warmup`` then ``steps`` optimiser steps of ``step`` on all its images; ``meter`` spans the
    timed ones."""
    step.model.train()
    # One step an "epoch", so first-epoch rules (DINO's frozen last layer) end with the warm-up as in a
    # real run.
    batch, total = [torch.arange(len(step.images))], max(warmup + steps, 1)
    for index in range(warmup):
        step(batch, TrainingProgress(index, 1, total), batch)
    with meter:
        for index in range(warmup, warmup + steps):
            step(batch, TrainingProgress(index, 1, total), batch if index + 1 < total else None)
    step.feeder.close()


def profiling_accelerator(device: torch.device):  # -> accelerate.Accelerator
    """A one-process fp32 Accelerator on ``device`` (a caller may still autocast around the steps).

    accelerate keeps one device and precision per process, so a process that already
    trains otherwise cannot profile here: that is a clear error, not a silent measurement
    of another device or precision.
    """
    from accelerate import Accelerator

    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)
    try:
        accelerator = Accelerator(cpu=device.type == "cpu", mixed_precision="no")
    except ValueError:
        accelerator = None
    if accelerator is None or accelerator.device.type != device.type:
        raise ConfigError(
            f"cannot profile training on {device}: this process already runs accelerate on another "
            "device or precision; profile in a process of its own"
        )
    return accelerator


def measure_training_throughput(
    method: str,
    backbone: str,
    *,
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
        model = build_method(method, backbone, image_size, mean, std)
        images = torch.randint(0, 256, (batch_size, 3, image_size, image_size), dtype=torch.uint8)
        accelerator = profiling_accelerator(device)
        step = build_train_step(
            accelerator,
            model,
            optimizer_config=model.config.optimizer,
            batch_size=batch_size,
            steps_per_epoch=1,
            total_steps=warmup + steps,
            images=images,
        )
        meter = meter if meter is not None else EnergyMeter(device)
        time_training_steps(step, steps, warmup, meter)
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
