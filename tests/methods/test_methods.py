"""Every method on every study backbone, and the momentum/queue mechanics exactly."""

from __future__ import annotations

import io
from typing import Any

import pytest
import torch

from edgessl.errors import UnknownNameError
from edgessl.methods import METHODS, Method, build_method, method_class, method_names
from edgessl.methods.base import cosine_momentum
from edgessl.methods.byol import BYOL
from edgessl.methods.losses import normalized_regression_loss
from edgessl.methods.mocov2 import MoCoV2, enqueue
from edgessl.training.optim import build_optimizer

STUDY_BACKBONES = ["efficientnet_lite0", "mobilenetv2", "resnet18", "shufflenetv2", "squeezenet"]
STUDY_METHODS = ["rotnet", "mocov2", "splitbrain", "simclr", "byol"]
# Shrunk heads and queue so 25 method x backbone pairs run in seconds.
SMALL: dict[str, dict[str, Any]] = {
    "mocov2": {"queue_size": 16, "hidden_dim": 32, "out_dim": 8},
    "simclr": {"hidden_dim": 32, "out_dim": 8},
    "byol": {"hidden_dim": 32, "out_dim": 8},
}
MEAN, STD = (0.45, 0.44, 0.40), (0.25, 0.25, 0.26)


def small_method(name: str, backbone: str = "squeezenet", size: int = 32, **overrides: Any) -> Method:
    cls = method_class(name)
    return build_method(name, backbone, size, MEAN, STD, cls.Config(**{**SMALL.get(name, {}), **overrides}))


def uint8_batch(n: int = 4, size: int = 32) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8)


@pytest.mark.parametrize("backbone", STUDY_BACKBONES)
@pytest.mark.parametrize("name", STUDY_METHODS)
def test_training_steps_are_finite_and_move_the_encoder(name: str, backbone: str) -> None:
    torch.manual_seed(0)
    method = small_method(name, backbone)
    optimizer = build_optimizer(method, method.config.optimizer, batch_size=4)
    before = {k: v.clone() for k, v in method.state_dict().items()}
    for step in range(2):
        loss = method(uint8_batch()).loss
        assert loss.ndim == 0 and torch.isfinite(loss), f"{name}/{backbone} step {step}: loss {loss}"
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        method.after_optimizer_step(progress=step / 2)
    representation = method.representation()
    moved = [
        k
        for k, v in representation.state_dict().items()
        if v.is_floating_point() and not torch.equal(v, before[_method_key(method, representation, k)])
    ]
    assert moved, "no representation weight changed after two optimiser steps"
    features = representation.eval()(torch.rand(3, 3, 32, 32))
    assert features.shape == (3, representation.feature_dim) and torch.isfinite(features).all()
    # the representation shares its tensors with the method (evaluation sees the trained weights)
    method_tensors = {p.data_ptr() for p in method.parameters()}
    assert all(p.data_ptr() in method_tensors for p in representation.parameters())


def _method_key(method: Method, representation: torch.nn.Module, key: str) -> str:
    """The method's state-dict name of a representation tensor (found by identity)."""
    target = representation.state_dict()[key].data_ptr()
    return next(k for k, v in method.state_dict().items() if v.data_ptr() == target)


def test_registry_builds_every_method_with_paper_defaults() -> None:
    assert sorted(method_names()) == sorted(STUDY_METHODS)
    for name in STUDY_METHODS:
        assert METHODS.get(name).name == name
    method = build_method("simclr", "squeezenet", 32, MEAN, STD)
    assert type(method).__name__ == "SimCLR" and method.config == method_class("simclr").Config()
    with pytest.raises(UnknownNameError, match="simclr"):
        build_method("simclrr", "squeezenet", 32, MEAN, STD)


def test_paper_defaults() -> None:
    moco, byol, simclr = (method_class(n).Config() for n in ("mocov2", "byol", "simclr"))
    assert (moco.queue_size, moco.momentum, moco.temperature, moco.hidden_dim, moco.out_dim) == (
        65536,
        0.999,
        0.2,
        2048,
        128,
    )
    assert (moco.optimizer.name, moco.optimizer.lr, moco.optimizer.reference_batch_size) == ("sgd", 0.03, 256)
    assert (byol.base_momentum, byol.hidden_dim, byol.out_dim) == (0.996, 4096, 256)
    assert (
        byol.optimizer.name,
        byol.optimizer.lr,
        byol.optimizer.weight_decay,
        byol.optimizer.warmup_epochs,
    ) == ("lars", 0.2, 1.5e-6, 10)
    assert (simclr.optimizer.name, simclr.optimizer.lr, simclr.optimizer.weight_decay, simclr.out_dim) == (
        "lars",
        0.3,
        1e-6,
        128,
    )


def test_rotnet_views_are_all_four_rotations_of_every_image() -> None:
    method = small_method("rotnet")
    images = uint8_batch(3)
    views, labels = method.make_views(images)
    assert views.shape == (12, 3, 32, 32) and views.dtype == torch.float32
    assert labels.tolist() == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3
    assert torch.equal(views[4], torch.rot90(images[1], 1, dims=(1, 2)) / 255.0)


def test_enqueue_wraps_around_a_queue_not_divisible_by_the_batch() -> None:
    queue, pointer = torch.zeros(5, 1), torch.zeros((), dtype=torch.long)
    for start in (1, 3, 5):  # batches [1, 2], [3, 4], [5, 6]
        enqueue(queue, pointer, torch.tensor([[start], [start + 1.0]]))
    assert queue.flatten().tolist() == [6, 2, 3, 4, 5] and pointer.item() == 1
    enqueue(queue, pointer, torch.arange(10.0, 17.0).view(7, 1))  # larger than the queue: as one at a time
    assert queue.flatten().tolist() == [14, 15, 16, 12, 13] and pointer.item() == 3


def test_moco_enqueues_the_normalised_keys_and_keeps_queue_in_checkpoints() -> None:
    torch.manual_seed(0)
    method = small_method("mocov2", queue_size=6)
    assert isinstance(method, MoCoV2)
    for name, online in method.encoder.state_dict().items():
        assert torch.equal(online, method.key_encoder.state_dict()[name])
    assert not any(p.requires_grad for p in [*method.key_encoder.parameters(), *method.key_head.parameters()])
    views = method.make_views(uint8_batch(4))
    old_queue = method.queue.clone()
    method.loss(views)
    assert method.queue_pointer.item() == 4 and torch.equal(method.queue[4:], old_queue[4:])
    assert torch.allclose(method.queue[:4].norm(dim=1), torch.ones(4))
    method.loss(views)  # 4 more: wraps to 2
    assert method.queue_pointer.item() == 2
    buffer = io.BytesIO()
    torch.save(method.state_dict(), buffer)
    buffer.seek(0)
    restored = small_method("mocov2", queue_size=6)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert torch.equal(restored.queue, method.queue) and restored.queue_pointer.item() == 2


def test_moco_shuffled_bn_keys_follow_their_images() -> None:
    torch.manual_seed(0)
    method = small_method("mocov2", "shufflenetv2", shuffle_bn_splits=2)  # a backbone with BatchNorm
    images = method.normalize(torch.rand(8, 3, 32, 32))
    method.eval()  # fixed BN statistics: the shuffle must then change nothing
    assert torch.allclose(method._keys(images), method._key_projection(images), atol=1e-5)
    method.train()  # batch statistics: per shuffled sub-batch, exactly
    torch.manual_seed(1)
    keys = method._keys(images)
    torch.manual_seed(1)
    order = torch.randperm(8)
    by_hand = torch.cat(
        [method._key_projection(images[order[:4]]), method._key_projection(images[order[4:]])]
    )
    assert torch.allclose(keys[order], by_hand, atol=1e-5)
    assert not torch.allclose(keys, method._key_projection(images), atol=1e-3)  # whole-batch BN differs


def test_byol_target_starts_as_copy_and_follows_by_exact_ema() -> None:
    torch.manual_seed(0)
    method = small_method("byol")
    assert isinstance(method, BYOL)
    pairs = [(method.encoder, method.target_encoder), (method.projector, method.target_projector)]
    for online, target in pairs:
        for p_online, p_target in zip(online.parameters(), target.parameters(), strict=True):
            assert torch.equal(p_online, p_target) and p_online.data_ptr() != p_target.data_ptr()
            assert not p_target.requires_grad
    optimizer = build_optimizer(method, method.config.optimizer, batch_size=4)
    method(uint8_batch()).loss.backward()
    optimizer.step()
    old_targets = [[p.clone() for p in target.parameters()] for _, target in pairs]
    progress = 0.3
    method.after_optimizer_step(progress)
    tau = cosine_momentum(0.996, progress)
    assert method.momentum(progress) == tau and 0.996 < tau < 1
    for (online, target), old in zip(pairs, old_targets, strict=True):
        for p_online, p_target, p_old in zip(online.parameters(), target.parameters(), old, strict=True):
            expected = tau * p_old.double() + (1 - tau) * p_online.double()
            assert torch.allclose(p_target.double(), expected, atol=2e-7, rtol=0)  # float32 rounding only
        for b_online, b_target in zip(online.buffers(), target.buffers(), strict=True):
            assert torch.equal(b_online, b_target)
    assert method.momentum(1.0) == 1.0


def test_byol_loss_sums_both_directions() -> None:
    torch.manual_seed(0)
    method = small_method("byol")
    first, second = method.make_views(uint8_batch())

    def online(view: torch.Tensor) -> torch.Tensor:
        return method.predictor(method.projector(method.encoder(method.normalize(view))))

    def target(view: torch.Tensor) -> torch.Tensor:
        return method.target_projector(method.target_encoder(method.normalize(view)))

    expected = normalized_regression_loss(online(first), target(second)) + normalized_regression_loss(
        online(second), target(first)
    )
    assert method.loss((first, second)).loss.item() == pytest.approx(expected.item(), rel=1e-6)
