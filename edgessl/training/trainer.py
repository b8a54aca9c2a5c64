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

import dataclasses
import os
import random
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from edgessl import __version__
from edgessl.errors import CheckpointError, ConfigError, DataError, EdgesslError, TrainingDiverged
from edgessl.methods import Method, MethodConfig, build_method, method_class
from edgessl.training.checkpoint import (
    CHECKPOINT_DIR,
    LAST,
    epoch_checkpoint_name,
    load_checkpoint,
    save_checkpoint,
)
from edgessl.training.config import TrainConfig, config_to_dict, merge_config
from edgessl.training.optim import build_optimizer, build_scheduler, scaled_lr, warmup_schedule
from edgessl.training.run_log import METRICS_FILE, MetricsLog

CONFIG_FILE = "config.yaml"
FLUSH_EVERY = 10  # optimiser steps between loss read-backs (each one waits for the device)
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


# --------------------------------------------------------------------------- configuration


def resolve_method_config(config: TrainConfig) -> MethodConfig:
    """Method defaults < ``method_overrides`` < the run's ``batch_size`` and ``lr``."""
    cls = method_class(config.method)
    method_config = merge_config(cls.Config, cls.Config(), config.method_overrides)
    if config.batch_size is not None:
        method_config = dataclasses.replace(method_config, batch_size=config.batch_size)
    if config.lr is not None:
        method_config = dataclasses.replace(method_config, optimizer=dataclasses.replace(method_config.optimizer, lr=config.lr))
    return method_config


def resolved_train_config(config: TrainConfig, method_config: MethodConfig, image_size: int | None = None) -> TrainConfig:
    """``config`` with every default filled in; written as ``RUN/config.yaml`` and loadable by ``--config``."""
    overrides = {k: v for k, v in config_to_dict(method_config).items() if k != "batch_size"}
    return dataclasses.replace(
        config,
        out=config.run_dir,
        batch_size=method_config.batch_size,
        lr=method_config.optimizer.lr,
        image_size=image_size if image_size is not None else config.image_size,
        method_overrides=overrides,
    )


def config_yaml(config: TrainConfig) -> str:
    return yaml.safe_dump(config_to_dict(config), sort_keys=False)


# --------------------------------------------------------------------------- run folder checks


def checkpoint_bytes(model: torch.nn.Module) -> int:
    """Rough size of one checkpoint: weights plus up to two optimiser slots per parameter."""
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    return 3 * params + buffers


def check_writable(run_dir: Path) -> None:
    """Fail at once (before the dataset is read) when the run folder cannot be written."""
    folder = run_dir / CHECKPOINT_DIR
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise EdgesslError(f"cannot write to {folder}: {exc.strerror or exc}; choose another --out or fix its permissions") from None


def check_free_space(run_dir: Path, bytes_needed: int) -> None:
    """Fail before training when the disk cannot hold the run's checkpoints."""
    folder = run_dir / CHECKPOINT_DIR
    free = shutil.disk_usage(folder).free
    if free < bytes_needed:
        raise EdgesslError(
            f"{folder} has {free / 1e9:.2f} GB free but the run's checkpoints need about {bytes_needed / 1e9:.2f} GB; "
            "free some space, choose another --out, or raise --save-every"
        )


def checkpoints_to_write(config: TrainConfig, start_epoch: int) -> int:
    """Epoch checkpoints still to come, plus last.pt and one temporary file during a write."""
    remaining = range(start_epoch + 1, config.epochs + 1)
    return sum(1 for e in remaining if e % config.save_every == 0 or e == config.epochs) + 2


# --------------------------------------------------------------------------- RNG states


def rng_state() -> dict[str, Any]:
    """Every RNG the run draws from, as tensors and primitives (``weights_only=True`` loads them)."""
    _, keys, position, has_gauss, cached = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(position), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": py_version, "state": torch.tensor(py_state, dtype=torch.int64), "gauss_next": py_gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    np.random.set_state(("MT19937", numpy_state["keys"].numpy().astype(np.uint32), numpy_state["pos"], numpy_state["has_gauss"], numpy_state["cached_gaussian"]))
    python = state["python"]
    random.setstate((python["version"], tuple(int(v) for v in python["state"].tolist()), python["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_deterministic(enabled: bool) -> None:
    """Deterministic kernels (bit-exact resumes on the CPU) or the fastest ones (cuDNN autotuning)."""
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if torch.are_deterministic_algorithms_enabled() != enabled:  # the call itself imports torch._dynamo (seconds)
        torch.use_deterministic_algorithms(enabled, warn_only=True)
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = not enabled


# --------------------------------------------------------------------------- sampling


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


def plan_batches(num_images: int, global_batch: int, num_processes: int, process_index: int, grad_accum: int) -> BatchPlan:
    if global_batch % (num_processes * grad_accum):
        raise ConfigError(
            f"batch size {global_batch} does not split into {num_processes} process(es) x {grad_accum} accumulation step(s); "
            f"use a multiple of {num_processes * grad_accum}"
        )
    steps = num_images // global_batch
    if steps == 0:
        raise DataError(f"the dataset has {num_images} images, fewer than one batch of {global_batch}; lower --batch-size")
    return BatchPlan(global_batch, num_processes, process_index, grad_accum, steps)


def epoch_permutation(num_images: int, seed: int, epoch: int) -> torch.Tensor:
    """The epoch's shuffled order; a function of (seed, epoch) only, so every process and every resume agrees."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(num_images, generator=generator)


def micro_batches(order: torch.Tensor, plan: BatchPlan, batch_in_epoch: int) -> list[torch.Tensor]:
    """This process's micro-batch indices for one optimiser step (the last partial batch is dropped)."""
    start = batch_in_epoch * plan.global_batch + plan.process_index * plan.per_process
    return list(order[start : start + plan.per_process].split(plan.micro_batch))


def place_images(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """The uint8 dataset on the device when it takes under a quarter of its memory, else left on the host."""
    if device.type == "cuda" and images.numel() < torch.cuda.get_device_properties(device).total_memory // 4:
        return images.to(device)
    return images.pin_memory() if device.type == "cuda" else images


# --------------------------------------------------------------------------- interrupts


class StopRequest:
    """The first Ctrl-C sets a flag the loop reads at step boundaries; a second aborts at once."""

    def __init__(self) -> None:
        self.requested = False

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    @contextmanager
    def installed(self) -> Iterator[StopRequest]:
        if threading.current_thread() is not threading.main_thread():
            yield self  # signals reach only the main thread; Ctrl-C then aborts as usual
            return
        previous = signal.signal(signal.SIGINT, self._handle)
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous)


# --------------------------------------------------------------------------- progress display


class ProgressView:
    """A rich progress bar with loss, images/s and ETA; nothing when not a terminal or disabled."""

    def __init__(self, console: Console, enabled: bool, total: int, done: int) -> None:
        self._progress = None
        if enabled and console.is_terminal:
            self._progress = Progress(
                TextColumn("[bold]epoch {task.fields[epoch]}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}  {task.fields[speed]} img/s"),
                TimeRemainingColumn(),
                console=console,
                transient=False,
            )
            self._task = self._progress.add_task("train", total=total, completed=done, epoch="-", loss="-", speed="-")
            self._progress.start()

    def update(self, step: int, epoch: int, loss: float, speed: float) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=step, epoch=epoch, loss=f"{loss:.4f}", speed=f"{speed:,.0f}")

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()


# --------------------------------------------------------------------------- the run


@dataclass
class RunState:
    """Where the run is: the sampler position is (epoch, batch_in_epoch), i.e. the step."""

    epoch: int = 0  # completed epochs
    step: int = 0  # completed optimiser steps, across resumes
    prior_seconds: float = 0.0  # training time of earlier segments of this run
    prior_energy: dict[str, Any] | None = None

    def batch_in_epoch(self, steps_per_epoch: int) -> int:
        return self.step - self.epoch * steps_per_epoch


class Trainer:
    """One call of :func:`train`: builds everything, restores a checkpoint, runs the loop."""

    def __init__(self, config: TrainConfig, resume: bool, console: Console, progress: bool) -> None:
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs

        self.console = console
        self.show_progress = progress
        set_deterministic(config.deterministic)
        try:
            self.accelerator = Accelerator(
                mixed_precision=config.precision,
                gradient_accumulation_steps=config.grad_accum,
                # Methods keep cross-process state consistent themselves (MoCo enqueues every
                # process's keys); DDP's default would broadcast its 32 MB queue every step.
                kwargs_handlers=[DistributedDataParallelKwargs(broadcast_buffers=False)],
            )
        except (ValueError, RuntimeError) as exc:
            raise ConfigError(f"cannot train with precision '{config.precision}' here: {str(exc).splitlines()[0]}; try --precision no") from None
        self.method_config = resolve_method_config(config)
        self.run_dir = Path(config.run_dir)
        self.last_path = self.run_dir / CHECKPOINT_DIR / LAST
        previous = self._previous_checkpoint(config, resume)
        if self.accelerator.is_main_process:
            check_writable(self.run_dir)

        from edgessl.data import load_dataset

        dataset = load_dataset(config.data, config.split, config.data_root, config.image_size)
        self.dataset = dataset
        self.config = resolved_train_config(config, self.method_config, dataset.image_size)
        seed_everything(config.seed)  # identical initial weights on every process
        self.method: Method = build_method(config.method, config.backbone, dataset.image_size, dataset.mean, dataset.std, self.method_config)
        self.state = RunState()
        self.state_saved_step = 0  # the step last.pt holds; a NaN message names it
        self.plan = plan_batches(
            len(dataset), self.method_config.batch_size, self.accelerator.num_processes, self.accelerator.process_index, config.grad_accum
        )
        self.total_steps = self.plan.steps_per_epoch * config.epochs
        if previous is not None:
            self.state = self._restore_model(previous)
            self.state_saved_step = self.state.step
        if self.accelerator.is_main_process:
            check_free_space(self.run_dir, checkpoint_bytes(self.method) * checkpoints_to_write(self.config, self.state.epoch))
        self.accelerator.wait_for_everyone()

        device = self.accelerator.device
        self.method.to(device)
        self.optimizer = build_optimizer(self.method, self.method_config.optimizer, self.method_config.batch_size)
        self.scheduler = build_scheduler(self.optimizer, self.method_config.optimizer, self.plan.steps_per_epoch, self.total_steps)
        self.model, self.optimizer = self.accelerator.prepare(self.method, self.optimizer)
        if previous is not None:
            self._restore_training(previous)
        else:
            seed_everything(config.seed + 7919 * self.accelerator.process_index)  # a different augmentation stream per process
        self.images = place_images(dataset.images, device)

    # ----------------------------------------------------------------------- resume

    def _previous_checkpoint(self, config: TrainConfig, resume: bool) -> dict[str, Any] | None:
        exists = self.last_path.is_file()
        if exists and not resume:
            raise ConfigError(f"{self.run_dir} already holds a run; pass --resume to continue it or choose another --out")
        if not exists:
            return None  # resuming a run that never saved starts it from scratch
        previous = load_checkpoint(self.last_path)
        meta = previous["metadata"]
        if (meta.get("method"), meta.get("backbone")) != (config.method, config.backbone):
            raise CheckpointError(
                f"{self.last_path} is a {meta.get('method')} run on {meta.get('backbone')}, not {config.method} on {config.backbone}; "
                "choose another --out to start a new run"
            )
        if "optimizer" not in previous or "position" not in previous:
            raise CheckpointError(f"{self.last_path} holds no training state to resume from; start a new run in another --out")
        return previous

    def _restore_model(self, previous: dict[str, Any]) -> RunState:
        try:
            self.method.load_state_dict(previous["model"])
        except RuntimeError as exc:
            raise CheckpointError(f"{self.last_path} does not fit this method's configuration: {str(exc).splitlines()[0]}") from None
        position = previous["position"]
        if position["steps_per_epoch"] != self.plan.steps_per_epoch:
            raise CheckpointError(
                f"{self.last_path} was trained with {position['steps_per_epoch']} steps per epoch, this run has {self.plan.steps_per_epoch}; "
                "resume with the same data and batch size"
            )
        meta = previous["metadata"]
        return RunState(int(position["epoch"]), int(position["step"]), float(meta.get("train_seconds", 0.0)), meta.get("energy"))

    def _restore_training(self, previous: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(previous["optimizer"])
        self.scheduler.load_state_dict(previous["scheduler"])
        # the schedule follows this run's length (a longer --epochs stretches the rest of it)
        self.scheduler.lr_lambdas[0] = warmup_schedule(self.method_config.optimizer, self.plan.steps_per_epoch, self.total_steps)
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
            "edgessl_version": __version__,
        }
        state = {
            "metadata": metadata,
            "model": self.accelerator.unwrap_model(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "position": {"epoch": self.state.epoch, "step": self.state.step, "steps_per_epoch": self.plan.steps_per_epoch, "seed": self.config.seed},
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
                loss = self.model(batch)
                self.accelerator.backward(loss)  # divides by grad_accum
            total += loss.detach().float()
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.state.step += 1
        self.accelerator.unwrap_model(self.model).after_optimizer_step(self.state.step / self.total_steps)
        return total / len(chunks)

    def _flush(self, pending: list[tuple[int, int, torch.Tensor, float]], log: MetricsLog | None, window_start: float) -> tuple[float, float]:
        """Read back pending losses (one device sync), stop on NaN/inf, log them; returns (last loss, images/s)."""
        if not pending:
            return float("nan"), 0.0
        losses = torch.stack([loss for _, _, loss, _ in pending])
        if self.accelerator.num_processes > 1:
            losses = self.accelerator.reduce(losses, reduction="mean")
        values = losses.tolist()
        speed = len(pending) * self.plan.global_batch / max(time.perf_counter() - window_start, 1e-9)
        for (step, _, _, _), value in zip(pending, values, strict=True):
            if not np.isfinite(value):
                kept = f"{self.last_path} (step {self.state_saved_step}) was kept" if self.last_path.is_file() else "no checkpoint was written"
                raise TrainingDiverged(
                    f"the loss became {value} at step {step}; training stopped and {kept}. "
                    "Try a lower --lr, --precision no (fp32), or a longer warm-up (--set optimizer.warmup_epochs=N)"
                )
        if log is not None:
            log.write([
                {"step": step, "epoch": epoch, "loss": value, "lr": lr, "images_per_s": speed}
                for (step, epoch, _, lr), value in zip(pending, values, strict=True)
            ])
        pending.clear()
        return values[-1], speed

    def run(self) -> TrainResult:
        config, plan, state = self.config, self.plan, self.state
        main = self.accelerator.is_main_process
        log = MetricsLog(self.run_dir / METRICS_FILE) if main else None
        if main:
            (self.run_dir / CONFIG_FILE).write_text(config_yaml(config))
            log.truncate_after(state.step)
            self._announce()
        target = min(self.total_steps, config.max_steps or self.total_steps)
        view = ProgressView(self.console, self.show_progress and main, target, state.step)
        stop = StopRequest()
        pending: list[tuple[int, int, torch.Tensor, float]] = []
        segment_start = window_start = time.perf_counter()
        steps_here, loss_value = 0, float("nan")
        meter_context = self._energy_meter()
        self.model.train()
        try:
            with stop.installed(), meter_context as meter:
                while state.step < target:
                    order = epoch_permutation(len(self.images), config.seed, state.epoch)
                    start = state.batch_in_epoch(plan.steps_per_epoch)
                    for batch_in_epoch in range(start, plan.steps_per_epoch):
                        lr = self.scheduler.get_last_lr()[0]
                        loss = self.step(order, batch_in_epoch)
                        pending.append((state.step, state.epoch + 1, loss, lr))
                        steps_here += 1
                        out_of_time = config.time_budget_s is not None and state.prior_seconds + time.perf_counter() - segment_start >= config.time_budget_s
                        stop.requested = self._agree(stop.requested)
                        out_of_time = self._agree(out_of_time)
                        halt = stop.requested or out_of_time or state.step >= target
                        if len(pending) >= FLUSH_EVERY or halt or batch_in_epoch == plan.steps_per_epoch - 1:
                            loss_value, speed = self._flush(pending, log, window_start)
                            window_start = time.perf_counter()
                            view.update(state.step, state.epoch + 1, loss_value, speed)
                        if halt:
                            break
                    if state.batch_in_epoch(plan.steps_per_epoch) == plan.steps_per_epoch:
                        state.epoch += 1
                        self._save(segment_start, meter, state.epoch % config.save_every == 0 or state.epoch == config.epochs)
                        self.state_saved_step = state.step
                    if stop.requested or out_of_time:
                        break
                if self.state_saved_step != state.step:
                    self._save(segment_start, meter, epoch_file=False)
                    self.state_saved_step = state.step
        finally:
            view.close()
            if log is not None:
                log.close()
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

    def _agree(self, flag: bool) -> bool:
        """True on every process when it is true on any (a stop must happen at the same step everywhere)."""
        if self.accelerator.num_processes == 1:
            return flag
        return bool(self.accelerator.reduce(torch.tensor(float(flag), device=self.accelerator.device), reduction="sum").item() > 0)

    def _announce(self) -> None:
        config, plan = self.config, self.plan
        what = f"resuming from step {self.state.step}" if self.state.step else "training"
        self.console.print(
            f"{what}: {config.method} on {config.backbone}, {len(self.dataset):,} images {self.dataset.image_size}px, "
            f"batch {plan.global_batch} ({self.accelerator.num_processes} process(es) x {config.grad_accum} accumulation), "
            f"lr {scaled_lr(self.method_config.optimizer, plan.global_batch):.4g} ({self.method_config.optimizer.name}), "
            f"{plan.steps_per_epoch} steps/epoch x {config.epochs} epochs on {self.accelerator.device} -> {self.run_dir}",
            highlight=False,
        )


def train(config: TrainConfig, resume: bool = False, console: Console | None = None, progress: bool = True) -> TrainResult:
    """Pretrain ``config.method`` on ``config.backbone``; ``resume`` continues ``RUN/checkpoints/last.pt``.

    Raises :class:`TrainingDiverged` on a NaN/inf loss (the last good checkpoint is kept),
    :class:`TrainingInterrupted` after Ctrl-C (``last.pt`` saved at the current step),
    and :class:`EdgesslError` subclasses for anything the user can fix, before training starts.
    """
    return Trainer(config, resume, console or Console(), progress).run()
