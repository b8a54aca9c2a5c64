"""What a person watching the run sees, and how they stop it: a progress bar or log lines, and Ctrl-C.

A terminal gets a rich progress bar. Anything else (a cluster job's log file, a pipe)
gets a plain line every ``log_every`` steps or ``LOG_SECONDS`` seconds, whichever comes
first, as timm prints them: epoch, step/total, loss, lr, images/s, ETA, and the latest
monitor values.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


class StopRequest:
    """The first Ctrl-C sets a flag the loop reads at step boundaries; a second aborts at once."""

    def __init__(self) -> None:
        self.requested = False

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def agreed(self, accelerator: Any, out_of_time: bool) -> bool:
        """Whether every process stops at this step: Ctrl-C or ``out_of_time`` on any one stops all (one
        reduce)."""
        flags = torch.tensor([float(self.requested), float(out_of_time)], device=accelerator.device)
        if accelerator.num_processes > 1:
            flags = accelerator.reduce(flags, reduction="sum")
        self.requested, out_of_time = (bool(value > 0) for value in flags.tolist())
        return self.requested or out_of_time

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


LOG_SECONDS = 60.0


class ProgressView:
    """A rich progress bar on a terminal, else periodic plain lines; nothing when disabled."""

    def __init__(self, console: Console, enabled: bool, total: int, done: int, log_every: int) -> None:
        self.console, self.enabled, self.total, self.log_every = console, enabled, total, log_every
        self._progress = None
        self._last_line_step, self._last_line_time, self._start = (
            done,
            time.monotonic(),
            (done, time.monotonic()),
        )
        if enabled and console.is_terminal:
            self._progress = Progress(
                TextColumn("[bold]epoch {task.fields[epoch]}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}  {task.fields[speed]} img/s {task.fields[monitor]}"),
                TimeRemainingColumn(),
                console=console,
                transient=False,
            )
            self._task = self._progress.add_task(
                "train", total=total, completed=done, epoch="-", loss="-", speed="-", monitor=""
            )
            self._progress.start()

    def update(self, step: int, epoch: int, values: dict[str, Any]) -> None:
        """``values``: the latest ``loss``, ``lr``, ``images_per_s`` and any monitor values."""
        if not self.enabled:
            return
        monitor = monitor_text(values)
        if self._progress is not None:
            self._progress.update(
                self._task,
                completed=step,
                epoch=epoch,
                loss=f"{values['loss']:.4f}",
                speed=f"{values['images_per_s']:,.0f}",
                monitor=monitor,
            )
        elif (
            step - self._last_line_step >= self.log_every
            or time.monotonic() - self._last_line_time >= LOG_SECONDS
            or step == self.total
        ):
            self._last_line_step, self._last_line_time = step, time.monotonic()
            self.console.print(
                f"epoch {epoch} step {step}/{self.total} loss {values['loss']:.4f} lr {values['lr']:.4g} "
                f"{values['images_per_s']:,.0f} img/s eta {self._eta(step)}"
                f"{' ' + monitor if monitor else ''}",
                markup=False,
                highlight=False,
            )

    def _eta(self, step: int) -> str:
        done, started = self._start
        rate = (step - done) / max(time.monotonic() - started, 1e-9)
        seconds = int((self.total - step) / rate) if rate > 0 else 0
        return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()


MONITOR_LABELS = {
    "knn_accuracy": ("knn", "{:.1%}"),
    "embedding_std": ("std", "{:.3f}"),
    "effective_rank": ("rank", "{:.1f}"),
}


def monitor_text(values: dict[str, Any]) -> str:
    """``knn 41.2% std 0.021 rank 37.5`` from whichever monitor values are present."""
    return " ".join(
        label + " " + style.format(values[key])
        for key, (label, style) in MONITOR_LABELS.items()
        if key in values
    )


def start_line(trainer: Any, changes: dict[str, tuple[Any, Any]] | None) -> str:
    """What the run is about to do, in one line: method, data, batch split, lr, steps, device, folder."""
    from edgessl.training.optim import scaled_lr

    config, plan, data, accelerator = trainer.config, trainer.plan, trainer.dataset, trainer.accelerator
    changed = ", ".join(f"{key} {old} -> {new}" for key, (old, new) in (changes or {}).items())
    what = (
        "training"
        if changes is None
        else f"resuming from step {trainer.state.position.step}" + (f" ({changed})" if changed else "")
    )
    optimizer = trainer.method_config.optimizer
    return (
        f"{what}: {config.method} ({config.recipe} recipe) on {config.backbone}"
        f"{frozen_clause(trainer.method)}, "
        f"{len(data):,} images {data.image_size}px{cache_clause(data)}, "
        f"batch {plan.global_batch} ({accelerator.num_processes} process(es) x {config.grad_accum} "
        "accumulation), "
        f"lr {scaled_lr(optimizer, plan.global_batch):.4g} ({optimizer.name}), "
        f"{plan.steps_per_epoch} steps/epoch x {config.epochs} epochs on {accelerator.device} -> {config.out}"
    )


def cache_clause(data: Any) -> str:
    """``" (cache reused in 0.3s)"`` for a decoded source (folders, hf:, wds:); nothing for in-memory
    datasets."""
    return f" ({data.cache.describe()})" if data.cache is not None else ""


def frozen_clause(method: Any) -> str:
    """``", from teacher resnet18 (11.2M params, simclr run, 32px, RUN/checkpoints/last.pt)"`` per frozen
    module."""
    parts = []
    for name, seen in method.frozen_provenance().items():
        trained = f"{seen['method']} run, " if seen.get("method") else ""
        size = f"{seen.get('params', 0) / 1e6:.1f}M params, {trained}{seen.get('image_size')}px"
        parts.append(f", from {name} {seen.get('backbone')} ({size}, {seen.get('source')})")
    return "".join(parts)
