"""DINO: its schedules, centre, loss, multi-crop forward, last-layer freeze, EMA teacher and a real run."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from edgessl.augment import dino_multicrop
from edgessl.checkpoints import load_checkpoint, load_representation
from edgessl.errors import ConfigError
from edgessl.methods import Method, TrainingProgress, method_class
from edgessl.methods.base import cosine_momentum
from edgessl.methods.dino import DINO, DINOConfig, teacher_temperature, update_center
from edgessl.methods.losses import dino_loss
from edgessl.runs import CHECKPOINT_DIR, LAST
from edgessl.training.config import TrainConfig
from edgessl.training.optim import build_optimizer
from edgessl.training.run_log import METRICS_FILE, read_metrics
from edgessl.training.trainer import train

SmallMethod = Callable[..., Method]


def uint8_batch(n: int = 4, size: int = 32, seed: int = 3) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=generator)


def small_dino(small_method: SmallMethod, *args, **fields) -> DINO:
    method = small_method("dino", *args, **fields)
    assert isinstance(method, DINO)
    return method


# ----------------------------------------------------------------------------- teacher temperature


@pytest.mark.parametrize(
    ("warmup_temp", "temp", "warmup_epochs", "epochs"),
    [(0.04, 0.07, 30, 100), (0.04, 0.04, 0, 10), (0.02, 0.06, 1, 4), (0.04, 0.07, 2, 5), (0.04, 0.07, 6, 6)],
)
def test_teacher_temperature_is_dinos_linspace_warm_up_then_constant(
    warmup_temp: float, temp: float, warmup_epochs: int, epochs: int
) -> None:
    # main_dino.py DINOLoss.teacher_temp_schedule, written out
    schedule = np.concatenate(
        (np.linspace(warmup_temp, temp, warmup_epochs), np.ones(epochs - warmup_epochs) * temp)
    )
    got = [teacher_temperature(epoch, warmup_temp, temp, warmup_epochs) for epoch in range(epochs)]
    assert got == pytest.approx(schedule.tolist(), rel=1e-12, abs=0)


def test_the_method_reads_its_temperature_from_the_training_epoch(small_method: SmallMethod) -> None:
    method = small_dino(
        small_method, warmup_teacher_temp=0.04, teacher_temp=0.07, warmup_teacher_temp_epochs=3
    )
    schedule = np.concatenate((np.linspace(0.04, 0.07, 3), np.ones(2) * 0.07))
    steps_per_epoch = 4
    for step in range(5 * steps_per_epoch):
        method.progress = TrainingProgress(step, steps_per_epoch, 5 * steps_per_epoch)
        assert method.teacher_temperature() == pytest.approx(schedule[step // steps_per_epoch], rel=1e-12)
    method.progress = TrainingProgress(5, steps_per_epoch, 20)  # epoch 1
    metrics = method.loss(method.make_views(uint8_batch())).metrics
    assert metrics["teacher_temp"].item() == pytest.approx(0.055, rel=1e-6)  # reported as a diagnostic


# ----------------------------------------------------------------------------- centre


def test_center_update_is_the_ema_of_batch_means() -> None:
    torch.manual_seed(0)
    batches = [torch.randn(6, 5, dtype=torch.float64) for _ in range(4)]
    center = torch.zeros(1, 5, dtype=torch.float64)
    for batch in batches:
        update_center(center, batch, 0.9)
    # c_k = sum_j (1 - m) m^(k-1-j) mean_j, from c_0 = 0
    expected = sum(0.1 * 0.9 ** (len(batches) - 1 - j) * b.mean(0) for j, b in enumerate(batches))
    torch.testing.assert_close(center, expected.unsqueeze(0), rtol=1e-12, atol=1e-15)


def test_the_method_centres_on_the_teachers_outputs_of_both_global_views(small_method: SmallMethod) -> None:
    torch.manual_seed(0)
    # squeezenet, no BatchNorm: the teacher's outputs depend on the views only
    method = small_dino(small_method)
    assert "center" in method.state_dict() and not method.center.any()  # saved and resumed; starts at 0
    center = torch.zeros(1, method.config.out_dim)
    for seed in range(3):
        views = method.make_views(uint8_batch(seed=seed))
        with torch.no_grad():
            teacher = method.teacher_head(method.teacher_encoder(method.normalize(torch.cat(views[:2]))))
        center = 0.9 * center + 0.1 * teacher.mean(0, keepdim=True)  # DINOLoss.update_center, one process
        method.loss(views)
    torch.testing.assert_close(method.center, center, rtol=1e-5, atol=1e-7)


# ----------------------------------------------------------------------------- loss


def dino_loss_by_loops(
    student: torch.Tensor, teacher: torch.Tensor, center: torch.Tensor, tau_s: float, tau_t: float
) -> float:
    """DINO eq. 3 literally, per image: for teacher view iq and student view v != iq,
    -sum_k P_t[k] log P_s[k], with P = exp(x / tau) / sum exp(x / tau); mean over images, then over pairs."""
    views, n = len(student) // (len(teacher) // 2), len(teacher) // 2
    s, t = student.double().view(views, n, -1), (teacher.double() - center.double()).view(2, n, -1)
    terms = []
    for iq in range(2):
        for v in range(views):
            if v == iq:
                continue
            per_image = []
            for i in range(n):
                p_t = torch.exp(t[iq, i] / tau_t) / torch.exp(t[iq, i] / tau_t).sum()
                p_s = torch.exp(s[v, i] / tau_s) / torch.exp(s[v, i] / tau_s).sum()
                per_image.append(float(-(p_t * torch.log(p_s)).sum()))
            terms.append(sum(per_image) / n)
    return sum(terms) / len(terms)


@pytest.mark.parametrize("student_views", [2, 5])
def test_loss_equals_the_papers_double_loop(student_views: int) -> None:
    torch.manual_seed(1)
    n, k = 3, 7
    student, teacher, center = torch.randn(student_views * n, k), torch.randn(2 * n, k), torch.randn(1, k)
    got = dino_loss(student, teacher, center, 0.1, 0.04)
    assert got.item() == pytest.approx(dino_loss_by_loops(student, teacher, center, 0.1, 0.04), rel=1e-5)


def test_loss_is_float32_under_bf16_autocast_and_rejects_bad_shapes() -> None:
    torch.manual_seed(2)
    student, teacher, center = torch.randn(8, 6), torch.randn(4, 6), torch.zeros(6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = dino_loss(student, teacher, center, 0.1, 0.04)
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(dino_loss_by_loops(student, teacher, center, 0.1, 0.04), rel=1e-5)
    with pytest.raises(ValueError):
        dino_loss(torch.randn(8, 6), torch.randn(4, 5), center, 0.1, 0.04)  # widths differ
    with pytest.raises(ValueError):
        dino_loss(torch.randn(7, 6), teacher, center, 0.1, 0.04)  # not whole views
    with pytest.raises(ValueError):
        dino_loss(torch.randn(2, 6), teacher, center, 0.1, 0.04)  # fewer student views than teacher views


def test_loss_is_lowest_when_the_student_matches_the_sharpened_teacher() -> None:
    """Cross-entropy >= the teacher's entropy, equal where the student's distribution is the teacher's."""
    torch.manual_seed(3)
    teacher = torch.randn(1, 5).repeat(2, 1)  # one image, both global views alike
    matched = teacher / 0.04 * 0.1  # softmax(s / 0.1) == softmax(t / 0.04)
    q = F.softmax(teacher[0] / 0.04, dim=0)
    entropy = float(-(q * q.log()).sum())
    assert dino_loss(matched, teacher, torch.zeros(5), 0.1, 0.04).item() == pytest.approx(entropy, rel=1e-5)
    assert dino_loss(torch.randn(2, 5), teacher, torch.zeros(5), 0.1, 0.04).item() > entropy


def test_student_encodes_each_resolution_in_one_pass_and_the_teacher_the_globals(
    small_method: SmallMethod,
) -> None:
    """DINO's MultiCropWrapper: one encoder pass over both global crops, one over all local crops, then
    the head on all; the teacher on the two global crops. ShuffleNet's BatchNorm makes grouping visible."""
    torch.manual_seed(0)
    method = small_dino(small_method, "shufflenetv2", size=32, local_crops_number=3)
    views = method.make_views(uint8_batch(4))
    assert [v.shape[-1] for v in views] == [32, 32, 14, 14, 14]
    encode = lambda crops: method.encoder(method.normalize(torch.cat(crops)))
    student = method.head(torch.cat([encode(views[:2]), encode(views[2:])]))
    with torch.no_grad():
        teacher = method.teacher_head(method.teacher_encoder(method.normalize(torch.cat(views[:2]))))
    center, temperature = method.center.clone(), method.teacher_temperature()
    expected = dino_loss(student, teacher, center, 0.1, temperature)
    got = method.loss(views)
    assert got.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    per_crop = method.head(torch.cat([encode([v]) for v in views]))  # a pass per crop: other BN statistics
    assert dino_loss(per_crop, teacher, center, 0.1, temperature).item() != pytest.approx(
        got.loss.item(), rel=1e-4
    )
    q = F.softmax((teacher - center) / temperature, dim=1)
    entropy = -(q * q.log()).sum(1).mean()
    assert got.metrics["teacher_entropy"].item() == pytest.approx(entropy.item(), rel=1e-4)


# ----------------------------------------------------------------------------- last layer, teacher


@pytest.mark.parametrize("norm_last_layer", [True, False])
def test_last_layer_gets_no_update_in_the_first_epoch_only(
    small_method: SmallMethod, norm_last_layer: bool
) -> None:
    torch.manual_seed(0)
    method = small_dino(small_method, norm_last_layer=norm_last_layer)
    last = list(method.head.last_layer.parameters())
    assert len(last) == (1 if norm_last_layer else 2)  # the direction, and the scale when it is learned
    optimizer = build_optimizer(method, method.config.optimizer, batch_size=4)
    for step, frozen in ((0, True), (2, True), (3, False)):  # 3 steps per epoch: epochs 0, 0, 1
        method.progress = TrainingProgress(step, 3, 6)
        optimizer.zero_grad(set_to_none=True)
        method(uint8_batch(seed=step)).loss.backward()
        assert all(p.grad is not None for p in last)
        before = [p.detach().clone() for p in last]
        method.before_optimizer_step()
        assert all((p.grad is None) == frozen for p in last), f"step {step}"
        assert method.head.mlp[0].weight.grad is not None  # the rest of the student keeps its gradients
        optimizer.step()
        assert all(torch.equal(p, b) == frozen for p, b in zip(last, before, strict=True)), f"step {step}"


def test_last_layer_rows_are_unit_vectors_when_normalised(small_method: SmallMethod) -> None:
    method = small_dino(small_method)
    weight = method.head.last_layer.normalized_weight()
    assert weight.shape == (16, 256) and torch.allclose(weight.norm(dim=1), torch.ones(16))
    assert method.head.last_layer.scale is None  # DINO's weight_g, fixed to 1: no tensor at all
    assert {type(layer).__name__ for layer in method.head.mlp} == {"Linear", "GELU"}
    with_bn = small_dino(small_method, use_bn_in_head=True)
    assert [type(layer).__name__ for layer in with_bn.head.mlp] == [
        "Linear", "BatchNorm1d", "GELU", "Linear", "BatchNorm1d", "GELU", "Linear",
    ]  # fmt: skip


def test_teacher_follows_by_ema_of_parameters_and_keeps_its_own_batchnorm_statistics(
    small_method: SmallMethod,
) -> None:
    torch.manual_seed(0)
    method = small_dino(small_method, "shufflenetv2", size=16)
    pairs = method.momentum_pairs()
    assert pairs == [(method.encoder, method.teacher_encoder), (method.head, method.teacher_head)]
    for online, target in pairs:  # the teacher starts as an exact copy, without gradients
        for p_online, p_target in zip(online.parameters(), target.parameters(), strict=True):
            assert torch.equal(p_online, p_target) and p_online.data_ptr() != p_target.data_ptr()
            assert not p_target.requires_grad
    teacher_stats = {k: v.clone() for k, v in method.teacher_encoder.state_dict().items() if "running" in k}
    optimizer = build_optimizer(method, method.config.optimizer, batch_size=4)
    method(uint8_batch(size=16)).loss.backward()
    optimizer.step()
    after_forward = [[b.clone() for b in target.buffers()] for _, target in pairs]
    # the teacher's forward ran in train mode: its own running statistics moved, from its own batches
    moved = method.teacher_encoder.state_dict()
    assert any(not torch.equal(moved[k], v) for k, v in teacher_stats.items())
    old = [[p.clone() for p in target.parameters()] for _, target in pairs]
    progress = 0.3
    method.after_optimizer_step(progress)
    tau = cosine_momentum(0.996, progress)
    assert method.momentum(progress) == tau and method.last_momentum == tau
    for (online, target), old_params, old_buffers in zip(pairs, old, after_forward, strict=True):
        for p_online, p_target, p_old in zip(
            online.parameters(), target.parameters(), old_params, strict=True
        ):
            expected = tau * p_old.double() + (1 - tau) * p_online.double()
            assert torch.allclose(p_target.double(), expected, atol=2e-7, rtol=0)
        for b_target, b_old in zip(target.buffers(), old_buffers, strict=True):
            assert torch.equal(b_target, b_old)  # the EMA step leaves the teacher's buffers alone
    student_means = [b for n, b in method.encoder.named_buffers() if n.endswith("running_mean")]
    teacher_means = [b for n, b in method.teacher_encoder.named_buffers() if n.endswith("running_mean")]
    assert any(not torch.equal(s, t) for s, t in zip(student_means, teacher_means, strict=True))


def test_the_representation_is_the_teachers_encoder(small_method: SmallMethod) -> None:
    method = small_dino(small_method)
    assert method.representation().encoder is method.teacher_encoder
    names = method.representation_weight_names(["encoder.features.0.weight", "preprocess.mean"])
    assert names == {
        "encoder.features.0.weight": "teacher_encoder.features.0.weight",
        "preprocess.mean": "normalize.mean",
    }


# ----------------------------------------------------------------------------- crops, defaults, optimiser


def test_crop_sizes_follow_the_image_and_the_backbone(small_method: SmallMethod) -> None:
    assert small_dino(small_method, "shufflenetv2", size=32).augment.local_size == 14  # round(32 * 96 / 224)
    squeezenet = small_dino(small_method, "squeezenet", size=32)
    assert (squeezenet.augment.global_size, squeezenet.augment.local_size) == (32, 17)  # its smallest input
    configured = small_dino(small_method, "shufflenetv2", size=32, local_crop_size=10, global_crop_size=24)
    assert (configured.augment.global_size, configured.augment.local_size) == (24, 10)
    with pytest.raises(ConfigError, match="local_crop_size 12"):
        small_dino(small_method, "squeezenet", size=32, local_crop_size=12)
    expected = dino_multicrop(32, 14, local_crops=8, global_scale=(0.14, 1.0), local_scale=(0.05, 0.14))
    assert small_dino(small_method, "shufflenetv2", size=32).augment == expected


def test_paper_defaults() -> None:
    config = method_class("dino").Config()
    assert isinstance(config, DINOConfig)
    assert (config.out_dim, config.hidden_dim, config.bottleneck_dim) == (65536, 2048, 256)
    assert (config.use_bn_in_head, config.norm_last_layer, config.freeze_last_layer) == (False, True, 1)
    assert (config.student_temp, config.teacher_temp, config.warmup_teacher_temp) == (0.1, 0.04, 0.04)
    assert (config.warmup_teacher_temp_epochs, config.center_momentum, config.momentum_teacher) == (
        0,
        0.9,
        0.996,
    )
    assert (config.local_crops_number, config.global_crops_scale, config.local_crops_scale) == (
        8,
        (0.14, 1.0),
        (0.05, 0.14),
    )
    assert config.sync_batchnorm
    opt = config.optimizer
    assert (opt.name, opt.lr, opt.reference_batch_size, opt.weight_decay, opt.momentum) == (
        "sgd",
        0.03,
        256,
        1e-4,
        0.9,
    )
    assert (opt.warmup_epochs, opt.schedule, opt.weight_decay_end, opt.exclude_bias_and_norm) == (
        10,
        "cosine",
        None,
        True,
    )
    assert opt.final_lr_scale * 0.03 == pytest.approx(1e-6)  # --min_lr 1e-6 at batch 256
    assert (opt.clip_grad_norm, opt.clip_grad_scope) == (3.0, "parameter")


def test_optimiser_decays_weights_only_and_leaves_the_teacher_out(small_method: SmallMethod) -> None:
    method = small_dino(small_method, "shufflenetv2")
    optimizer = build_optimizer(method, method.config.optimizer, batch_size=512)  # the README's 8 x 64
    weights, others = optimizer.param_groups
    assert (weights["lr"], weights["weight_decay"]) == (pytest.approx(0.06), 1e-4)
    assert (others["lr"], others["weight_decay"]) == (pytest.approx(0.06), 0.0)
    assert all(p.ndim > 1 for p in weights["params"]) and all(p.ndim == 1 for p in others["params"])
    stepped = {id(p) for group in optimizer.param_groups for p in group["params"]}
    teacher = [*method.teacher_encoder.parameters(), *method.teacher_head.parameters()]
    assert not stepped & {id(p) for p in teacher}
    assert stepped == {id(p) for p in [*method.encoder.parameters(), *method.head.parameters()]}


def test_bad_settings_are_config_errors(small_method: SmallMethod) -> None:
    with pytest.raises(ConfigError, match="temperatures"):
        small_dino(small_method, teacher_temp=0.0)
    with pytest.raises(ConfigError, match="center_momentum"):
        small_dino(small_method, center_momentum=1.0)


# ----------------------------------------------------------------------------- a real run


def test_a_short_training_run_trains_checkpoints_and_freezes_the_last_layer(tmp_path: Path) -> None:
    config = TrainConfig(
        method="dino",
        backbone="shufflenetv2",
        data="shapes10",
        split="test",
        image_size=16,
        epochs=1,
        max_steps=2,
        batch_size=16,
        out=str(tmp_path),
        method_overrides={"hidden_dim": 32, "out_dim": 16, "local_crops_number": 2},
    )
    result = train(config, progress=False)
    assert result.steps == 2
    records = read_metrics(tmp_path / METRICS_FILE)
    assert [r["step"] for r in records] == [1, 2] and all(math.isfinite(r["loss"]) for r in records)
    assert all(
        r["teacher_temp"] == pytest.approx(0.04) and math.isfinite(r["teacher_entropy"]) for r in records
    )
    model = load_checkpoint(tmp_path / CHECKPOINT_DIR / LAST)["model"]
    # epoch 0: the trainer called before_optimizer_step, so the student's last layer never moved and the
    # teacher's, its EMA from the same start, is still equal to it; the rest of the student did move.
    assert torch.equal(model["head.last_layer.weight"], model["teacher_head.last_layer.weight"])
    assert not torch.equal(model["head.mlp.0.weight"], model["teacher_head.mlp.0.weight"])
    assert model["center"].abs().sum() > 0
    loaded = load_representation(tmp_path / CHECKPOINT_DIR / LAST)
    assert torch.equal(
        loaded.model.encoder.features[0][0].weight, model["teacher_encoder.features.0.0.weight"]
    )
    features = loaded.model(torch.rand(2, 3, 16, 16))
    assert features.shape == (2, 1024) and torch.isfinite(features).all()
