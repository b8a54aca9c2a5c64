"""The batch feeders: prefetched batches are exactly the ones asked for, and training through them is
unchanged.

The CUDA-only parts (pinned buffers, the side stream and its event) run where a GPU is
present; here the prefetching feeder runs its same thread and bookkeeping on the host.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_runs import tiny_config

from edgessl.training import step as step_module
from edgessl.training.batches import InPlaceFeeder, PrefetchingFeeder, build_feeder
from edgessl.training.run_log import METRICS_FILE, read_metrics
from edgessl.training.sampling import epoch_permutation, micro_batches, plan_batches
from edgessl.training.trainer import train


def memory_mapped_images(tmp_path: Path, count: int = 40) -> torch.Tensor:
    """uint8 images in a file mapped as the cache maps it (copy-on-write), as a tensor."""
    path = tmp_path / "images.u8"
    rng = np.random.default_rng(0)
    rng.integers(0, 256, (count, 3, 8, 8), dtype=np.uint8).tofile(path)
    return torch.from_numpy(np.memmap(path, np.uint8, "c", shape=(count, 3, 8, 8)))


def test_in_place_feeder_indexes_the_map_without_copying_it(tmp_path: Path) -> None:
    images = memory_mapped_images(tmp_path)
    feeder = build_feeder(images, torch.device("cpu"))
    assert isinstance(feeder, InPlaceFeeder)
    assert feeder.images.data_ptr() == images.data_ptr()  # the map itself, not a pinned or loaded copy
    chunks = [torch.tensor([3, 1]), torch.tensor([7])]
    for got, chunk in zip(feeder.take(chunks), chunks, strict=True):
        assert torch.equal(got, images[chunk])


def test_prefetched_batches_are_the_ones_asked_for_in_order(tmp_path: Path) -> None:
    images = memory_mapped_images(tmp_path)
    plan = plan_batches(len(images), 8, 1, 0, 2)
    steps = [
        micro_batches(epoch_permutation(len(images), 5, epoch), plan, batch)
        for epoch in range(2)
        for batch in range(5)
    ]
    feeder = PrefetchingFeeder(images, torch.device("cpu"))
    served = []
    for index, chunks in enumerate(steps):
        prefetched = feeder.pending
        batches = feeder.take(chunks)
        served.append(prefetched is not None and prefetched.serves(chunks))
        if index + 1 < len(steps):
            feeder.prefetch(steps[index + 1])
        assert [len(b) for b in batches] == [4, 4]
        for got, chunk in zip(batches, chunks, strict=True):
            assert torch.equal(got, images[chunk])
    assert served == [False] + [True] * (len(steps) - 1)  # every step after the first was prefetched
    feeder.close()
    assert feeder.worker._shutdown


def test_a_prefetch_for_other_indices_is_dropped_not_served(tmp_path: Path) -> None:
    images = memory_mapped_images(tmp_path)
    feeder = PrefetchingFeeder(images, torch.device("cpu"))
    feeder.prefetch([torch.tensor([0, 1, 2])])
    wanted = [torch.tensor([9, 8, 7])]
    (got,) = feeder.take(wanted)
    assert torch.equal(got, images[wanted[0]])
    assert feeder.pending is None
    feeder.close()


class RecordingFeeder(PrefetchingFeeder):
    """The prefetching feeder, counting how many steps its prefetch served."""

    taken = served = 0

    def take(self, chunks: list[torch.Tensor]) -> list[torch.Tensor]:
        type(self).taken += 1
        type(self).served += self.pending is not None and self.pending.serves(chunks)
        return super().take(chunks)


def test_training_through_the_prefetching_feeder_is_the_same_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same losses step for step, and every step but the first was prefetched, across the epoch boundary."""
    config = {"epochs": 2, "seed": 4, "deterministic": True, "grad_accum": 2}
    plain = train(tiny_config(tmp_path / "plain", **config), progress=False)
    monkeypatch.setattr(step_module, "build_feeder", lambda images, device: RecordingFeeder(images, device))
    fed = train(tiny_config(tmp_path / "fed", **config), progress=False)
    losses = [[r["loss"] for r in read_metrics(run / METRICS_FILE)] for run in (plain.run_dir, fed.run_dir)]
    assert fed.steps == plain.steps == len(losses[0]) > 20
    assert losses[1] == losses[0]
    assert (RecordingFeeder.taken, RecordingFeeder.served) == (fed.steps, fed.steps - 1)
