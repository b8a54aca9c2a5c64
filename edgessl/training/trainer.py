"""The pretraining loop: Hugging Face Accelerate, uint8 batches, augmentation on the device.

``train(TrainConfig)`` runs on the CPU, one GPU, or several GPUs / nodes under
``accelerate launch`` with the same code. The whole dataset stays a uint8 tensor; each
epoch a seeded permutation of its indices is cut into global batches (``drop_last``),
each process takes its slice and moves it to its device, and the method makes its
views there — no PIL, no per-sample DataLoader workers.

Resuming is exact: the permutation of an epoch depends only on ``(seed, epoch)``, so
the sampler position is the step; checkpoints also hold the model (with momentum
targets and queues), optimiser, scheduler, grad scaler and every RNG state. Stops
happen only at optimiser-step boundaries — epoch ends, ``max_steps``, the time budget,
or Ctrl-C (the first one asks for a stop at the end of the current step and saves
``last.pt``; a second one aborts at once) — so a resumed run repeats no step and skips
none. A run killed outright (SIGKILL, power loss) restarts from its last ``last.pt``,
written at every epoch end.

Batch size is global: ``batch_size`` images per optimiser step across all processes
and accumulation steps, as the papers count it; it must divide by
``num_processes * grad_accum``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console

from edgessl import __version__
from edgessl.config import config_to_dict
from edgessl.errors import CheckpointError, ConfigError, EdgesslError, TrainingDiverged
from edgessl.files import ensure_writable_dir
from edgessl.methods import Method, build_method
from edgessl.training import run_folder
from edgessl.training.checkpoint import (
    CHECKPOINT_DIR,
    LAST,
    epoch_checkpoint_name,
    load_checkpoint,
    load_weights,
    save_checkpoint,
)
from edgessl.training.config import TrainConfig
from edgessl.training.optim import build_optimizer, build_scheduler, scaled_lr
from edgessl.training.progress import ProgressView, StopRequest
from edgessl.training.resolve import (
    CONFIG_FILE,
    config_yaml,
    resolve_method_config,
    resolved_train_config,
    resume_changes,
)
from edgessl.training.rng import rng_state, seed_everything, set_deterministic, set_rng_state
from edgessl.training.run_log import METRICS_FILE, MetricsLog
from edgessl.training.sampling import epoch_permutation, micro_batches, place_images, plan_batches

FLUSH_EVERY = (
    10  # optimiser steps between loss read-backs and cross-process stop checks (each waits for the device)
)
ENERGY_TOTALS = ("seconds", "energy_kwh", "co2_kg", "gpu_kwh", "cpu_kwh")  # summed across resumes


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


def checkpoint_bytes(model: torch.nn.Module) -> int:
    """Rough size of one checkpoint: weights plus up to two optimiser slots per parameter."""
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    return 3 * params + buffers


def checkpoints_to_write(config: TrainConfig, start_epoch: int) -> int:
    """Epoch checkpoints still to come, plus last.pt and one temporary file during a write."""
    remaining = range(start_epoch + 1, config.epochs + 1)
    return sum(1 for e in remaining if e % config.save_every == 0 or e == config.epochs) + 2


@dataclass
class RunState:
    """Where the run is: the sampler position is (epoch, batch_in_epoch), i.e. the step."""

    epoch: int = 0  # completed epochs
    step: int = 0  # completed optimiser steps, across resumes
    prior_seconds: float = 0.0  # training time of earlier segments of this run
    prior_energy: dict[str, Any] | None = None
    saved_step: int = 0  # the step the newest checkpoint on disk holds (a NaN message names it)
    resumes: tuple[dict[str, Any], ...] = ()  # each resume's step and the settings it changed

    def batch_in_epoch(self, steps_per_epoch: int) -> int:
        return self.step - self.epoch * steps_per_epoch


def make_accelerator(config: TrainConfig):  # -> accelerate.Accelerator
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs

    try:
        return Accelerator(
            mixed_precision=config.precision,
            gradient_accumulation_steps=config.grad_accum,
            # Methods keep cross-process state consistent themselves (MoCo enqueues every
            # process's keys); DDP's default would broadcast its 32 MB queue every step.
            kwargs_handlers=[DistributedDataParallelKwargs(broadcast_buffers=False)],
        )
    except (ValueError, RuntimeError) as exc:
        raise ConfigError(
            f"cannot train with precision '{config.precision}' here: {str(exc).splitlines()[0]}; try --precision no"
        ) from None


class Trainer:
    """One call of :func:`train`.

    The constructor validates and builds everything (data, method, batch plan, the
    checkpoint to resume) without writing a file, so rejected input leaves nothing
    behind; :meth:`run` takes the run folder's lock and trains.
    """

    def __init__(self, config: TrainConfig, resume: bool, console: Console, progress: bool) -> None:
        from edgessl.data import load_dataset

        self.console, self.show_progress = console, progress
        set_deterministic(config.deterministic)
        self.accelerator = make_accelerator(config)
        self.method_config = resolve_method_config(config)
        self.dataset = load_dataset(config.data, config.split, config.data_root, config.image_size)
        self.config = resolved_train_config(config, self.method_config, self.dataset.image_size)
        self.run_dir = Path(self.config.out)
        self.last_path = self.run_dir / CHECKPOINT_DIR / LAST
        seed_everything(config.seed)  # identical initial weights on every process
        self.method: Method = build_method(
            config.method,
            config.backbone,
            self.dataset.image_size,
            self.dataset.mean,
            self.dataset.std,
            self.method_config,
        )
        accelerator = self.accelerator
        self.plan = plan_batches(
            len(self.dataset),
            self.method_config.batch_size,
            accelerator.num_processes,
            accelerator.process_index,
            config.grad_accum,
        )
        self.total_steps = self.plan.steps_per_epoch * config.epochs
        self.changes: dict[str, tuple[Any, Any]] = {}  # what this resume changes, {field: (old, new)}
        self.resume_from = self._resume_point(resume)
        self.state = self._restore_model(*self.resume_from) if self.resume_from else RunState()
        self.method.to(accelerator.device)
        self.optimizer = build_optimizer(
            self.method, self.method_config.optimizer, self.method_config.batch_size
        )
        self.scheduler = build_scheduler(
            self.optimizer, self.method_config.optimizer, self.plan.steps_per_epoch, self.total_steps
        )
        self.model, self.optimizer = accelerator.prepare(self.method, self.optimizer)
        if self.resume_from:
            self._restore_training(self.resume_from[1])
        else:
            seed_everything(
                config.seed + 7919 * accelerator.process_index
            )  # a different augmentation stream per process
        self.images = place_images(self.dataset.images, accelerator.device)

    # ----------------------------------------------------------------------- resume

    def _resume_point(self, resume: bool) -> tuple[Path, dict[str, Any]] | None:
        """The newest complete checkpoint to continue, after checking that it can be honoured."""
        newest = run_folder.newest_checkpoint(self.run_dir)
        if newest is None:
            if resume:
                raise ConfigError(
                    f"nothing to resume: {self.run_dir} holds no checkpoint; drop --resume to start a new run"
                )
            return None
        if not resume:
            raise ConfigError(
                f"{self.run_dir} already holds a run; pass --resume to continue it or choose another --out"
            )
        previous = load_checkpoint(newest)
        meta = previous["metadata"]
        if (meta.get("method"), meta.get("backbone")) != (self.config.method, self.config.backbone):
            raise CheckpointError(
                f"{newest} is a {meta.get('method')} run on {meta.get('backbone')}, not {self.config.method} on {self.config.backbone}; "
                "choose another --out to start a new run"
            )
        if "optimizer" not in previous or "position" not in previous:
            raise CheckpointError(
                f"{newest} holds no training state to resume from; start a new run in another --out"
            )
        self.changes = resume_changes(
            meta.get("train_config", {}), self.config, int(previous["position"]["epoch"]), newest
        )
        return newest, previous

    def _restore_model(self, path: Path, previous: dict[str, Any]) -> RunState:
        load_weights(self.method, previous["model"], str(path))
        position = previous["position"]
        if position["steps_per_epoch"] != self.plan.steps_per_epoch:
            raise CheckpointError(
                f"{path} was trained with {position['steps_per_epoch']} steps per epoch, this run has {self.plan.steps_per_epoch}; "
                "resume with the same data and batch size"
            )
        meta = previous["metadata"]
        step = int(position["step"])
        resumes = (
            *meta.get("resumes", ()),
            {"step": step, "changes": {k: list(v) for k, v in self.changes.items()}},
        )
        return RunState(
            int(position["epoch"]),
            step,
            float(meta.get("train_seconds", 0.0)),
            meta.get("energy"),
            step,
            resumes,
        )

    def _restore_training(self, previous: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(previous["optimizer"])
        self.scheduler.load_state_dict(previous["scheduler"])
        self.scheduler.stretch(
            self.plan.steps_per_epoch, self.total_steps
        )  # a longer --epochs stretches the rest
        if "scaler" in previous and self.accelerator.scaler is not None:
            self.accelerator.scaler.load_state_dict(previous["scaler"])
        states = previous["rng"]
        index = self.accelerator.process_index
        if index < len(states):
            set_rng_state(states[index])
        else:  # more processes than the run had: fresh streams for the new ones
            seed_everything(self.config.seed + 7919 * index + self.state.step)

    # ----------------------------------------------------------------------- checkpoints

    def _energy(self, meter: Any) -> dict[str, Any] | None:
        if meter is None:
            return self.state.prior_energy
        current = meter.report().as_dict()
        prior = self.state.prior_energy or {}
        return {**current, **{k: float(prior.get(k, 0.0)) + float(current[k]) for k in ENERGY_TOTALS}}

    def _checkpoint(self, segment_start: float, meter: Any) -> dict[str, Any]:
        """The full training state at the current step boundary (collective: every process calls it)."""
        rng = [rng_state()]
        if self.accelerator.num_processes > 1:
            from accelerate.utils import gather_object

            rng = gather_object(rng)
        dataset = self.dataset
        metadata = {
            "method": self.config.method,
            "backbone": self.config.backbone,
            "method_config": config_to_dict(self.method_config),
            "train_config": config_to_dict(self.config),
            "dataset": self.config.data,
            "split": self.config.split,
            "num_images": len(dataset),
            "image_size": dataset.image_size,
            "mean": list(dataset.mean),
            "std": list(dataset.std),
            "epoch": self.state.epoch,
            "step": self.state.step,
            "train_seconds": self.state.prior_seconds + (time.perf_counter() - segment_start),
            "energy": self._energy(meter),
            "resumes": list(self.state.resumes),
            "edgessl_version": __version__,
        }
        state = {
            "metadata": metadata,
            "model": self.accelerator.unwrap_model(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "position": {
                "epoch": self.state.epoch,
                "step": self.state.step,
                "steps_per_epoch": self.plan.steps_per_epoch,
                "seed": self.config.seed,
            },
            "rng": rng,
        }
        if self.accelerator.scaler is not None:
            state["scaler"] = self.accelerator.scaler.state_dict()
        return state

    def _save(self, segment_start: float, meter: Any, epoch_file: bool) -> None:
        state = self._checkpoint(segment_start, meter)
        if self.accelerator.is_main_process:
            folder = self.run_dir / CHECKPOINT_DIR
            if epoch_file:
                save_checkpoint(state, folder / epoch_checkpoint_name(self.state.epoch))
            save_checkpoint(state, folder / LAST)
        self.state.saved_step = self.state.step
        self.accelerator.wait_for_everyone()

    # ----------------------------------------------------------------------- the loop

    def step(self, order: torch.Tensor, batch_in_epoch: int) -> torch.Tensor:
        """One optimiser step over ``grad_accum`` micro-batches; returns the mean loss (on the device)."""
        device = self.accelerator.device
        chunks = micro_batches(order, self.plan, batch_in_epoch)
        total = torch.zeros((), device=device)
        for index, chunk in enumerate(chunks):
            batch = self.images[chunk.to(self.images.device)].to(device, non_blocking=True)
            last = index == len(chunks) - 1
            with nullcontext() if last else self.accelerator.no_sync(self.model):
                loss, metrics = self.model(batch)
                self.accelerator.backward(loss)  # divides by grad_accum
            total += loss.detach().float()
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.state.step += 1
        self.accelerator.unwrap_model(self.model).after_optimizer_step(self.state.step / self.total_steps)
        return total / len(chunks)

    def _flush(
        self, pending: list[tuple[int, int, torch.Tensor, float]], log: MetricsLog | None, window_start: float
    ) -> tuple[float, float]:
        """Read back pending losses (one device sync) and log them; a NaN/inf loss stops the run after logging.

        The records up to the bad step are written first (the bad loss as ``null``), so
        the log shows where the run went wrong.
        """
        if not pending:
            return float("nan"), 0.0
        losses = torch.stack([loss for _, _, loss, _ in pending])
        if self.accelerator.num_processes > 1:
            losses = self.accelerator.reduce(losses, reduction="mean")
        values = losses.tolist()
        speed = len(pending) * self.plan.global_batch / max(time.perf_counter() - window_start, 1e-9)
        bad = next((index for index, value in enumerate(values) if not np.isfinite(value)), None)
        records = [
            {
                "step": step,
                "epoch": epoch,
                "loss": value if np.isfinite(value) else None,
                "lr": lr,
                "images_per_s": speed,
            }
            for (step, epoch, _, lr), value in zip(pending, values, strict=True)
        ]
        if log is not None:
            log.write(records if bad is None else records[: bad + 1])
        pending.clear()
        if bad is not None:
            step = records[bad]["step"]
            kept = (
                f"{self.last_path} (step {self.state.saved_step}) was kept"
                if self.state.saved_step
                else "no checkpoint was written"
            )
            raise TrainingDiverged(
                f"the loss became {values[bad]} at step {step}; training stopped and {kept}. "
                "Try a lower --lr, --precision no (fp32), or a longer warm-up (--set optimizer.warmup_epochs=N)"
            )
        return values[-1], speed

    def run(self) -> TrainResult:
        """Train under the run folder's lock (only the main process writes files)."""
        if not self.accelerator.is_main_process:
            self.accelerator.wait_for_everyone()
            return self._loop(None)
        with run_folder.locked(self.run_dir):
            if run_folder.newest_checkpoint(self.run_dir) != (
                self.resume_from[0] if self.resume_from else None
            ):
                raise run_folder.RunFolderBusy(
                    f"{self.run_dir} changed while this run started; run the command again"
                )
            run_folder.remove_stale_temp_files(self.run_dir)
            ensure_writable_dir(self.run_dir / CHECKPOINT_DIR)
            run_folder.check_free_space(
                self.run_dir,
                checkpoint_bytes(self.method) * checkpoints_to_write(self.config, self.state.epoch),
            )
            (self.run_dir / CONFIG_FILE).write_text(config_yaml(self.config))
            log = MetricsLog(self.run_dir / METRICS_FILE)
            log.truncate_after(self.state.step)
            self._announce()
            self.accelerator.wait_for_everyone()
            try:
                return self._loop(log)
            finally:
                log.close()

    def _loop(self, log: MetricsLog | None) -> TrainResult:
        config, plan, state = self.config, self.plan, self.state
        target = min(self.total_steps, config.max_steps or self.total_steps)
        view = ProgressView(self.console, self.show_progress and log is not None, target, state.step)
        stop = StopRequest()
        pending: list[tuple[int, int, torch.Tensor, float]] = []
        segment_start = window_start = time.perf_counter()
        steps_here, loss_value, halt = 0, float("nan"), False
        self.model.train()
        try:
            with stop.installed(), self._energy_meter() as meter:
                while state.step < target and not halt:
                    order = epoch_permutation(len(self.images), config.seed, state.epoch)
                    for batch_in_epoch in range(
                        state.batch_in_epoch(plan.steps_per_epoch), plan.steps_per_epoch
                    ):
                        lr = self.scheduler.get_last_lr()[0]
                        pending.append(
                            (state.step + 1, state.epoch + 1, self.step(order, batch_in_epoch), lr)
                        )
                        steps_here += 1
                        epoch_end = batch_in_epoch == plan.steps_per_epoch - 1
                        if (
                            len(pending) >= FLUSH_EVERY
                            or epoch_end
                            or state.step >= target
                            or self.accelerator.num_processes == 1
                        ):
                            out_of_time = (
                                config.time_budget_s is not None
                                and state.prior_seconds + time.perf_counter() - segment_start
                                >= config.time_budget_s
                            )
                            stop.requested, out_of_time = self._any_process(stop.requested, out_of_time)
                            halt = stop.requested or out_of_time or state.step >= target
                        if len(pending) >= FLUSH_EVERY or epoch_end or halt:
                            loss_value, speed = self._flush(pending, log, window_start)
                            window_start = time.perf_counter()
                            view.update(state.step, state.epoch + 1, loss_value, speed)
                        if halt:
                            break
                    if state.batch_in_epoch(plan.steps_per_epoch) == plan.steps_per_epoch:
                        state.epoch += 1
                        self._save(
                            segment_start,
                            meter,
                            state.epoch % config.save_every == 0 or state.epoch == config.epochs,
                        )
                if state.saved_step != state.step:
                    self._save(segment_start, meter, epoch_file=False)
        finally:
            view.close()
        seconds = time.perf_counter() - segment_start
        if stop.requested:
            raise TrainingInterrupted(self.last_path, state.step)
        return TrainResult(
            run_dir=self.run_dir,
            last_checkpoint=self.last_path,
            epochs_done=state.epoch,
            steps=state.step,
            train_seconds=state.prior_seconds + seconds,
            images_per_second=steps_here * plan.global_batch / max(seconds, 1e-9),
            final_loss=loss_value,
        )

    @contextmanager
    def _energy_meter(self) -> Iterator[Any]:
        """The profiling EnergyMeter over the loop; ``None`` (no energy record) when it cannot measure this device."""
        from edgessl.profiling.energy import EnergyMeter

        meter = EnergyMeter(self.accelerator.device)
        try:
            meter.__enter__()
        except EdgesslError as exc:  # an unlisted GPU without NVML: train anyway
            self.console.print(f"energy not recorded: {exc}", markup=False)
            yield None
            return
        try:
            yield meter
        finally:
            meter.__exit__(None, None, None)

    def _any_process(self, *flags: bool) -> tuple[bool, ...]:
        """Each flag true on every process when it is true on any: one reduce of one tensor (a stop happens at the same step everywhere)."""
        if self.accelerator.num_processes == 1:
            return flags
        summed = self.accelerator.reduce(
            torch.tensor([float(f) for f in flags], device=self.accelerator.device), reduction="sum"
        )
        return tuple(bool(value > 0) for value in summed.tolist())

    def _announce(self) -> None:
        config, plan = self.config, self.plan
        changed = ", ".join(f"{key} {old} -> {new}" for key, (old, new) in self.changes.items())
        what = (
            f"resuming from step {self.state.step}" + (f" ({changed})" if changed else "")
            if self.resume_from
            else "training"
        )
        self.console.print(
            f"{what}: {config.method} on {config.backbone}, {len(self.dataset):,} images {self.dataset.image_size}px, "
            f"batch {plan.global_batch} ({self.accelerator.num_processes} process(es) x {config.grad_accum} accumulation), "
            f"lr {scaled_lr(self.method_config.optimizer, plan.global_batch):.4g} ({self.method_config.optimizer.name}), "
            f"{plan.steps_per_epoch} steps/epoch x {config.epochs} epochs on {self.accelerator.device} -> {self.run_dir}",
            highlight=False,
        )


def train(
    config: TrainConfig, resume: bool = False, console: Console | None = None, progress: bool = True
) -> TrainResult:
    """Pretrain ``config.method`` on ``config.backbone``; ``resume`` continues the run's newest checkpoint.

    Raises :class:`TrainingDiverged` on a NaN/inf loss (the last good checkpoint is kept),
    :class:`TrainingInterrupted` after Ctrl-C (``last.pt`` saved at the current step),
    and :class:`EdgesslError` subclasses for anything the user can fix, before any file is written.
    """
    return Trainer(config, resume, console or Console(), progress).run()
