"""A tiny registered method for trainer tests: seconds per run, but with everything a resume
must carry — BatchNorm running statistics, a momentum target, a queue buffer and random views.
"""

from __future__ import annotations

import copy
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from edgessl.backbones.base import Normalize
from edgessl.methods import METHODS, Method, MethodConfig, OptimizerConfig, Representation


@dataclass
class TinyConfig(MethodConfig):
    batch_size: int = 32
    optimizer: OptimizerConfig = field(
        default_factory=lambda: OptimizerConfig(name="sgd", lr=0.05, reference_batch_size=32, warmup_epochs=1)
    )
    noise: float = 0.1


class TinyMethod(Method):
    """Two noisy views, a BN conv encoder, an EMA target and a FIFO queue of target features."""

    name = "tiny"
    Config = TinyConfig
    # Fault hooks, set per test through the `tiny_faults` fixture (not config: a resume must not change
    # config)
    nan_at_call = 0  # > 0: the loss of that forward call and later ones is NaN (divergence tests)
    ctrl_c_at_call = 0  # > 0: that forward call sends this process SIGINT, as Ctrl-C would

    def __init__(self, backbone: str, config: TinyConfig, image_size: int, mean, std) -> None:
        super().__init__(backbone, config, image_size, mean, std)
        self.encoder = tiny_encoder()
        self.target = copy.deepcopy(self.encoder).requires_grad_(False)
        self.register_buffer("queue", torch.zeros(16, 8))
        self.calls = 0

    def make_views(self, images: torch.Tensor):
        x = self.normalize(images.float() / 255)
        return x + self.config.noise * torch.randn_like(x), x + self.config.noise * torch.randn_like(x)

    def loss(self, views) -> torch.Tensor:
        self.calls += 1
        if self.calls == self.ctrl_c_at_call:
            os.kill(os.getpid(), signal.SIGINT)
        online = F.normalize(self.encoder(views[0]), dim=1)
        with torch.no_grad():
            target = F.normalize(self.target(views[1]), dim=1)
            self.queue.copy_(torch.cat([target, self.queue])[: len(self.queue)])
        loss = 2 - 2 * (online * target).sum(1).mean() + 0.01 * (online @ self.queue.T).pow(2).mean()
        if self.nan_at_call and self.calls >= self.nan_at_call:
            loss = loss * float("nan")
        return loss

    def momentum_pairs(self):
        return [(self.encoder, self.target)]

    def momentum(self, progress: float) -> float:
        return 0.9

    def representation(self) -> Representation:
        return Representation(self.normalize, self.encoder, 8)

    @classmethod
    def build_representation(
        cls, backbone: str, config: TinyConfig, image_size: int, mean, std
    ) -> Representation:
        return Representation(Normalize(mean, std), tiny_encoder(), 8)


def tiny_encoder() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
    )


@pytest.fixture(scope="session", autouse=True)
def tiny_method() -> Iterator[None]:
    """Register the tiny method for the session (the method tests skip it: it is no shipped method)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(METHODS._entries, "tiny", TinyMethod)
        yield


@pytest.fixture
def tiny_faults(monkeypatch: pytest.MonkeyPatch):
    """``tiny_faults(ctrl_c_at_call=9)`` arms the tiny method's fault hooks for one test."""

    def arm(**hooks: int) -> None:
        for name, value in hooks.items():
            monkeypatch.setattr(TinyMethod, name, value)

    return arm


@pytest.fixture(scope="session", autouse=True)
def one_thread() -> Iterator[None]:
    """The test machine's two cores are shared: one thread avoids OpenMP spin contention (10x here)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
