"""One optimiser step, in the contract's order: progress set, backward, clipping, the method's pre-step
hook, the optimiser. Each is observed from inside the hook, where a method such as DINO acts."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from edgessl.errors import EdgesslError
from edgessl.methods.base import Method, MethodConfig, TrainingProgress
from edgessl.profiling.training_cost import profiling_accelerator
from edgessl.training.optim import OptimizerConfig
from edgessl.training.step import build_train_step

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # accelerate: one device per process


class _Recorder(Method):
    """Regresses a large target so gradients are far above any clipping threshold; records what the hook
    sees."""

    name = "recorder"

    def __init__(self) -> None:
        super().__init__("shufflenetv2", MethodConfig(), 8, (0.5,) * 3, (0.25,) * 3)
        self.encoder = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.encoder.feature_dim = 4
        self.head = nn.Linear(4, 3)
        self.seen: list[dict[str, Any]] = []

    def make_views(self, images: torch.Tensor) -> torch.Tensor:
        return self.normalize(images.float() / 255)

    def loss(self, views: torch.Tensor) -> torch.Tensor:
        return (self.head(self.encoder(views)) - 100.0).pow(2).mean()

    def before_optimizer_step(self) -> None:
        grads = [p.grad.detach().clone() for p in self.trainable_parameters()]
        self.seen.append({"progress": self.progress, "grads": grads})


def run_steps(config: OptimizerConfig, steps: int = 3) -> _Recorder:
    torch.manual_seed(0)
    method = _Recorder()
    images = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    step = build_train_step(
        profiling_accelerator(DEVICE),
        method,
        optimizer_config=config,
        batch_size=4,
        steps_per_epoch=2,
        total_steps=6,
        images=images,
    )
    for index in range(steps):
        step([torch.arange(4)], TrainingProgress(index, 2, 6))
    return method


def test_the_hook_sees_the_step_progress_after_backward() -> None:
    method = run_steps(OptimizerConfig(name="sgd", lr=1e-4))
    assert [seen["progress"] for seen in method.seen] == [TrainingProgress(i, 2, 6) for i in range(3)]
    assert [seen["progress"].epoch for seen in method.seen] == [0, 0, 1]
    assert all(g.abs().sum() > 0 for seen in method.seen for g in seen["grads"])  # after backward


def test_clipping_total_norm_and_each_parameter_norm_before_the_hook() -> None:
    unclipped = run_steps(OptimizerConfig(name="sgd", lr=1e-4), steps=1).seen[0]["grads"]
    assert torch.linalg.vector_norm(torch.stack([g.norm() for g in unclipped])) > 1.0
    total = run_steps(OptimizerConfig(name="sgd", lr=1e-4, clip_grad_norm=0.5), steps=1).seen[0]["grads"]
    norm = torch.linalg.vector_norm(torch.stack([g.norm() for g in total]))
    # torch's clip_grad_norm_: all gradients scaled together
    assert float(norm) == pytest.approx(0.5, rel=1e-4)
    ratios = [float(t.norm() / u.norm()) for t, u in zip(total, unclipped, strict=True)]
    assert max(ratios) == pytest.approx(min(ratios), rel=1e-4)
    each = run_steps(
        OptimizerConfig(name="sgd", lr=1e-4, clip_grad_norm=0.5, clip_grad_scope="parameter"), steps=1
    )
    for clipped, raw in zip(each.seen[0]["grads"], unclipped, strict=True):
        # DINO's utils.clip_gradients: max_norm / (norm + 1e-6) where that is below 1, per tensor
        expected = raw * min(1.0, 0.5 / (float(raw.norm()) + 1e-6))
        torch.testing.assert_close(clipped, expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"clip_grad_norm": 0.0}, "clip_grad_norm must be positive"),
        ({"clip_grad_scope": "layer"}, "unknown gradient-clipping scope"),
    ],
)
def test_a_bad_clipping_setting_fails_when_the_step_is_built(changes: dict, message: str) -> None:
    with pytest.raises(EdgesslError, match=message):
        run_steps(OptimizerConfig(name="sgd", **changes), steps=0)
