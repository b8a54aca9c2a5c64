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
and accumulation steps, as the papers count it. Building a run is :mod:`.setup`; one
optimiser step (also what ``edgessl profile`` times) :mod:`.step`; the resumable state
:mod:`.state`; the run folder's lock :mod:`.run_folder`.
"""

from __future__ import annotations

import time
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from edgessl.checkpoints import save_checkpoint
from edgessl.config import config_to_dict
from edgessl.distributed import average_batchnorm_statistics
from edgessl.energy import energy_so_far, optional_meter
from edgessl.methods import StepOutput, TrainingProgress, build_method
from edgessl.runs import CONFIG_FILE, RunFolder, epoch_checkpoint_name
from edgessl.training import run_folder, tracking
from edgessl.training.config import TrainConfig
from edgessl.training.monitor import run_monitor
from edgessl.training.progress import ProgressView, StopRequest, start_line
from edgessl.training.resolve import ResolvedRun, resolve_run
from edgessl.training.resume import check_frozen_unchanged, resume_point
from edgessl.training.rng import seed_everything, set_deterministic
from edgessl.training.run_log import METRICS_FILE, MetricsLog, PendingStep, diverged, read_back, read_metrics
from edgessl.training.sampling import epoch_permutation, micro_batches, plan_batches
from edgessl.training.setup import checkpoint_bytes_to_write, make_accelerator, start_from_weights
from edgessl.training.state import TrainingInterrupted, TrainingState, TrainResult, checkpoint_metadata
from edgessl.training.step import build_train_step

# Optimiser steps between loss read-backs and cross-process stop checks (each waits for the device).
FLUSH_EVERY = 10


class Trainer:
    """One call of :func:`train`.

    The constructor validates and builds everything (data, method, batch plan, the
    checkpoint to resume) without writing a file, so rejected input leaves nothing
    behind; :meth:`run` takes the run folder's lock and trains.
    """

    def __init__(self, run: ResolvedRun, resume: bool, console: Console, progress: bool) -> None:
        from edgessl.data import load_dataset

        self.console, self.show_progress = console, progress
        self.resolved, self.config, self.method_config = run, run.train, run.method
        config = run.train
        set_deterministic(config.deterministic)
        self.accelerator = make_accelerator(config, Path(config.out))
        self.dataset = data = load_dataset(config.data, config.split, config.data_root, config.image_size)
        self.folder = RunFolder(Path(config.out))
        seed_everything(config.seed)  # identical initial weights on every process
        self.method = build_method(
            config.method, config.backbone, data.image_size, data.mean, data.std, run.method
        )
        processes, rank = self.accelerator.num_processes, self.accelerator.process_index
        if processes > 1:  # global BatchNorm where the method's paper has it
            self.method.synchronize_batchnorm(self.accelerator.device)
        self.plan = plan_batches(len(data), config.batch_size, processes, rank, config.grad_accum)
        self.total_steps = self.plan.steps_per_epoch * config.epochs
        self.resume_from = resume_point(self.folder.path, resume, config)
        check_frozen_unchanged(self.method, self.resume_from)
        if config.weights and not self.resume_from:
            start_from_weights(self.method, config.weights)
        self._prepare_optimisation()
        self.monitor = run_monitor(config, self.dataset, self.accelerator, self.console)
        # one shuffle per epoch, a function of seed and epoch only; two are held because an
        # epoch's last step already reads the next epoch's first batch (for the feeder)
        self.epoch_order = lru_cache(maxsize=2)(partial(epoch_permutation, len(data), config.seed))

    def _prepare_optimisation(self) -> None:
        """The step (optimiser, schedules, accelerate-wrapped model) and its state, restored when resuming."""
        config, steps_per_epoch = self.method_config, self.plan.steps_per_epoch
        self.train_step = step = build_train_step(
            self.accelerator,
            self.method,
            optimizer_config=config.optimizer,
            batch_size=config.batch_size,
            steps_per_epoch=steps_per_epoch,
            total_steps=self.total_steps,
            images=self.dataset.images,
        )
        self.state = TrainingState(step, steps_per_epoch, self.config.seed)
        if self.resume_from:
            self.state.load_state_dict(
                self.resume_from.checkpoint, self.resume_from.path, self.resume_from.changes
            )
            step.scheduler.stretch(steps_per_epoch, self.total_steps)  # a longer --epochs stretches the rest
        else:  # a different augmentation stream per process
            seed_everything(self.config.seed + 7919 * self.accelerator.process_index)

    # ----------------------------------------------------------------------- the loop

    def step(self, order: torch.Tensor, batch_in_epoch: int) -> StepOutput:
        """The optimiser step of batch ``batch_in_epoch`` of the epoch's ``order``; the loss stays on the
        device."""
        position = self.state.position
        chunks = micro_batches(order, self.plan, batch_in_epoch)
        progress = TrainingProgress(position.step, self.plan.steps_per_epoch, self.total_steps)
        out = self.train_step(chunks, progress, self.upcoming_chunks(position.step + 1))
        position.step += 1
        return out

    def upcoming_chunks(self, step: int) -> list[torch.Tensor] | None:
        """The micro-batches of run step ``step`` (for the feeder to start moving), None past the last."""
        if step >= self.total_steps:
            return None
        epoch, batch_in_epoch = divmod(step, self.plan.steps_per_epoch)
        return micro_batches(self.epoch_order(epoch), self.plan, batch_in_epoch)

    def run(self) -> TrainResult:
        """Train under the run folder's lock (only the main process writes files)."""
        if not self.accelerator.is_main_process:
            self.accelerator.wait_for_everyone()
            return self._loop(None)
        run_dir, resumes = self.folder.path, self.resume_from.path if self.resume_from else None
        needed = checkpoint_bytes_to_write(self.method, self.config, self.state.position.epoch)
        run_folder.check_free_space(run_dir, needed)
        with run_folder.locked(run_dir):
            run_folder.prepare_for_writing(run_dir, resumes, self.resolved.yaml(), CONFIG_FILE)
            log = MetricsLog(run_dir / METRICS_FILE)
            log.truncate_after(self.state.position.step)
            tracking.start_trackers(
                self.accelerator, run_dir, self.config.log_with, config_to_dict(self.config)
            )
            changes = self.resume_from.changes if self.resume_from else None
            self.console.print(start_line(self, changes), highlight=False)
            self.accelerator.wait_for_everyone()
            try:
                return self._loop(log)
            finally:
                log.close()
                self.accelerator.end_training()
                if self.config.plots and log.has_records():
                    from edgessl.training.plots import plot_run

                    plot_run(run_dir)

    def _loop(self, log: MetricsLog | None) -> TrainResult:
        position = self.state.position
        target = min(self.total_steps, self.config.max_steps or self.total_steps)
        watching = self.show_progress and log is not None
        view = ProgressView(self.console, watching, target, position.step, self.config.log_every)
        stop, pending, stopping, first_step, loss = StopRequest(), [], False, position.step, float("nan")
        self.segment_start = self.window_start = time.perf_counter()
        self.train_step.model.train()
        try:
            with stop.installed(), optional_meter(self.accelerator.device, self.console.print) as self.meter:
                while position.step < target and not stopping:
                    epoch_end = self._advance(pending)
                    flush_due = len(pending) >= FLUSH_EVERY or epoch_end or position.step >= target
                    if flush_due or self.accelerator.num_processes == 1:
                        stopping = self._should_stop(stop)
                    if flush_due or stopping:
                        record = self._flush(pending, log)
                        loss = record["loss"]
                        view.update(position.step, record["epoch"], record)
                    if epoch_end:
                        self._end_epoch()
                if position.saved_step != position.step or self.last_is_behind():
                    self._save(epoch_file=False)
        finally:
            view.close()
            self.train_step.feeder.close()
        if stop.requested:
            raise TrainingInterrupted(self.folder.last, position.step)
        if position.step == first_step:  # a resume of a finished run trains no step: report its last loss
            loss = last_logged_loss(log)
        return self._result(first_step, loss)

    def last_is_behind(self) -> bool:
        """Whether this run resumed from an epoch file because ``last.pt`` was older (a kill while the
        final ``last.pt`` was written): then ``last.pt`` is rewritten even if no step is left to train."""
        return self.resume_from is not None and self.resume_from.path != self.folder.last

    def _end_epoch(self) -> None:
        position, config = self.state.position, self.config
        position.epoch += 1
        self._save(epoch_file=position.epoch % config.save_every == 0 or position.epoch == config.epochs)

    def _result(self, first_step: int, loss: float) -> TrainResult:
        position, seconds = self.state.position, time.perf_counter() - self.segment_start
        speed = (position.step - first_step) * self.plan.global_batch / max(seconds, 1e-9)
        total = position.prior_seconds + seconds
        return TrainResult(
            self.folder.path, self.folder.last, position.epoch, position.step, total, speed, loss,
            self.plan.steps_per_epoch,
        )  # fmt: skip

    def _advance(self, pending: list[PendingStep]) -> bool:
        """One step at the sampler's position, queued in ``pending`` (with the monitor at due epoch ends);
        True at an epoch end."""
        position, steps_per_epoch = self.state.position, self.plan.steps_per_epoch
        batch_in_epoch = position.batch_in_epoch(steps_per_epoch)
        lr = self.train_step.scheduler.get_last_lr()[0]
        out = self.step(self.epoch_order(position.epoch), batch_in_epoch)
        pending.append(PendingStep(position.step, position.epoch + 1, lr, out.loss, out.metrics))
        epoch_end = batch_in_epoch == steps_per_epoch - 1
        if epoch_end and self.config.monitor_every and (position.epoch + 1) % self.config.monitor_every == 0:
            average_batchnorm_statistics(self.train_step.model)  # the epoch checkpoint's (collective)
            if self.monitor is not None:  # the main process measures what it will save
                pending[-1].extra.update(self.monitor.measure(self.method.representation()))
        return epoch_end

    def _should_stop(self, stop: StopRequest) -> bool:
        """Ctrl-C or the time budget on any process stops every process at this step: one reduce of one
        tensor."""
        seconds = self.state.position.prior_seconds + time.perf_counter() - self.segment_start
        out_of_time = self.config.time_budget_s is not None and seconds >= self.config.time_budget_s
        return stop.agreed(self.accelerator, out_of_time)

    def _flush(self, pending: list[PendingStep], log: MetricsLog | None) -> dict[str, Any]:
        """Log the pending steps (metrics.jsonl, trackers) and return the last record; a NaN/inf loss stops
        the run."""
        now, elapsed = time.perf_counter(), time.perf_counter() - self.window_start
        records = read_back(
            pending, self.accelerator, len(pending) * self.plan.global_batch / max(elapsed, 1e-9)
        )
        pending.clear()
        self.window_start = now
        if log is not None:
            log.write(records)
            tracking.log_records(self.accelerator, records)
        if "nonfinite_loss" in records[-1]:
            raise diverged(records[-1], self.folder.last, self.state.position.saved_step)
        return records[-1]

    def _save(self, epoch_file: bool) -> None:
        position = self.state.position
        metadata = checkpoint_metadata(self.config, self.dataset, self.accelerator, position)
        if self.method.frozen:
            metadata["frozen"] = self.method.frozen_provenance()  # where the teacher came from, and its hash
        seconds = position.prior_seconds + time.perf_counter() - self.segment_start
        metadata.update(train_seconds=seconds, energy=energy_so_far(self.meter, position.prior_energy))
        state = {"metadata": metadata, **self.state.state_dict()}
        if self.accelerator.is_main_process:
            if epoch_file:
                save_checkpoint(state, self.folder.checkpoint_dir / epoch_checkpoint_name(position.epoch))
            save_checkpoint(state, self.folder.last)
        position.saved_step = position.step
        self.accelerator.wait_for_everyone()


def train(
    run: ResolvedRun | TrainConfig,
    resume: bool = False,
    console: Console | None = None,
    progress: bool = True,
) -> TrainResult:
    """Pretrain ``run``'s method on its backbone; ``resume`` continues the run's newest checkpoint.

    A :class:`TrainConfig` is resolved here (:func:`~edgessl.training.resolve.resolve_run`);
    callers that resolved it already (the CLI, the study) pass the :class:`ResolvedRun`.
    Raises :class:`TrainingDiverged` on a NaN/inf loss (the last good checkpoint is kept),
    :class:`TrainingInterrupted` after Ctrl-C (``last.pt`` saved at the current step),
    and :class:`EdgesslError` subclasses for anything the user can fix, before any file is written.
    """
    resolved = run if isinstance(run, ResolvedRun) else resolve_run(run)
    return Trainer(resolved, resume, console or Console(), progress).run()


def last_logged_loss(log: MetricsLog | None) -> float:
    """The loss of the run's last logged step (nan when none, or on a process that keeps no log)."""
    if log is None or not log.path.is_file():
        return float("nan")
    losses = [record.get("loss") for record in read_metrics(log.path)]
    return next((float(value) for value in reversed(losses) if isinstance(value, (int, float))), float("nan"))
