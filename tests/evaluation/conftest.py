"""Tiny labelled image splits, a tiny convolutional representation, and run folders of its checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from edgessl.checkpoints import LoadedRepresentation, load_checkpoint, save_checkpoint
from edgessl.data.base import ImageDataset
from edgessl.evaluation import sweep as sweep_module
from edgessl.methods.base import Normalize, Representation

COLOURS = torch.tensor([[220, 40, 40], [40, 200, 60], [50, 60, 230], [230, 220, 40]], dtype=torch.float32)


def colour_split(split: str, per_class: int, size: int, seed: int) -> ImageDataset:
    """Noisy images whose class is their dominant colour (4 classes): separable, not trivial at init."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(len(COLOURS)).repeat_interleave(per_class)
    base = COLOURS[labels].view(-1, 3, 1, 1).expand(-1, 3, size, size)
    noise = 60 * torch.randn(len(labels), 3, size, size, generator=generator)
    images = (base + noise).clamp(0, 255).to(torch.uint8)
    return ImageDataset(
        "colours", split, images, labels, ("red", "green", "blue", "yellow"), (0.5,) * 3, (0.25,) * 3
    )


def tiny_representation(seed: int = 0, dim: int = 16) -> Representation:
    torch.manual_seed(seed)
    encoder = nn.Sequential(
        nn.Conv2d(3, dim, 3, padding=1), nn.BatchNorm2d(dim), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
    )
    return Representation(Normalize((0.5,) * 3, (0.25,) * 3), encoder, dim)


@pytest.fixture
def tiny_splits() -> tuple[ImageDataset, ImageDataset, Representation]:
    return colour_split("train", 16, 12, seed=1), colour_split("test", 10, 12, seed=2), tiny_representation()


EPOCHS = (10, 5, 20, 15)  # written out of order: the sweep must sort by epoch
IMAGE_SIZE = 16


def write_run_folder(run: Path, epochs: tuple[int, ...] = EPOCHS) -> None:
    """A run folder with four epoch checkpoints and last.pt, each holding different weights."""
    for epoch in (*epochs, None):
        model = tiny_representation(seed=epoch or 20)
        metadata = {
            "method": "tiny",
            "backbone": "tinyconv",
            "method_config": {},
            "train_config": {},
            "dataset": "shapes10",
            "image_size": IMAGE_SIZE,
            "mean": [0.5] * 3,
            "std": [0.25] * 3,
            "epoch": epoch or 20,
            "step": 0,
            "train_seconds": 1.0,
            "energy": {},
            "edgessl_version": "test",
        }
        name = f"epoch_{epoch:04d}.pt" if epoch else "last.pt"
        save_checkpoint({"metadata": metadata, "model": model.state_dict()}, run / "checkpoints" / name)


class Counters:
    """Counts checkpoint loads, data loads and protocol runs; can interrupt the sweep at the n-th run.

    ``tiny_data()`` swaps the dataset for small colour splits (shapes10 is real but slower).
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.monkeypatch = monkeypatch
        self.data_loads: list[tuple[str, str]] = []
        self.loads: list[str] = []
        self.runs: list[tuple[str, str]] = []
        self.interrupt_at: int | None = None
        real_evaluate = sweep_module.evaluate_representation

        def load(path: Path) -> LoadedRepresentation:
            self.loads.append(Path(path).name)
            state = load_checkpoint(path)
            model = tiny_representation()
            model.load_state_dict(state["model"])
            return LoadedRepresentation(model.eval(), {**state["metadata"], "checkpoint": str(path)})

        def evaluate(model, train, test, protocol, device=None, **options):
            if self.interrupt_at is not None and len(self.runs) + 1 == self.interrupt_at:
                raise KeyboardInterrupt
            self.runs.append((protocol, self.loads[-1]))
            return real_evaluate(model, train, test, protocol, device, **options)

        monkeypatch.setattr(sweep_module, "load_representation", load)
        monkeypatch.setattr(sweep_module, "evaluate_representation", evaluate)

    def tiny_data(self) -> None:
        def load_labelled_splits(spec: str, root=None, image_size=None) -> tuple[ImageDataset, ImageDataset]:
            self.data_loads.extend([(spec, "train"), (spec, "test")])
            size = image_size or 12
            return colour_split("train", 12, size, seed=0), colour_split("test", 12, size, seed=1)

        self.monkeypatch.setattr(sweep_module, "load_labelled_splits", load_labelled_splits)


@pytest.fixture
def counters(monkeypatch: pytest.MonkeyPatch) -> Counters:
    """Checkpoints load as tiny representations (no method needed); loads and runs are counted."""
    return Counters(monkeypatch)


@pytest.fixture
def colour_data():
    """``colour_data(split, per_class, size, seed)``: noisy single-colour images in 4 classes."""
    return colour_split


@pytest.fixture
def write_run():
    """``write_run(folder, epochs=(10, 5, 20, 15))``: epoch checkpoints (written out of order) plus
    last.pt."""
    return write_run_folder
