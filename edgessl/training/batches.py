"""How a step's uint8 micro-batches reach the device: indexed in place, or prefetched while the
previous step runs.

Two cases, chosen by :func:`build_feeder`:

* The images are already where the step runs (CPU training, or a dataset that fits a
  quarter of the GPU and was copied there once): :class:`InPlaceFeeder` indexes them.
  On CPU, gathering a batch from the memory-mapped cache costs well under 5% of a step
  (``benchmarks/results/data_scale.md``), so nothing is gained by overlapping it.
* CUDA with the dataset left on the host (a memory map larger than the GPU budget):
  :class:`PrefetchingFeeder` gathers the *next* step's micro-batches in a background
  thread into pinned memory and copies them with ``non_blocking=True`` on a side stream,
  while the current step's kernels run. The step waits only for that copy (an event on
  its stream), not for the host.

Pinned buffers come from PyTorch's caching host allocator, which does not hand a block
out again until the copies recorded on it have finished; that is the double buffer,
without a second hand-written one. The whole dataset is never pinned: pinning a memory
map would copy it into every process's locked memory, defeating the one shared cache.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import torch


class BatchFeeder(Protocol):
    """Hands a step its micro-batches on the step's device, and may start on the next step's early."""

    images: torch.Tensor  # the uint8 dataset (N, 3, H, W), wherever it lives

    def take(self, chunks: list[torch.Tensor]) -> list[torch.Tensor]:
        """The uint8 micro-batches of index tensors ``chunks``, on the device, ready for this stream."""
        ...

    def prefetch(self, chunks: list[torch.Tensor]) -> None:
        """Start moving the next step's ``chunks`` (a no-op where that gains nothing)."""
        ...

    def close(self) -> None: ...


@dataclass
class InPlaceFeeder:
    """Images already on the step's device (or CPU training): index them there."""

    images: torch.Tensor
    device: torch.device

    def take(self, chunks: list[torch.Tensor]) -> list[torch.Tensor]:
        here = self.images.device
        return [self.images[chunk.to(here)].to(self.device, non_blocking=True) for chunk in chunks]

    def prefetch(self, chunks: list[torch.Tensor]) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class Prefetched:
    """One step's micro-batches in flight: the indices they were made from, and the thread's result."""

    chunks: list[torch.Tensor]
    result: Future  # -> (batches, copy event or None)

    def serves(self, chunks: list[torch.Tensor]) -> bool:
        return len(chunks) == len(self.chunks) and all(
            torch.equal(a, b) for a, b in zip(chunks, self.chunks, strict=True)
        )


@dataclass
class PrefetchingFeeder:
    """Host images, device step: the next step's batches are gathered and copied while this one runs.

    ``take`` of the chunks last passed to ``prefetch`` waits only for their copy; any
    other chunks (the first step, a resumed position) are gathered on the spot, so the
    batches are the same whatever was prefetched.
    """

    images: torch.Tensor  # on the host (usually a view of the memory-mapped cache)
    device: torch.device
    pending: Prefetched | None = None
    worker: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="edgessl-prefetch")
    )
    stream: torch.cuda.Stream | None = None

    def __post_init__(self) -> None:
        if self.device.type == "cuda" and self.stream is None:
            self.stream = torch.cuda.Stream(self.device)

    def prefetch(self, chunks: list[torch.Tensor]) -> None:
        self.drop_pending()
        self.pending = Prefetched(chunks, self.worker.submit(self.load, chunks))

    def take(self, chunks: list[torch.Tensor]) -> list[torch.Tensor]:
        pending, self.pending = self.pending, None
        if pending is not None and pending.serves(chunks):
            batches, copied = pending.result.result()
        else:
            if pending is not None:
                pending.result.result()  # let it finish before its buffers are dropped
            batches, copied = self.load(chunks)
        if copied is not None:
            current = torch.cuda.current_stream(self.device)
            current.wait_event(copied)
            for batch in batches:  # allocated on the side stream, used on this one
                batch.record_stream(current)
        return batches

    def load(self, chunks: list[torch.Tensor]) -> tuple[list[torch.Tensor], torch.cuda.Event | None]:
        """Gather ``chunks`` from the host images (into pinned memory for CUDA) and start their copies."""
        pin = self.stream is not None
        host = []
        for chunk in chunks:
            buffer = torch.empty(
                (len(chunk), *self.images.shape[1:]), dtype=self.images.dtype, pin_memory=pin
            )
            host.append(torch.index_select(self.images, 0, chunk, out=buffer))
        if self.stream is None:
            return host, None
        with torch.cuda.stream(self.stream):
            batches = [buffer.to(self.device, non_blocking=True) for buffer in host]
            copied = torch.cuda.Event()
            copied.record(self.stream)
        return batches, copied

    def drop_pending(self) -> None:
        if self.pending is not None:
            self.pending.result.result()
            self.pending = None

    def close(self) -> None:
        self.drop_pending()
        self.worker.shutdown(wait=True)


def fits_on_device(images: torch.Tensor, device: torch.device) -> bool:
    """A CUDA device takes the whole uint8 dataset when it is under a quarter of its memory."""
    return (
        device.type == "cuda" and images.numel() < torch.cuda.get_device_properties(device).total_memory // 4
    )


def build_feeder(images: torch.Tensor, device: torch.device) -> BatchFeeder:
    """The feeder for ``images`` on ``device``: copied once when they fit a CUDA device, prefetched when
    they do not."""
    if device.type != "cuda":
        return InPlaceFeeder(images, device)
    if fits_on_device(images, device):
        return InPlaceFeeder(images.to(device), device)
    return PrefetchingFeeder(images, device)
