"""Wall-clock timing of calls, interleaved and summarised: torch-free, so ONNX-only code times with it too."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np

Call = Callable[[], object]


def time_calls(
    calls: Mapping[str, Call], warmup: int, repeats: int, synchronize: Callable[[], None] = lambda: None
) -> dict[str, list[float]]:
    """Seconds of ``repeats`` calls of each entry after ``warmup`` untimed ones.

    The calls are interleaved (one of each per round) so that a burst of load from other
    processes slows every backend alike instead of the one that happened to be running.
    """
    for _ in range(warmup):
        for call in calls.values():
            call()
    synchronize()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            synchronize()
            times[name].append(time.perf_counter() - start)
    return times


def summarise(times: Sequence[float]) -> tuple[float, float]:
    """(median, 90th percentile) in milliseconds."""
    values = np.asarray(times, dtype=np.float64) * 1000.0
    return float(np.median(values)), float(np.percentile(values, 90))
