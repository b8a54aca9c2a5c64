"""benchmarks/timebox.py: what the GPU suite's time limits promise, on real timers and real overruns.

Each step here either sleeps or spins on the CPU past its window, so a cut is the
``SIGALRM`` timer's doing, not a check the step makes; the windows are a few tens of
milliseconds, and every test ends in well under a second.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))  # the benchmark modules import each other by module name

from timebox import (
    COMPLETE,
    STOPPED_AT_DEADLINE,
    STOPPED_AT_SLICE,
    Budget,
    OutOfTime,
    paced,
    run_timeboxed,
)

SLICE_S = 0.05


def spin(seconds: float) -> None:
    """Busy for ``seconds`` without a system call a signal could end early."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def timer_armed() -> bool:
    return signal.getitimer(signal.ITIMER_REAL)[0] > 0


def test_a_step_that_overruns_its_slice_is_cut_there_and_reported() -> None:
    with Budget(60) as budget:
        start = time.monotonic()
        status = run_timeboxed(budget, SLICE_S, lambda: time.sleep(5))
        took = time.monotonic() - start
        assert status == STOPPED_AT_SLICE
        assert SLICE_S <= took < SLICE_S + 0.5
        assert budget.left() > 59  # the global deadline runs on for the next step
        assert not timer_armed()  # outside every window no timer runs


def test_a_step_spinning_on_the_cpu_is_cut_as_well() -> None:
    with Budget(60) as budget:
        start = time.monotonic()
        assert run_timeboxed(budget, SLICE_S, lambda: spin(5)) == STOPPED_AT_SLICE
        assert time.monotonic() - start < SLICE_S + 0.5


def test_a_step_that_finishes_in_time_is_complete_and_never_interrupted() -> None:
    done = []
    with Budget(60) as budget:
        assert run_timeboxed(budget, 1.0, lambda: done.append("step")) == COMPLETE
        assert not timer_armed()
        time.sleep(2 * SLICE_S)  # no timer left behind to fire into the code after the step
    assert done == ["step"]


def test_a_slice_past_the_global_deadline_is_cut_at_the_deadline_and_says_so() -> None:
    with Budget(SLICE_S) as budget:
        start = time.monotonic()
        assert run_timeboxed(budget, 60, lambda: time.sleep(5)) == STOPPED_AT_DEADLINE
        assert time.monotonic() - start < SLICE_S + 0.5
        assert budget.left() <= 0


def test_out_of_time_passes_through_except_exception() -> None:
    """A step's own error handling (``except Exception``) cannot swallow the cut."""
    caught = []

    def careful_step() -> None:
        try:
            time.sleep(5)
        except Exception as exc:  # noqa: BLE001 -- what the test shows does not catch the cut
            caught.append(exc)

    with Budget(60) as budget:
        assert run_timeboxed(budget, SLICE_S, careful_step) == STOPPED_AT_SLICE
    assert caught == []
    assert issubclass(OutOfTime, BaseException) and not issubclass(OutOfTime, Exception)


def test_a_failing_step_raises_to_its_caller_with_the_timer_disarmed() -> None:
    def failing() -> None:
        raise ValueError("a kernel the device lacks")

    with Budget(60) as budget:
        with pytest.raises(ValueError, match="kernel"):
            run_timeboxed(budget, 1.0, failing)
        assert not timer_armed()
        assert budget.left() > 59


def test_an_inner_window_is_cut_while_the_outer_one_goes_on() -> None:
    after_inner = []

    def outer_step() -> None:
        assert run_timeboxed(budget, SLICE_S, lambda: time.sleep(5)) == STOPPED_AT_SLICE
        after_inner.append(budget.left())  # the outer window's time left, armed again
        assert timer_armed()

    with Budget(60) as budget:
        assert run_timeboxed(budget, 1.0, outer_step) == COMPLETE
    assert len(after_inner) == 1 and 0 < after_inner[0] < 1.0


def test_an_inner_window_never_outlasts_its_outer_one() -> None:
    def outer_step() -> None:
        outer_end = time.monotonic() + budget.left()
        with budget.window(60) as inner:
            assert inner.end <= outer_end + 1e-3
            time.sleep(5)

    with Budget(60) as budget:
        start = time.monotonic()
        # The inner window ends with the outer one and takes the cut: the outer step still ran out of time.
        assert run_timeboxed(budget, SLICE_S, outer_step) == STOPPED_AT_SLICE
        assert time.monotonic() - start < SLICE_S + 0.5


def test_leaving_the_budget_restores_the_previous_handler() -> None:
    def previous(signum: int, frame: object) -> None:
        raise AssertionError("not this one")

    before = signal.signal(signal.SIGALRM, previous)
    try:
        with Budget(60) as budget:
            assert signal.getsignal(signal.SIGALRM) is not previous
            run_timeboxed(budget, SLICE_S, lambda: time.sleep(5))
        assert signal.getsignal(signal.SIGALRM) is previous and not timer_armed()
    finally:
        signal.signal(signal.SIGALRM, before)


def test_paced_units_stop_when_the_next_would_not_fit() -> None:
    started = []

    def units() -> None:
        for unit in paced(budget, range(10)):
            started.append(unit)
            time.sleep(0.1)  # each unit takes 100 ms of a 250 ms window

    with Budget(60) as budget:
        assert run_timeboxed(budget, 0.25, units) == COMPLETE  # stopped before a cut, not by one
    assert started == [0, 1]


def test_paced_units_all_run_when_time_allows() -> None:
    with Budget(60) as budget:
        assert list(paced(budget, "abc")) == ["a", "b", "c"]
