"""One torch thread for every profiling test: on a small shared machine two oversubscribed
OpenMP threads turn a 10 ms call into seconds, which tests timing nothing cannot afford."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from edgessl.profiling.latency import torch_threads


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with torch_threads(1):
        yield
