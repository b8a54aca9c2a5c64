"""The pretraining loop: Hugging Face Accelerate, uint8 batches, augmentation on the device.

``train(TrainConfig)`` runs on the CPU, one GPU, or several GPUs / nodes under
``accelerate launch`` with the same code. The whole dataset stays a uint8 tensor; each
epoch a seeded permutation of its indices is cut into global batches (``drop_last``),
each process takes its slice and moves it to its device, and the method makes its
views there — no PIL, no per-sample DataLoader workers.

The loop reads as: learning rate for this step -> the step (forward, backward over the
accumulation micro-batches, optimiser, schedules, momentum update) -> at epoch ends the
online monitor (:mod:`edgessl.training.monitor`) -> log (``metrics.jsonl``, trackers,
progress) -> save. Resuming is exact: :class:`TrainingState` holds everything a
checkpoint restores, and stops happen only at optimiser-step boundaries — epoch ends,
``max_steps``, the time budget, or Ctrl-C (the first one asks for a stop at the end of
the current step and saves ``last.pt``; a second one aborts at once) — so a resumed run
repeats no step and skips none. A run killed outright (SIGKILL, power loss) restarts
from its newest complete checkpoint, written at every epoch end.

Batch size is global: ``batch_size`` images per optimiser step across all processes
and accumulation steps, as the papers count it; it must divide by
``num_processes * grad_accum``.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console

from edgessl import __version__, distributed
from edgessl.checkpoints import load_checkpoint, save_checkpoint
from edgessl.config import config_to_dict
from edgessl.errors import CheckpointError, ConfigError, EdgesslError, TrainingDiverged
from edgessl.files import ensure_writable_dir
from edgessl.methods import Method, StepOutput, build_method
from edgessl.runs import CHECKPOINT_DIR, CONFIG_FILE, LAST, RunFolder, epoch_checkpoint_name
from edgessl.training import run_folder, tracking
from edgessl.training.config import TrainConfig
from edgessl.training.optim import build_optimizer, build_scheduler, scaled_lr
from edgessl.training.progress import ProgressView, StopRequest
from edgessl.training.resolve import (
    config_yaml,
    resolve_method_config,
    resolved_train_config,
    resume_changes,
)
from edgessl.training.rng import seed_everything, set_deterministic
from edgessl.training.run_log import METRICS_FILE, MetricsLog
from edgessl.training.sampling import epoch_permutation, micro_batches, place_images, plan_batches
from edgessl.training.state import TrainingState

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


@dataclass
class PendingStep:
    """A step whose loss is still on the device; ``extra`` holds host values (monitor) for its record."""

    step: int
    epoch: int
    lr: float
    out: StepOutput
    extra: dict[str, float] = field(default_factory=dict)


def checkpoint_bytes(model: torch.nn.Module) -> int:
    """Rough size of one checkpoint: weights plus up to two optimiser slots per parameter."""
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    return 3 * params + sum(b.numel() * b.element_size() for b in model.buffers())


def checkpoints_to_write(config: TrainConfig, start_epoch: int) -> int:
    """Epoch checkpoints still to come, plus last.pt and one temporary file during a write."""
    remaining = range(start_epoch + 1, config.epochs + 1)
    return sum(1 for e in remaining if e % config.save_every == 0 or e == config.epochs) + 2


def start_from_weights(method: Method, path: str) -> None:
    """Load outside encoder weights into ``method`` and copy them into its momentum targets (they start equal)."""
    from edgessl.backbones import load_backbone_weights

    load_backbone_weights(method.representation().encoder, path)
    with torch.no_grad():
        for online, target in method.momentum_pairs():
            target.load_state_dict(online.state_dict())


def make_accelerator(config: TrainConfig, run_dir: Path):  # -> accelerate.Accelerator
    """The run's Accelerator: accelerate's own configuration (``accelerate config`` / ``accelerate launch``
    flags) unless ``config.precision`` overrides it, and exactly the processes the launcher started.

    Processes started without GPUs (``torchrun``, ``accelerate launch --multi_gpu``) are
    joined over gloo on the CPU; accelerate would otherwise give each its own world of one.
    """
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs

    distributed.check_launch()
    # torch >= 2.13 deprecates broadcast_buffers for forward_sync_buffers, which accelerate cannot pass yet;
    # False is what is meant (buffers start equal: every process builds the model from the same seed).
    warnings.filterwarnings("ignore", message="`broadcast_buffers` is deprecated", category=FutureWarning)
    try:
        accelerator = Accelerator(
            mixed_precision=config.precision,  # None: accelerate's configuration
            cpu=distributed.cpu_processes_launched(),
            gradient_accumulation_steps=config.grad_accum,
            log_with=tracking.tracker_names(config.log_with) or None,
            project_dir=run_dir / tracking.TRACKER_DIR,
            # BatchNorm statistics are kept equal by SyncBatchNorm or averaged at each save
            # (edgessl.distributed), MoCo's queue by the method; DDP's default would broadcast
            # rank 0's buffers (the 32 MB queue among them) every step.
            kwargs_handlers=[DistributedDataParallelKwargs(broadcast_buffers=False)],
        )
    except (ValueError, RuntimeError) as exc:
        precision = config.precision or os.environ.get("ACCELERATE_MIXED_PRECISION", "no")
        raise ConfigError(
            f"cannot train with precision '{precision}' here: {str(exc).splitlines()[0]}; try --precision no"
        ) from None
    distributed.check_process_count(accelerator.num_processes)
    return accelerator


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
        self.method_config = resolve_method_config(config)
        self.accelerator = accelerator = make_accelerator(config, Path(config.run_dir))
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
        if accelerator.num_processes > 1:  # global BatchNorm where the method's paper has it
            self.method.synchronize_batchnorm(accelerator.device)
        self.plan = plan = plan_batches(
            len(self.dataset),
            self.method_config.batch_size,
            accelerator.num_processes,
            accelerator.process_index,
            config.grad_accum,
        )
        self.total_steps = plan.steps_per_epoch * config.epochs
        self.changes: dict[str, tuple[Any, Any]] = {}  # what this resume changes, {field: (old, new)}
        self.resume_from = self._resume_point(resume)
        if config.weights and not self.resume_from:
            start_from_weights(self.method, config.weights)
        self.method.to(accelerator.device)
        optimizer = build_optimizer(self.method, self.method_config.optimizer, self.method_config.batch_size)
        self.scheduler = build_scheduler(
            optimizer, self.method_config.optimizer, plan.steps_per_epoch, self.total_steps
        )
        self.model, self.optimizer = accelerator.prepare(self.method, optimizer)
        self.state = TrainingState(
            accelerator, self.model, self.optimizer, self.scheduler, plan.steps_per_epoch, config.seed
        )
        if self.resume_from:
            self.state.load_state_dict(self.resume_from[1], self.resume_from[0], self.changes)
            self.scheduler.stretch(
                plan.steps_per_epoch, self.total_steps
            )  # a longer --epochs stretches the rest
        else:
            seed_everything(
                config.seed + 7919 * accelerator.process_index
            )  # a different augmentation stream per process
        self.images = place_images(self.dataset.images, accelerator.device)
        self.monitor = self._make_monitor()

    def _resume_point(self, resume: bool) -> tuple[Path, dict[str, Any]] | None:
        """The newest complete checkpoint to continue, after checking that it can be honoured."""
        newest = RunFolder(self.run_dir).newest()
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
                f"{newest} is a {meta.get('method')} run on {meta.get('backbone')}, not {self.config.method} on "
                f"{self.config.backbone}; choose another --out to start a new run"
            )
        if "optimizer" not in previous or "position" not in previous:
            raise CheckpointError(
                f"{newest} holds no training state to resume from; start a new run in another --out"
            )
        self.changes = resume_changes(
            meta.get("train_config", {}), self.config, int(previous["position"]["epoch"]), newest
        )
        return newest, previous

    def _make_monitor(self):  # -> OnlineMonitor | None
        if not self.config.monitor_every or not self.accelerator.is_main_process:
            return None
        from edgessl.training.monitor import OnlineMonitor

        return OnlineMonitor.for_dataset(
            self.dataset, self.config.data_root, self.accelerator.device, self.console
        )

    # ----------------------------------------------------------------------- the loop

    def step(self, order: torch.Tensor, batch_in_epoch: int) -> StepOutput:
        """One optimiser step over ``grad_accum`` micro-batches; the mean loss and diagnostics stay on the device."""
        device = self.accelerator.device
        chunks = micro_batches(order, self.plan, batch_in_epoch)
        total, metrics = torch.zeros((), device=device), {}
        for index, chunk in enumerate(chunks):
            batch = self.images[chunk.to(self.images.device)].to(device, non_blocking=True)
            with nullcontext() if index == len(chunks) - 1 else self.accelerator.no_sync(self.model):
                out = self.model(batch)
                self.accelerator.backward(out.loss)  # divides by grad_accum
            total += out.loss.detach().float()
            for name, value in out.metrics.items():
                metrics[name] = metrics.get(name, 0.0) + value.detach().float() / len(chunks)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.state.position.step += 1
        self.accelerator.unwrap_model(self.model).after_optimizer_step(
            self.state.position.step / self.total_steps
        )
        return StepOutput(total / len(chunks), metrics)

    def run(self) -> TrainResult:
        """Train under the run folder's lock (only the main process writes files)."""
        if not self.accelerator.is_main_process:
            self.accelerator.wait_for_everyone()
            return self._loop(None)
        with run_folder.locked(self.run_dir):
            if RunFolder(self.run_dir).newest() != (
                self.resume_from[0] if self.resume_from else None
            ):
                raise run_folder.RunFolderBusy(
                    f"{self.run_dir} changed while this run started; run the command again"
                )
            run_folder.remove_stale_temp_files(self.run_dir)
            ensure_writable_dir(self.run_dir / CHECKPOINT_DIR)
            needed = checkpoint_bytes(self.method) * checkpoints_to_write(
                self.config, self.state.position.epoch
            )
            run_folder.check_free_space(self.run_dir, needed)
            (self.run_dir / CONFIG_FILE).write_text(config_yaml(self.config))
            log = MetricsLog(self.run_dir / METRICS_FILE)
            log.truncate_after(self.state.position.step)
            self._start_trackers()
            self._announce()
            self.accelerator.wait_for_everyone()
            try:
                return self._loop(log)
            finally:
                log.close()
                self.accelerator.end_training()
                if self.config.plots:
                    from edgessl.training.plots import plot_run

                    plot_run(self.run_dir)

    def _loop(self, log: MetricsLog | None) -> TrainResult:
        config, plan, position = self.config, self.plan, self.state.position
        target = min(self.total_steps, config.max_steps or self.total_steps)
        view = ProgressView(
            self.console, self.show_progress and log is not None, target, position.step, config.log_every
        )
        stop, pending, stopping, order = StopRequest(), [], False, (-1, None)
        segment_start = window_start = time.perf_counter()
        first_step, loss = position.step, float("nan")
        self.model.train()
        try:
            with stop.installed(), self._energy_meter() as meter:
                while position.step < target and not stopping:
                    batch_in_epoch = position.batch_in_epoch(plan.steps_per_epoch)
                    if order[0] != position.epoch:
                        order = (
                            position.epoch,
                            epoch_permutation(len(self.images), config.seed, position.epoch),
                        )
                    lr = self.scheduler.get_last_lr()[0]
                    pending.append(
                        PendingStep(
                            position.step + 1, position.epoch + 1, lr, self.step(order[1], batch_in_epoch)
                        )
                    )
                    epoch_end = batch_in_epoch == plan.steps_per_epoch - 1
                    if (
                        epoch_end
                        and self.monitor is not None
                        and (position.epoch + 1) % config.monitor_every == 0
                    ):
                        pending[-1].extra.update(
                            self.monitor.measure(self.accelerator.unwrap_model(self.model).representation())
                        )
                    flush_due = len(pending) >= FLUSH_EVERY or epoch_end or position.step >= target
                    if flush_due or self.accelerator.num_processes == 1:
                        stopping = self._should_stop(
                            stop, position.prior_seconds + time.perf_counter() - segment_start
                        )
                    if flush_due or stopping:
                        values = self._flush(pending, log, window_start)
                        loss, window_start = values["loss"], time.perf_counter()
                        view.update(position.step, position.epoch + 1, values)
                    if epoch_end:
                        position.epoch += 1
                        self._save(
                            segment_start,
                            meter,
                            position.epoch % config.save_every == 0 or position.epoch == config.epochs,
                        )
                if position.saved_step != position.step:
                    self._save(segment_start, meter, epoch_file=False)
        finally:
            view.close()
        seconds = time.perf_counter() - segment_start
        if stop.requested:
            raise TrainingInterrupted(self.last_path, position.step)
        speed = (position.step - first_step) * plan.global_batch / max(seconds, 1e-9)
        return TrainResult(
            self.run_dir,
            self.last_path,
            position.epoch,
            position.step,
            position.prior_seconds + seconds,
            speed,
            loss,
        )

    def _should_stop(self, stop: StopRequest, train_seconds: float) -> bool:
        """Ctrl-C or the time budget on any process stops every process at this step: one reduce of one tensor."""
        out_of_time = self.config.time_budget_s is not None and train_seconds >= self.config.time_budget_s
        flags = torch.tensor([float(stop.requested), float(out_of_time)], device=self.accelerator.device)
        if self.accelerator.num_processes > 1:
            flags = self.accelerator.reduce(flags, reduction="sum")
        stop.requested, out_of_time = (bool(value > 0) for value in flags.tolist())
        return stop.requested or out_of_time

    def _flush(
        self, pending: list[PendingStep], log: MetricsLog | None, window_start: float
    ) -> dict[str, float]:
        """Read back pending losses and diagnostics (one device sync) and log them; returns the last record.

        A NaN/inf loss stops the run after the records up to it are written (the bad loss
        as ``null``), so the log shows where the run went wrong.
        """
        names = sorted(pending[0].out.metrics)
        stacked = torch.stack(
            [torch.stack([p.out.loss, *(p.out.metrics[n] for n in names)]) for p in pending]
        )
        if self.accelerator.num_processes > 1:
            stacked = self.accelerator.reduce(stacked, reduction="mean")
        speed = len(pending) * self.plan.global_batch / max(time.perf_counter() - window_start, 1e-9)
        records = []
        for item, (loss, *metrics) in zip(pending, stacked.tolist(), strict=True):
            finite = bool(np.isfinite(loss))
            record = {
                "step": item.step,
                "epoch": item.epoch,
                "loss": loss if finite else None,
                "lr": item.lr,
                "images_per_s": speed,
            }
            records.append({**record, **dict(zip(names, metrics, strict=True)), **item.extra})
            if not finite:
                break
        pending.clear()
        if log is not None:
            log.write(records)
            for record in records:
                self.accelerator.log(
                    {k: v for k, v in record.items() if k != "step" and v is not None}, step=record["step"]
                )
        if records[-1]["loss"] is None:
            kept = (
                f"{self.last_path} (step {self.state.position.saved_step}) was kept"
                if self.state.position.saved_step
                else "no checkpoint was written"
            )
            raise TrainingDiverged(
                f"the loss became {stacked[len(records) - 1, 0].item()} at step {records[-1]['step']}; training stopped and "
                f"{kept}. Try a lower --lr, --precision no (fp32), or a longer warm-up (--set optimizer.warmup_epochs=N)"
            )
        return records[-1]

    # ----------------------------------------------------------------------- checkpoints, trackers, energy

    def _save(self, segment_start: float, meter: Any, epoch_file: bool) -> None:
        state = {"metadata": self._metadata(segment_start, meter), **self.state.state_dict()}
        if self.accelerator.is_main_process:
            folder = self.run_dir / CHECKPOINT_DIR
            if epoch_file:
                save_checkpoint(state, folder / epoch_checkpoint_name(self.state.position.epoch))
            save_checkpoint(state, folder / LAST)
        self.state.position.saved_step = self.state.position.step
        self.accelerator.wait_for_everyone()

    def _metadata(self, segment_start: float, meter: Any) -> dict[str, Any]:
        dataset, position = self.dataset, self.state.position
        return {
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
            "epoch": position.epoch,
            "step": position.step,
            "train_seconds": position.prior_seconds + (time.perf_counter() - segment_start),
            "energy": self._energy(meter),
            "resumes": list(position.resumes),
            "num_processes": self.accelerator.num_processes,
            "mixed_precision": self.accelerator.mixed_precision,
            "edgessl_version": __version__,
        }

    def _energy(self, meter: Any) -> dict[str, Any] | None:
        prior = self.state.position.prior_energy
        if meter is None:
            return prior
        current = meter.report().as_dict()
        return {**current, **{k: float((prior or {}).get(k, 0.0)) + float(current[k]) for k in ENERGY_TOTALS}}

    def _start_trackers(self) -> None:
        if not self.accelerator.log_with:
            return
        try:
            self.accelerator.init_trackers(
                self.run_dir.name,
                config=tracking.flat_config(config_to_dict(self.config)),
                init_kwargs=tracking.tracker_init_kwargs(self.run_dir),
            )
        except Exception as exc:  # noqa: BLE001 (each tracker library raises its own types)
            first = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
            raise EdgesslError(f"could not start --log-with {self.config.log_with}: {first}") from None

    @contextmanager
    def _energy_meter(self) -> Iterator[Any]:
        """The profiling EnergyMeter over the loop; ``None`` (no energy record) when it cannot measure this device."""
        from edgessl.energy import EnergyMeter

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

    def _announce(self) -> None:
        config, plan, position = self.config, self.plan, self.state.position
        changed = ", ".join(f"{key} {old} -> {new}" for key, (old, new) in self.changes.items())
        what = (
            f"resuming from step {position.step}" + (f" ({changed})" if changed else "")
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
