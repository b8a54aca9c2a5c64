"""Inference latency of an encoder: PyTorch eager, channels_last and ONNX Runtime, side by side.

Every backend runs the same model on the same input with the same thread count
(``torch.set_num_threads`` and ORT's ``intra_op_num_threads``, inter-op 1), after
``warmup`` untimed calls; the backends' calls are interleaved round by round so that load
from other processes hits them alike. The median and 90th percentile of ``repeats``
timed calls are reported with the speed-up over eager (eager median / backend median, > 1 is faster).
Input conversion (to channels_last, to numpy) happens once, outside the timed calls, as
a deployment would feed data already in its layout. The ORT CUDA provider is fed numpy
arrays, so its times include the host-to-device copies.

For ONNX Runtime the encoder goes through ``edgessl.export.onnx_export.export_proto``,
the same dynamo export (symbolic batch axis) that ``edgessl export`` ships, so the ORT
figures describe the deployed graph; the session is built from the in-memory proto.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import torch
from torch import nn

from edgessl.registry import Registry
from edgessl.timing import Call, summarise, time_calls

Bind = Callable[[torch.Tensor], Call]  # prepares a float batch for the backend


@dataclass(frozen=True)
class Backend:
    """How to run a model one way; ``unavailable`` says why it cannot run here (None = it can)."""

    name: str
    description: str
    unavailable: Callable[[torch.device], str | None]
    prepare: Callable[[nn.Module, torch.device, int], Bind]  # (model, device, threads)


BACKENDS: Registry[Backend] = Registry("latency backend")


@dataclass
class LatencyStats:
    """Timing of one backend at one batch size (per call, i.e. per batch)."""

    backend: str
    batch_size: int
    median_ms: float
    p90_ms: float
    repeats: int
    warmup: int
    threads: int
    speedup_vs_eager: float | None = None  # eager median / this median; None without an eager row

    @property
    def images_per_second(self) -> float:
        return self.batch_size / (self.median_ms / 1000.0)

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "images_per_second": self.images_per_second}


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with ``threads`` intra-op threads, restoring the previous count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _synchronizer(device: torch.device) -> Callable[[], None]:
    return (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)


def _eager_prepare(memory_format: torch.memory_format) -> Callable[[nn.Module, torch.device, int], Bind]:
    def prepare(model: nn.Module, device: torch.device, threads: int) -> Bind:
        runnable = copy.deepcopy(model).to(device).eval().to(memory_format=memory_format)

        def bind(batch: torch.Tensor) -> Call:
            images = batch.to(device).contiguous(memory_format=memory_format)

            def call() -> object:
                with torch.inference_mode():
                    return runnable(images)

            return call

        return bind

    return prepare


def _ort_prepare(provider: str) -> Callable[[nn.Module, torch.device, int], Bind]:
    def prepare(model: nn.Module, device: torch.device, threads: int) -> Bind:
        import onnxruntime as ort

        from edgessl.export.onnx_export import INPUT_NAME, export_proto

        sessions: dict[int, ort.InferenceSession] = {}  # by image size; the batch axis is symbolic

        def bind(batch: torch.Tensor) -> Call:
            image_size = batch.shape[-1]
            if image_size not in sessions:
                proto = export_proto(copy.deepcopy(model), image_size)
                options = ort.SessionOptions()
                options.intra_op_num_threads = threads
                options.inter_op_num_threads = 1
                sessions[image_size] = ort.InferenceSession(
                    proto.SerializeToString(), options, providers=[provider]
                )
            session, feed = sessions[image_size], {INPUT_NAME: batch.cpu().numpy()}
            return lambda: session.run(None, feed)

        return bind

    return prepare


def _ort_provider_missing(provider: str, device_type: str | None) -> Callable[[torch.device], str | None]:
    def unavailable(device: torch.device) -> str | None:
        import onnxruntime as ort

        if device_type is not None and device.type != device_type:
            return f"needs --device {device_type}"
        if provider not in ort.get_available_providers():
            return (
                f"onnxruntime has no {provider} "
                f"(installed providers: {', '.join(ort.get_available_providers())})"
            )
        return None

    return unavailable


def _always(device: torch.device) -> str | None:
    return None


for _backend in (
    Backend("eager", "PyTorch eager, contiguous (NCHW)", _always, _eager_prepare(torch.contiguous_format)),
    Backend(
        "channels_last",
        "PyTorch eager, channels_last (NHWC) model and input",
        _always,
        _eager_prepare(torch.channels_last),
    ),
    Backend(
        "onnxruntime",
        "ONNX Runtime, CPUExecutionProvider",
        _ort_provider_missing("CPUExecutionProvider", None),
        _ort_prepare("CPUExecutionProvider"),
    ),
    Backend(
        "onnxruntime-cuda",
        "ONNX Runtime, CUDAExecutionProvider (numpy in/out: includes copies)",
        _ort_provider_missing("CUDAExecutionProvider", "cuda"),
        _ort_prepare("CUDAExecutionProvider"),
    ),
):
    BACKENDS.register(_backend.name)(_backend)

DEFAULT_BACKENDS = tuple(BACKENDS.names())


@dataclass
class LatencyResult:
    """All measured rows plus the backends skipped on this machine and why."""

    rows: list[LatencyStats]
    skipped: dict[str, str]


def measure_latency(
    model: nn.Module,
    image_size: int,
    *,
    batch_sizes: Sequence[int] = (1, 32),
    backends: Sequence[str] = DEFAULT_BACKENDS,
    device: str | torch.device = "cpu",
    threads: int = 1,
    warmup: int = 5,
    repeats: int = 30,
    seed: int = 0,
) -> LatencyResult:
    """Median/p90 latency of ``model`` for every available backend and batch size."""
    device = torch.device(device)
    chosen = [BACKENDS.get(name) for name in backends]
    skipped = {
        backend.name: reason for backend in chosen if (reason := backend.unavailable(device)) is not None
    }
    runnable = [backend for backend in chosen if backend.name not in skipped]
    generator = torch.Generator().manual_seed(seed)
    rows: list[LatencyStats] = []
    with torch_threads(threads):
        binders = {backend.name: backend.prepare(model, device, threads) for backend in runnable}
        for batch_size in batch_sizes:
            batch = torch.rand(batch_size, 3, image_size, image_size, generator=generator)
            times = time_calls(_bind_all(binders, batch, skipped), warmup, repeats, _synchronizer(device))
            for name, seconds in times.items():
                median, p90 = summarise(seconds)
                rows.append(LatencyStats(name, batch_size, median, p90, repeats, warmup, threads))
    _fill_speedups(rows)
    return LatencyResult(rows, skipped)


def _bind_all(binders: dict[str, Bind], batch: torch.Tensor, skipped: dict[str, str]) -> dict[str, Call]:
    """Each backend's call on ``batch``; a backend whose ONNX export fails moves to ``skipped``."""
    from edgessl.export.metadata import ExportError

    calls = {}
    for name, bind in list(binders.items()):
        try:
            calls[name] = bind(batch)
        except ExportError as exc:
            skipped[name] = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))  # the exporter colours its messages
            del binders[name]
    return calls


def _fill_speedups(rows: list[LatencyStats]) -> None:
    eager = {row.batch_size: row.median_ms for row in rows if row.backend == "eager"}
    for row in rows:
        if row.batch_size in eager:
            row.speedup_vs_eager = eager[row.batch_size] / row.median_ms
