"""What a person watching the run sees, and how they stop it: the progress bar and Ctrl-C."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

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
            self._task = self._progress.add_task(
                "train", total=total, completed=done, epoch="-", loss="-", speed="-"
            )
            self._progress.start()

    def update(self, step: int, epoch: int, loss: float, speed: float) -> None:
        if self._progress is not None:
            self._progress.update(
                self._task, completed=step, epoch=epoch, loss=f"{loss:.4f}", speed=f"{speed:,.0f}"
            )

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
