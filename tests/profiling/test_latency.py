"""Latency backends: same outputs as eager, positive times ordered by batch size, ratios consistent."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgessl.backbones import build_backbone
from edgessl.errors import UnknownNameError
from edgessl.profiling.latency import BACKENDS, measure_latency
from edgessl.timing import summarise, time_calls


@pytest.fixture(scope="module")
def encoder() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_backbone("shufflenetv2").eval()


@pytest.mark.parametrize("backend", ["channels_last", "onnxruntime"])
def test_backends_compute_what_eager_computes_and_take_longer_on_bigger_batches(
    encoder: torch.nn.Module, backend: str
) -> None:
    bind = BACKENDS.get(backend).prepare(encoder, torch.device("cpu"), 1)  # ORT: one export, symbolic batch
    batch = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = encoder(batch).numpy()
    output = bind(batch)()
    got = output[0] if isinstance(output, list) else output.numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    times = time_calls({n: bind(torch.rand(n, 3, 32, 32)) for n in (1, 32)}, warmup=1, repeats=5)
    (one, _), (thirty_two, _) = summarise(times[1]), summarise(times[32])
    assert 0 < one < thirty_two


def test_latency_rows_are_positive_ordered_by_batch_and_ratios_are_consistent(
    encoder: torch.nn.Module,
) -> None:
    result = measure_latency(
        encoder,
        48,
        batch_sizes=(1, 32),
        backends=("eager", "channels_last", "onnxruntime-cuda"),
        threads=1,
        warmup=1,
        repeats=5,
    )
    assert result.skipped.keys() == {"onnxruntime-cuda"}  # CPU run: the CUDA provider is reported, not run
    rows = {(row.backend, row.batch_size): row for row in result.rows}
    assert rows.keys() == {(b, n) for b in ("eager", "channels_last") for n in (1, 32)}
    for (backend, batch_size), row in rows.items():
        assert 0 < row.median_ms <= row.p90_ms and row.threads == 1
        assert row.speedup_vs_eager == pytest.approx(rows[("eager", batch_size)].median_ms / row.median_ms)
        if batch_size == 32:
            # a batch of 32 takes longer per call than 1 image
            assert row.median_ms > rows[(backend, 1)].median_ms
    assert rows[("eager", 1)].speedup_vs_eager == 1.0


class _Unexportable(torch.nn.Module):
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.mean((2, 3)) if images.sum() > 0 else images.amax((2, 3))  # data-dependent branch


def test_a_model_onnx_cannot_export_is_skipped_with_the_reason() -> None:
    result = measure_latency(
        _Unexportable(), 8, batch_sizes=(1,), backends=("eager", "onnxruntime"), warmup=0, repeats=1
    )
    assert [row.backend for row in result.rows] == ["eager"]
    assert "export failed" in result.skipped["onnxruntime"] and "\x1b" not in result.skipped["onnxruntime"]


def test_timing_helpers() -> None:
    order: list[str] = []
    times = time_calls({"a": lambda: order.append("a"), "b": lambda: order.append("b")}, warmup=1, repeats=2)
    assert order == ["a", "b"] * 3  # interleaved, warm-up included
    assert {name: len(seconds) for name, seconds in times.items()} == {"a": 2, "b": 2}
    median, p90 = summarise([i / 1000 for i in range(1, 11)])
    assert median == pytest.approx(5.5) and p90 == pytest.approx(9.1)


def test_unknown_backend_names_the_valid_ones(encoder: torch.nn.Module) -> None:
    with pytest.raises(UnknownNameError, match="onnxruntime"):
        measure_latency(encoder, 32, backends=("onnx",))
