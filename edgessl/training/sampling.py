"""Which images each process takes at each optimiser step: a pure function of (seed, epoch, step).

Each epoch a seeded permutation of the dataset's indices is cut into global batches
(``drop_last``); each process takes its slice and splits it into accumulation
micro-batches. Because the order depends only on ``(seed, epoch)``, the sampler position
of a resumed run is just its step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from edgessl.errors import ConfigError, DataError


@dataclass(frozen=True)
class BatchPlan:
    """How a global batch is split: per process, then into accumulation micro-batches."""

    global_batch: int
    num_processes: int
    process_index: int
    grad_accum: int
    steps_per_epoch: int

    @property
    def per_process(self) -> int:
        return self.global_batch // self.num_processes

    @property
    def micro_batch(self) -> int:
        return self.per_process // self.grad_accum


def plan_batches(
    num_images: int, global_batch: int, num_processes: int, process_index: int, grad_accum: int
) -> BatchPlan:
    if global_batch % (num_processes * grad_accum):
        raise ConfigError(
            f"batch size {global_batch} does not split into {num_processes} process(es) x {grad_accum} "
            "accumulation step(s); "
            f"use a multiple of {num_processes * grad_accum}"
        )
    steps = num_images // global_batch
    if steps == 0:
        raise DataError(
            f"the dataset has {num_images} images, fewer than one batch of {global_batch}; lower --batch-size"
        )
    return BatchPlan(global_batch, num_processes, process_index, grad_accum, steps)


def epoch_permutation(num_images: int, seed: int, epoch: int) -> torch.Tensor:
    """The epoch's shuffled order; a function of (seed, epoch) only, so every process and every resume
    agrees."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(num_images, generator=generator)


def micro_batches(order: torch.Tensor, plan: BatchPlan, batch_in_epoch: int) -> list[torch.Tensor]:
    """This process's micro-batch indices for one optimiser step (the last partial batch is dropped)."""
    start = batch_in_epoch * plan.global_batch + plan.process_index * plan.per_process
    return list(order[start : start + plan.per_process].split(plan.micro_batch))
