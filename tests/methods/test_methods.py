"""The method contract, checked on every shipped method (discovered from the registry), and the
momentum/queue mechanics exactly."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import io
import pkgutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from teachers import teacher_fields

import edgessl.methods
from edgessl.checkpoints import load_representation, restore_method, save_checkpoint
from edgessl.config import config_to_dict
from edgessl.errors import UnknownNameError
from edgessl.methods import METHODS, Method, MethodConfig, build_method, method_class
from edgessl.methods.base import cosine_momentum
from edgessl.methods.byol import BYOL
from edgessl.methods.losses import normalized_regression_loss
from edgessl.methods.mocov2 import MoCoV2, enqueue
from edgessl.study.presets import STUDY_BACKBONES
from edgessl.training.optim import build_optimizer, clip_gradients

SmallMethod = Callable[..., Method]
MEAN, STD = (0.45, 0.44, 0.40), (0.25, 0.25, 0.26)


def uint8_batch(n: int = 4, size: int = 32) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8)


@pytest.mark.parametrize("backbone", STUDY_BACKBONES)
def test_training_steps_are_finite_and_move_the_encoder(
    method_name: str, backbone: str, small_method: SmallMethod
) -> None:
    torch.manual_seed(0)
    method = small_method(method_name, backbone)
    optimizer = build_optimizer(method, method.config.optimizer, batch_size=4)
    before = {k: v.clone() for k, v in method.state_dict().items()}
    for step in range(2):
        loss, metrics = method(uint8_batch())
        assert loss.ndim == 0 and torch.isfinite(loss), f"{method_name}/{backbone} step {step}: loss {loss}"
        for key, value in metrics.items():  # diagnostics: detached finite scalars
            assert value.ndim == 0 and not value.requires_grad and torch.isfinite(value), key
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


def test_few_steps_of_the_papers_optimiser_lower_the_loss(
    method_name: str, small_method: SmallMethod
) -> None:
    """The gradient the method produces descends its own loss under its own optimiser.

    The loss is taken as a function of the parameters only: same views, same buffers
    (queues, BN statistics) and same random draws each time. SqueezeNet has no BatchNorm:
    at 32 px, BN over 8 images' 1x1 feature maps (ShuffleNet) makes the loss too rough
    for three small steps to be a descent.
    """
    torch.manual_seed(0)
    method = small_method(method_name)
    with torch.no_grad():
        views = method.make_views(uint8_batch(8))
    buffers = {name: buffer.clone() for name, buffer in method.named_buffers()}

    def loss_now() -> torch.Tensor:
        for name, buffer in method.named_buffers():
            buffer.copy_(buffers[name])
        with torch.random.fork_rng():
            torch.manual_seed(1)
            return method.step_output(views).loss

    optimizer = build_optimizer(method, method.config.optimizer, batch_size=8)  # paper rate scaled to 8
    first = loss_now().item()
    for _ in range(3):  # the step as the trainer takes it: clipping and the method's pre-step hook included
        loss = loss_now()
        optimizer.zero_grad()
        loss.backward()
        clip_gradients(optimizer, method.config.optimizer)
        method.before_optimizer_step()
        optimizer.step()
    assert loss_now().item() < first


def test_shipped_methods_are_the_methods_of_every_method_module(shipped_methods: list[str]) -> None:
    defined = set()
    for module_info in pkgutil.iter_modules(edgessl.methods.__path__):
        module = importlib.import_module(f"edgessl.methods.{module_info.name}")
        defined |= {
            cls.name
            for cls in vars(module).values()
            if inspect.isclass(cls)
            and issubclass(cls, Method)
            and cls.__module__ == module.__name__
            and not inspect.isabstract(cls)
        }
    assert sorted(shipped_methods) == sorted(defined)  # no method module lacks its registration line
    assert {"barlowtwins", "vicreg"} <= set(shipped_methods)
    for name in shipped_methods:
        cls = METHODS.get(name)
        assert (
            cls.name == name and dataclasses.is_dataclass(cls.Config) and issubclass(cls.Config, MethodConfig)
        )


def test_test_doubles_are_not_shipped_methods(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    monkeypatch.setitem(METHODS._entries, "double", type("Double", (BYOL,), {"name": "double"}))
    assert "double" in METHODS and "double" not in request.getfixturevalue("shipped_methods")


def test_every_method_builds_with_its_paper_defaults(method_name: str) -> None:
    torch.manual_seed(0)
    cls = method_class(method_name)  # a distillation method's paper defaults still need a teacher
    defaults = cls.Config(**teacher_fields(cls.Config))
    method = build_method(method_name, "squeezenet", 32, MEAN, STD, defaults)
    assert type(method) is cls and method.config == defaults
    with torch.no_grad():
        loss, _ = method(uint8_batch(4))
    assert torch.isfinite(loss)
    with pytest.raises(UnknownNameError, match="simclr"):
        build_method("simclrr", "squeezenet", 32, MEAN, STD)


def test_param_groups_hold_every_trainable_parameter_exactly_once(
    method_name: str, small_method: SmallMethod
) -> None:
    method = small_method(method_name)
    declared = [id(p) for group in method.param_groups() for p in group.params]
    trainable = {id(p) for p in method.parameters() if p.requires_grad}
    assert len(declared) == len(set(declared)) and set(declared) == trainable
    optimizer = build_optimizer(method, method.config.optimizer, batch_size=method.config.batch_size)
    in_optimizer = [id(p) for group in optimizer.param_groups for p in group["params"]]
    assert len(in_optimizer) == len(set(in_optimizer)) and set(in_optimizer) == trainable


def test_checkpoint_round_trip_restores_method_config_and_representation(
    method_name: str, small_method: SmallMethod, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    method = small_method(method_name, "shufflenetv2", size=16)
    optimizer = build_optimizer(method, method.config.optimizer, batch_size=4)
    method(uint8_batch(4, 16)).loss.backward()
    optimizer.step()
    method.after_optimizer_step(0.5)
    metadata = {
        "method": method_name,
        "backbone": "shufflenetv2",
        "method_config": config_to_dict(method.config),
        "image_size": 16,
        "mean": list(MEAN),
        "std": list(STD),
    }
    path = tmp_path / "checkpoint.pt"
    save_checkpoint({"metadata": metadata, "model": method.state_dict()}, path)
    torch.manual_seed(1)  # the rebuilt method starts from other random weights
    restored = restore_method(torch.load(path, weights_only=True))
    assert type(restored) is type(method) and restored.config == method.config
    for key, value in method.state_dict().items():
        assert torch.equal(restored.state_dict()[key], value), key
    images = torch.rand(2, 3, 16, 16)
    expected = method.representation().eval()(images)
    loaded = load_representation(path)
    assert torch.equal(loaded.model(images), expected) and loaded.model.feature_dim == expected.shape[1]


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
    barlow, vicreg = method_class("barlowtwins").Config(), method_class("vicreg").Config()
    assert (barlow.off_diagonal_weight, barlow.hidden_dim, barlow.out_dim, barlow.bias_lr_scale) == (
        5e-3,
        8192,
        8192,
        0.024,
    )
    assert (barlow.optimizer.name, barlow.optimizer.lr, barlow.optimizer.weight_decay) == (
        "lars",
        0.2,
        1.5e-6,
    )
    assert (vicreg.invariance_weight, vicreg.variance_weight, vicreg.covariance_weight) == (25.0, 25.0, 1.0)
    assert (vicreg.variance_eps, vicreg.hidden_dim, vicreg.out_dim) == (1e-4, 8192, 8192)
    assert (vicreg.optimizer.name, vicreg.optimizer.lr, vicreg.optimizer.weight_decay) == ("lars", 0.2, 1e-6)
    for config in (barlow, vicreg):
        assert (config.optimizer.warmup_epochs, config.optimizer.exclude_bias_and_norm) == (10, True)
    seed = method_class("seed").Config()  # jacobswan1/SEED tools/opts.py (DINO's: tests/methods/test_dino.py)
    assert (seed.temperature, seed.teacher_temperature, seed.queue_size, seed.hidden_dim) == (
        0.2,
        1e-4,
        65536,
        None,
    )
    assert (seed.optimizer.name, seed.optimizer.lr, seed.optimizer.weight_decay, seed.batch_size) == (
        "sgd",
        0.03,
        1e-4,
        256,
    )


def test_rotnet_views_are_all_four_rotations_of_every_image(small_method: SmallMethod) -> None:
    method = small_method("rotnet", crop_padding=0.0, hflip_p=0.0)
    images = uint8_batch(3)
    views, labels = method.make_views(images)
    assert views.shape == (12, 3, 32, 32) and views.dtype == torch.float32
    assert labels.tolist() == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3
    assert torch.equal(views[4], torch.rot90(images[1], 1, dims=(1, 2)) / 255.0)


def test_rotnet_translates_and_flips_each_image_before_rotating_it(small_method: SmallMethod) -> None:
    method = small_method("rotnet")  # the released code's RandomCrop(padding = 1/8 side) and flip
    images = uint8_batch(8)
    views, _ = method.make_views(images)
    upright = views[:8]
    for k in range(1, 4):  # every rotation is of the same translated, flipped image
        assert torch.equal(views[8 * k : 8 * (k + 1)], torch.rot90(upright, k, dims=(2, 3)))
    assert not torch.equal(upright, images / 255.0)  # the views are not the raw images
    again, _ = method.make_views(images)
    assert not torch.equal(again[:8], upright)  # and differ from one call (epoch) to the next


def test_simclr_projector_batch_normalises_its_output_as_the_official_head(small_method: SmallMethod) -> None:
    method = small_method("simclr")
    layers = [type(layer).__name__ for layer in method.projector]
    assert layers == ["Linear", "BatchNorm1d", "ReLU", "Linear", "BatchNorm1d"]
    assert method.projector[0].bias is None and method.projector[3].bias is None
    plain = small_method("simclr", output_batch_norm=False)
    assert [type(layer).__name__ for layer in plain.projector][-1] == "Linear" and plain.projector[
        -1
    ].bias is not None


@pytest.mark.parametrize(
    ("backbone", "size", "grids"), [("shufflenetv2", 32, [4, 2, 1]), ("resnet18", 96, [12, 6, 3])]
)
def test_splitbrain_hypercolumn_uses_the_final_three_resolutions(
    small_method: SmallMethod, backbone: str, size: int, grids: list[int]
) -> None:
    from edgessl.methods.splitbrain import pyramid_maps

    method = small_method("splitbrain", backbone=backbone, size=size)
    maps = pyramid_maps(method.l_net, torch.rand(2, 1, size, size), 3)
    assert [m.shape[-1] for m in maps] == grids
    assert maps[-1].shape[1] == method.l_net.feature_dim  # the coarsest is the final map


def test_splitbrain_hypercolumn_logits_equal_a_1x1_conv_on_the_upsampled_concatenated_maps() -> None:
    from edgessl.methods.splitbrain import HypercolumnClassifier

    torch.manual_seed(0)
    maps = [torch.rand(2, 4, 8, 8), torch.rand(2, 6, 4, 4), torch.rand(2, 5, 2, 2)]
    classifier = HypercolumnClassifier([4, 6, 5], classes=7)
    grid = (8, 8)
    upsampled = torch.cat(
        [torch.nn.functional.interpolate(m, size=grid, mode="bilinear", align_corners=False) for m in maps], 1
    )
    weight = torch.cat([level.weight for level in classifier.levels], dim=1)
    bias = sum(level.bias for level in classifier.levels)
    expected = torch.nn.functional.conv2d(upsampled, weight, bias)
    assert torch.allclose(classifier(maps, grid), expected, atol=1e-5)


def test_enqueue_wraps_around_a_queue_not_divisible_by_the_batch() -> None:
    queue, pointer = torch.zeros(5, 1), torch.zeros((), dtype=torch.long)
    for start in (1, 3, 5):  # batches [1, 2], [3, 4], [5, 6]
        enqueue(queue, pointer, torch.tensor([[start], [start + 1.0]]))
    assert queue.flatten().tolist() == [6, 2, 3, 4, 5] and pointer.item() == 1
    enqueue(queue, pointer, torch.arange(10.0, 17.0).view(7, 1))  # larger than the queue: as one at a time
    assert queue.flatten().tolist() == [14, 15, 16, 12, 13] and pointer.item() == 3


def test_moco_enqueues_the_normalised_keys_and_keeps_queue_in_checkpoints(small_method: SmallMethod) -> None:
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


def test_moco_shuffled_bn_keys_follow_their_images(small_method: SmallMethod) -> None:
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


def test_byol_target_starts_as_copy_and_follows_by_exact_ema(small_method: SmallMethod) -> None:
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


def test_byol_loss_sums_both_directions(small_method: SmallMethod) -> None:
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
