"""One optimiser step: the unit the trainer loops over and the profiler times.

A step takes a list of index micro-batches into the uint8 dataset (one per accumulation
step; :func:`~edgessl.training.sampling.micro_batches`), takes their images on the device
from its :mod:`~edgessl.training.batches` feeder (which may already be moving the next
step's), and for each runs the method's forward (its views are made there) and accelerate's
backward, with gradient synchronisation only on the last; then gradient clipping, the
method's pre-step hook, the optimiser, the schedules and the method's momentum update.
The trainer and ``edgessl profile`` build it with the same :func:`build_train_step`, so
the images/s a profile reports are those of this code, not of a second hand-made loop.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch

from edgessl.methods import Method, StepOutput, TrainingProgress
from edgessl.training.batches import BatchFeeder, build_feeder
from edgessl.training.optim import OptimizerConfig, build_optimizer, check_clipping, clip_gradients
from edgessl.training.schedules import Schedules, build_scheduler


@dataclass
class TrainStep:
    """What one optimiser step updates (accelerate-prepared model and optimiser, schedules) and samples
    from."""

    accelerator: Any  # accelerate.Accelerator
    model: torch.nn.Module  # the method, wrapped by accelerate (DDP under several processes)
    optimizer: torch.optim.Optimizer
    scheduler: Schedules
    feeder: BatchFeeder  # the uint8 dataset's micro-batches, on the device
    optimizer_config: OptimizerConfig  # gradient clipping

    @property
    def images(self) -> torch.Tensor:
        return self.feeder.images

    @property
    def method(self) -> Method:
        return self.accelerator.unwrap_model(self.model)

    def __call__(
        self,
        chunks: list[torch.Tensor],
        progress: TrainingProgress,
        upcoming: list[torch.Tensor] | None = None,
    ) -> StepOutput:
        """One step over the micro-batches ``chunks``, the run's step ``progress.step``.

        ``upcoming`` (the next step's micro-batches, when there is one) starts moving
        while this step runs. The mean loss and the diagnostics stay on the device
        (reading them waits for it).
        """
        device, method = self.accelerator.device, self.method
        method.progress = progress
        batches = self.feeder.take(chunks)
        if upcoming is not None:
            self.feeder.prefetch(upcoming)
        total, metrics = torch.zeros((), device=device), {}
        for index, batch in enumerate(batches):
            with nullcontext() if index == len(chunks) - 1 else self.accelerator.no_sync(self.model):
                out = self.model(batch)
                self.accelerator.backward(out.loss)  # divides by grad_accum
            total += out.loss.detach().float()
            for name, value in out.metrics.items():
                metrics[name] = metrics.get(name, 0.0) + value.detach().float() / len(chunks)
        if self.optimizer_config.clip_grad_norm is not None:
            self.accelerator.unscale_gradients()  # fp16: clip the true gradients (a no-op otherwise)
            clip_gradients(self.optimizer, self.optimizer_config)
        method.before_optimizer_step()
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        method.after_optimizer_step((progress.step + 1) / progress.total_steps)  # the fraction done after it
        return StepOutput(total / len(chunks), metrics)


def build_train_step(
    accelerator: Any,
    method: Method,
    *,
    optimizer_config: OptimizerConfig,
    batch_size: int,
    steps_per_epoch: int,
    total_steps: int,
    images: torch.Tensor,
) -> TrainStep:
    """The step of ``method`` on ``accelerator``'s device: optimiser at ``batch_size``'s scaled lr,
    schedules, images fed."""
    check_clipping(optimizer_config)
    method.to(accelerator.device)
    optimizer = build_optimizer(method, optimizer_config, batch_size)
    scheduler = build_scheduler(optimizer, optimizer_config, steps_per_epoch, total_steps)
    model, optimizer = accelerator.prepare(method, optimizer)
    feeder = build_feeder(images, accelerator.device)
    return TrainStep(accelerator, model, optimizer, scheduler, feeder, optimizer_config)
