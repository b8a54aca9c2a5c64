"""Time boxes for a benchmark that must end by a deadline whatever it is doing.

A lent GPU is held for minutes, so a run that overstays loses everything it had not
written. :class:`Budget` keeps nested windows under one global deadline and arms a
``SIGALRM`` timer for the innermost window's end, so an expired window raises
:class:`OutOfTime` inside whatever runs there (a compilation, a training step, a
DataLoader wait), not at the next check a loop happens to make. Outside every window no
timer runs; bookkeeping between steps reads :meth:`Budget.left`.

The signal reaches the main thread only, so a budget works in the main thread of a
process (as a benchmark script is), one budget at a time.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import Any, Self, TypeVar

COMPLETE = "complete"
STOPPED_AT_SLICE = "stopped at its time slice"
STOPPED_AT_DEADLINE = "stopped at the global deadline"
Unit = TypeVar("Unit")


class OutOfTime(BaseException):
    """The innermost time window ended; a BaseException, so no ``except Exception`` swallows it."""


@dataclass(frozen=True)
class Window:
    end: float  # on the time.monotonic() clock

    def expired(self) -> bool:
        """True once the end has passed, whether or not :class:`OutOfTime` reached the code inside.

        (A nested window ending at the same moment may have caught it.)
        """
        return time.monotonic() >= self.end


class Budget:
    """Nested time windows under one global deadline of ``seconds`` from now.

    Use it as a context manager: entering installs the ``SIGALRM`` handler, leaving
    disarms the timer and restores the handler that was there before.
    """

    def __init__(self, seconds: float) -> None:
        self._ends = [time.monotonic() + seconds]
        self._previous: Callable[[int, FrameType | None], Any] | int | None = None

    def __enter__(self) -> Self:
        self._previous = signal.signal(signal.SIGALRM, self._expire)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self._previous)

    @staticmethod
    def _expire(signum: int, frame: FrameType | None) -> None:
        raise OutOfTime

    def left(self) -> float:
        """Seconds to the end of the innermost window (the global deadline outside every window)."""
        return self._ends[-1] - time.monotonic()

    def _arm(self) -> None:
        signal.setitimer(signal.ITIMER_REAL, max(self.left(), 1e-3) if len(self._ends) > 1 else 0)

    @contextmanager
    def window(self, seconds: float) -> Iterator[Window]:
        """At most ``seconds`` (less when an enclosing window ends sooner)."""
        window = Window(min(time.monotonic() + seconds, self._ends[-1]))
        self._ends.append(window.end)
        self._arm()
        try:
            yield window
        finally:
            self._ends.pop()
            self._arm()


def run_timeboxed(budget: Budget, seconds: float, step: Callable[[], None]) -> str:
    """Run ``step`` in a window of ``seconds`` and say how it ended.

    :data:`COMPLETE` when it returned in time; otherwise :data:`STOPPED_AT_SLICE`, or
    :data:`STOPPED_AT_DEADLINE` when the enclosing deadline was the nearer end, so a
    report tells a slice too short from a run out of time. An exception of ``step`` is
    its caller's to record, and propagates.
    """
    stopped = STOPPED_AT_SLICE if seconds < budget.left() else STOPPED_AT_DEADLINE
    try:
        with budget.window(seconds) as window:
            step()
    except OutOfTime:
        return stopped
    return stopped if window.expired() else COMPLETE


def paced(budget: Budget, units: Iterable[Unit]) -> Iterator[Unit]:
    """``units`` in turn, ending early when the time left is no more than the previous unit took.

    A unit cut by :class:`OutOfTime` has cost its time and recorded nothing, so one that
    would not finish is better not started. The first starts while any time is left; a unit's time is
    from its yield to the next request, the caller's bookkeeping for it included.
    """
    last_s = 0.0
    for unit in units:
        if budget.left() <= last_s:
            return
        start = time.monotonic()
        yield unit
        last_s = time.monotonic() - start
