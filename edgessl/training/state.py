"""Everything a resume restores, in one object: weights, optimiser, schedules, scaler, RNG streams, position.

:class:`TrainingState` is what goes into a checkpoint besides its metadata; its
``state_dict()`` holds only tensors and primitives, so checkpoints load with
``torch.load(weights_only=True)``. The sampler position is ``(epoch, step)``: the order of
an epoch depends only on ``(seed, epoch)`` (:mod:`edgessl.training.sampling`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgessl.checkpoints import load_weights
from edgessl.distributed import average_batchnorm_statistics
from edgessl.errors import CheckpointError
from edgessl.training.rng import rng_state, seed_everything, set_rng_state

if TYPE_CHECKING:
    from edgessl.training.step import TrainStep


@dataclass
class Position:
    """Where the run is, and what it has spent: the sampler position is the step."""

    epoch: int = 0  # completed epochs
    step: int = 0  # completed optimiser steps, across resumes
    prior_seconds: float = 0.0  # training time of earlier segments of this run
    prior_energy: dict[str, Any] | None = None
    saved_step: int = 0  # the step the newest checkpoint on disk holds (a NaN message names it)
    resumes: tuple[dict[str, Any], ...] = ()  # each resume's step and the settings it changed

    def batch_in_epoch(self, steps_per_epoch: int) -> int:
        return self.step - self.epoch * steps_per_epoch


class TrainingState:
    """The resumable state of a run; every process holds one (RNG streams are per process)."""

    def __init__(self, train_step: TrainStep, steps_per_epoch: int, seed: int) -> None:
        self.train_step = train_step  # the model, optimiser, schedules and accelerator whose state this is
        self.steps_per_epoch, self.seed = steps_per_epoch, seed
        self.position = Position()

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint body at the current step boundary (collective: every process calls it)."""
        rng = [rng_state()]
        if self.train_step.accelerator.num_processes > 1:
            from accelerate.utils import gather_object

            rng = gather_object(rng)
            # Unsynchronised BatchNorm layers hold per-process statistics: save (and continue
            # with) their mean, the same on every process.
            average_batchnorm_statistics(self.train_step.model)
        position = self.position
        state = {
            "model": self.train_step.method.state_dict(),
            "optimizer": self.train_step.optimizer.state_dict(),
            "scheduler": self.train_step.scheduler.state_dict(),
            "position": {
                "epoch": position.epoch,
                "step": position.step,
                "steps_per_epoch": self.steps_per_epoch,
                "seed": self.seed,
            },
            "rng": rng,
        }
        if self.train_step.accelerator.scaler is not None:
            state["scaler"] = self.train_step.accelerator.scaler.state_dict()
        return state

    def load_state_dict(
        self, checkpoint: dict[str, Any], source: Path, changes: dict[str, tuple[Any, Any]]
    ) -> None:
        """Continue from ``checkpoint``; ``changes`` (what this resume changes) is recorded for the
        metadata."""
        saved = checkpoint["position"]
        if saved["steps_per_epoch"] != self.steps_per_epoch:
            raise CheckpointError(
                f"{source} was trained with {saved['steps_per_epoch']} steps per epoch, "
                f"this run has {self.steps_per_epoch}; "
                "resume with the same data and batch size"
            )
        load_weights(self.train_step.method, checkpoint["model"], str(source))
        self.train_step.optimizer.load_state_dict(checkpoint["optimizer"])
        self.train_step.scheduler.load_state_dict(checkpoint["scheduler"])
        if "scaler" in checkpoint and self.train_step.accelerator.scaler is not None:
            self.train_step.accelerator.scaler.load_state_dict(checkpoint["scaler"])
        meta, step = checkpoint["metadata"], int(saved["step"])
        resume = {"step": step, "changes": {key: list(pair) for key, pair in changes.items()}}
        self.position = Position(
            int(saved["epoch"]),
            step,
            float(meta.get("train_seconds", 0.0)),
            meta.get("energy"),
            step,
            (*meta.get("resumes", ()), resume),
        )
        index = self.train_step.accelerator.process_index
        if index < len(checkpoint["rng"]):
            set_rng_state(checkpoint["rng"][index])
        else:  # more processes than the run had: fresh streams for the new ones
            seed_everything(self.seed + 7919 * index + step)


def checkpoint_metadata(config: Any, dataset: Any, accelerator: Any, position: Position) -> dict[str, Any]:
    """What a checkpoint says about its run (the trainer adds ``train_seconds`` and ``energy``).

    ``config`` is the resolved run's ``train`` (:class:`~edgessl.training.resolve.ResolvedRun`),
    stored once as ``train_config``; its method config is rebuilt from it
    (:func:`~edgessl.methods.method_config_of_run`).
    """
    from edgessl import __version__
    from edgessl.config import config_to_dict

    return {
        "method": config.method, "recipe": config.recipe, "backbone": config.backbone, "dataset": config.data,
        "split": config.split,
        "train_config": config_to_dict(config),
        "num_images": len(dataset), "image_size": dataset.image_size, "mean": list(dataset.mean),
        "std": list(dataset.std),
        "epoch": position.epoch, "step": position.step, "resumes": list(position.resumes),
        "num_processes": accelerator.num_processes, "mixed_precision": accelerator.mixed_precision,
        "edgessl_version": __version__,
    }  # fmt: skip


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped training at a step boundary after ``last.pt`` was saved."""

    def __init__(self, checkpoint: Path, step: int) -> None:
        super().__init__(f"interrupted at step {step}; saved {checkpoint}")
        self.checkpoint, self.step = checkpoint, step


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    last_checkpoint: Path
    epochs_done: int  # completed epochs
    steps: int  # optimiser steps in all, across resumes
    train_seconds: float  # wall-clock training time, across resumes
    images_per_second: float  # of this call's steps
    final_loss: float
    steps_per_epoch: int

    def progress_words(self) -> str:
        """``3 epoch(s)``, or where a stop fell inside an epoch ``0 full epoch(s) + 5/10 steps of epoch 1``:
        the same epoch number the progress bar showed."""
        partial = self.steps - self.epochs_done * self.steps_per_epoch
        if partial == 0:
            return f"{self.epochs_done} epoch(s)"
        return (
            f"{self.epochs_done} full epoch(s) + {partial}/{self.steps_per_epoch} steps of epoch "
            f"{self.epochs_done + 1}"
        )
