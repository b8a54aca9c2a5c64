"""Method parity: edgessl's SimCLR, MoCo v2, BYOL, Barlow Twins, VICReg and DINO against the same \
methods built from lightly's parts.

Each method is trained twice per seed at equal settings: by ``edgessl.training.train``
(batched augmentation on the device, edgessl's heads and losses) and by a plain loop
over lightly's transforms, heads and losses with a standard torchvision ``DataLoader``.
Both sides use the same encoder (``edgessl.backbones.build_backbone``, seeded alike),
the same images, epochs, batch, SGD settings and per-step cosine schedule, and both
encoders are scored by the same kNN code on the same held-out images: cosine-weighted
(k=20, T=0.07) and the study's Euclidean majority vote (k=20). Random-init and
raw-pixel features are scored beside them.

Data: CIFAR-10 JPEGs from ``../shared/data/cifar10/train.zip``; the first ``--train``
images of each class are the pretraining set and the kNN bank, the next ``--test`` of
each class the kNN queries (never seen in pretraining).

How the two BYOL losses are matched: edgessl sums two ``2 - 2 cos`` terms (BYOL eq. 2-3),
lightly's example averages two ``-cos`` terms, whose gradient is 4x smaller. The
lightly-built loop multiplies its loss by 4, so the same learning rate and weight decay
mean the same step on both sides (SGD's weight decay is added to the gradient, so it is
unchanged by the loss scale).

How DINO is matched: the lightly-built side is lightly's ``DINOProjectionHead`` (3-layer
MLP, GELU, L2-normalised bottleneck, weight-normalised last layer), ``DINOLoss`` (centring,
teacher-temperature warm-up indexed by epoch) and ``DINOTransform`` (2 global + N local crops),
wired as facebookresearch/dino's training loop does: the backbone runs once per crop
resolution (the global crops together, the local crops together; DINO's ``MultiCropWrapper``)
and the head once on all crops; after backward each parameter's gradient norm is clipped to
``clip_grad`` on its own (DINO's ``utils.clip_gradients``; lightly has no helper for it), the
last layer's gradients are dropped in the first ``freeze_last_layer`` epochs
(``cancel_last_layer_gradients``), SGD steps, then the teacher follows the student by EMA
(``update_momentum``) with DINO's per-iteration cosine from ``momentum`` to 1. The teacher keeps its
own BatchNorm statistics (only parameters are averaged) and is in train mode, as in DINO. Both
sides score the TEACHER backbone (DINO's evaluation default, ``--checkpoint_key teacher``).

lightly is a benchmark-only dependency (``pip install lightly --no-deps`` plus
``lightning-utilities``); edgessl never imports it.

Run (alone on the machine):
    python benchmarks/method_parity.py            # full: about 3 hours on 2 CPU cores; DINO is about
                                                  # 50 minutes of it (its lightly side makes 8 PIL
                                                  # views an image)
    python benchmarks/method_parity.py --methods dino --update   # DINO alone, other methods' rows kept
    python benchmarks/method_parity.py --quick    # checks the script in a few minutes
    python benchmarks/method_parity.py --render   # rewrites the .md from the committed .json
Writes benchmarks/results/method_parity.{json,md}.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from cifar_knn import (
    IMAGE_SIZE,
    Data,
    gap_cell,
    gap_interval,
    gap_verdict,
    knn_scores,
    machine_line,
    prepare_data,
    seed_all,
    spread,
)
from results_io import RESULTS, write_markdown, write_results
from torch import nn

from edgessl.backbones import build_backbone
from edgessl.backbones.base import Normalize
from edgessl.checkpoints import load_representation
from edgessl.evaluation.baselines import pixel_representation
from edgessl.training import TrainConfig, train

DATA = Path(__file__).resolve().parent / "data" / "parity-cifar10"
BACKBONE = "shufflenetv2"  # edgessl's registered ShuffleNetV2 is the x0.5 width (the study's)


@dataclass(frozen=True)
class Settings:
    """What both implementations of one method share."""

    epochs: int
    batch_size: int = 256
    lr: float = 0.1  # SGD, momentum 0.9, no warm-up, per-step cosine to 0, for both
    weight_decay: float = 5e-4
    temperature: float = 0.2  # SimCLR / MoCo v2
    hidden_dim: int = 1024
    out_dim: int = 128
    queue_size: int = 4096  # MoCo v2
    momentum: float = 0.99  # MoCo v2's key-encoder EMA (constant); BYOL's base tau (cosine to 1)
    head_batch_norm: bool = False  # MoCo v2: BN in every head layer (MoCo v3's head)
    # DINO only (facebookresearch/dino's main_dino.py defaults unless noted); hidden_dim above is its MLP
    # width.
    # Head 1024 -> 1024 -> 256 -> 4096 (DINO: 2048, 256, 65536), to fit 2 CPU cores.
    dino_out_dim: int = 4096
    bottleneck_dim: int = 256
    use_bn_in_head: bool = False  # DINO's default (its ViT setting)
    norm_last_layer: bool = True  # weight-normalised last layer with its norm fixed: DINO's stable default
    local_crops_number: int = 6  # DINO: 8 (lightly's DINOTransform: 6), to fit 2 CPU cores
    local_crop_size: int = 14  # DINO's 96 of 224 px, of 32 px (edgessl's default rule)
    global_crops_scale: tuple[float, float] = (0.4, 1.0)  # main_dino.py's (and lightly's) defaults
    local_crops_scale: tuple[float, float] = (0.05, 0.4)
    # Views otherwise DINO's DataAugmentationDINO on both sides: blur p 1.0 / 0.1 on the global crops,
    # 0.5 on the local ones; solarisation p 0 / 0.2 on the global crops (lightly's DINOTransform defaults).
    global_blur_p: tuple[float, float] = (1.0, 0.1)
    global_solarize_p: tuple[float, float] = (0.0, 0.2)
    local_blur_p: float = 0.5
    student_temp: float = 0.1
    # 0.04 -> 0.07 linearly per epoch over the first third of training (DINO's ResNet/ViT runs: 0.04 -> 0.07
    # over 30 of 100 epochs), then constant; METHOD_SETTINGS sets the warm-up epochs.
    teacher_temp: float = 0.07
    warmup_teacher_temp: float = 0.04
    warmup_teacher_temp_epochs: int = 0
    center_momentum: float = 0.9
    freeze_last_layer: int = 1  # epochs with the last layer's gradients dropped
    clip_grad: float = 3.0  # per-parameter gradient-norm clip (DINO's utils.clip_gradients)


_FIELDS = list(Settings.__dataclass_fields__)
DINO_FIELDS = tuple(_FIELDS[_FIELDS.index("dino_out_dim") :])  # recorded for DINO only


# BYOL: DeepMind's shortest preset (40 epochs: tau 0.97, byol/configs/byol.py), so the target
# moves enough within the benchmark's few epochs for BYOL to learn at all.
# MoCo v2: with its paper head (no BN) both implementations collapse here (positive and negative
# similarities both reach 0.99 within 50 steps; kNN 12.7% edgessl, 14.6% lightly-built, below random
# init, seed 0) — the head's output shares one direction the loss cannot see past while the queue
# still holds random vectors. BN in the head (MoCo v3's, lightly's MoCoProjectionHead(batch_norm=True))
# removes that shared component, and both learn: so parity is measured with it on both sides.
# DINO: teacher EMA from 0.99 by a cosine to 1 (DINO: 0.996 over >= 100 ImageNet epochs, >= 125,000 steps).
# 1 / (1 - m) is the teacher's averaging window in steps: 0.996 is 250 steps, nearly this benchmark's
# whole run (5,000 images / 256 = 19 steps an epoch, 285 in 15 epochs), so the teacher, which is what is
# scored, would stay near its random init; 0.99 averages over the last ~100 steps (about 5 epochs) and
# lets the teacher follow the student within the run. Teacher-temperature warm-up over 5 of 15 epochs.
METHOD_SETTINGS = {
    "byol": {"momentum": 0.97},
    "mocov2": {"head_batch_norm": True},
    "dino": {"momentum": 0.99, "warmup_teacher_temp_epochs": 5},
}
# A target network the lightly-built loop updates by EMA before the step (DINO: its own, after the step).
MOMENTUM_METHODS = ("mocov2", "byol")


def recorded_settings(method: str, s: Settings) -> dict:
    """The shared settings as the report records them: DINO's own fields only for DINO."""
    settings = asdict(s)
    return settings if method == "dino" else {k: v for k, v in settings.items() if k not in DINO_FIELDS}


# ---------------------------------------------------------------- edgessl side


def edgessl_overrides(method: str, s: Settings) -> dict:
    optimizer = {
        "name": "sgd",
        "lr": s.lr,
        "reference_batch_size": s.batch_size,
        "weight_decay": s.weight_decay,
        "momentum": 0.9,
        "warmup_epochs": 0,
        "schedule": "cosine",
        "exclude_bias_and_norm": False,  # lightly's loop decays every parameter
    }
    per_method = {
        "simclr": {"temperature": s.temperature, "hidden_dim": s.hidden_dim, "out_dim": s.out_dim},
        "mocov2": {
            "temperature": s.temperature,
            "hidden_dim": s.hidden_dim,
            "out_dim": s.out_dim,
            "queue_size": s.queue_size,
            "momentum": s.momentum,
            "head_batch_norm": s.head_batch_norm,
        },
        "byol": {"hidden_dim": s.hidden_dim, "out_dim": 256, "base_momentum": s.momentum},
        # one lr for every parameter, as the lightly-built loop's single SGD group
        "barlowtwins": {"hidden_dim": s.hidden_dim, "out_dim": s.hidden_dim, "bias_lr_scale": 1.0},
        "vicreg": {"hidden_dim": s.hidden_dim, "out_dim": s.hidden_dim},
        "dino": {
            "out_dim": s.dino_out_dim,
            "hidden_dim": s.hidden_dim,
            "bottleneck_dim": s.bottleneck_dim,
            "use_bn_in_head": s.use_bn_in_head,
            "norm_last_layer": s.norm_last_layer,
            "local_crops_number": s.local_crops_number,
            "global_crop_size": IMAGE_SIZE,
            "local_crop_size": s.local_crop_size,
            "global_crops_scale": list(s.global_crops_scale),
            "local_crops_scale": list(s.local_crops_scale),
            "global_blur_p": list(s.global_blur_p),
            "global_solarize_p": list(s.global_solarize_p),
            "local_blur_p": s.local_blur_p,
            "student_temp": s.student_temp,
            "teacher_temp": s.teacher_temp,
            "warmup_teacher_temp": s.warmup_teacher_temp,
            "warmup_teacher_temp_epochs": s.warmup_teacher_temp_epochs,
            "center_momentum": s.center_momentum,
            "momentum_teacher": s.momentum,
            "freeze_last_layer": s.freeze_last_layer,
        },
    }
    if method == "dino":  # edgessl DINO's own optimiser defaults that differ from the loop's, pinned
        optimizer |= {
            "clip_grad_norm": s.clip_grad,
            "clip_grad_scope": "parameter",
            "lr_scaling": "linear",
            "final_lr_scale": 0.0,
            "weight_decay_end": None,
        }
    colour = {"simclr": {"colour_strength": 0.5}}  # lightly's advice for CIFAR-sized images
    return {"optimizer": optimizer, **per_method[method], **colour.get(method, {})}


def train_edgessl(
    method: str, seed: int, s: Settings, work: Path, extra: dict | None = None
) -> tuple[nn.Module, float]:
    config = TrainConfig(
        method=method,
        backbone=BACKBONE,
        data=str(DATA),
        split="train",
        image_size=IMAGE_SIZE,
        epochs=s.epochs,
        batch_size=s.batch_size,
        save_every=s.epochs,
        out=str(work / f"edgessl-{method}-{seed}"),
        seed=seed,
        monitor_every=0,
        plots=False,
        log_every=10_000,
        method_overrides={**edgessl_overrides(method, s), **(extra or {})},
    )
    result = train(config)
    return load_representation(result.last_checkpoint).model, result.images_per_second


# ---------------------------------------------------------------- lightly side


class ImageTensorDataset(torch.utils.data.Dataset):
    """uint8 (N, 3, H, W) images as PIL images through a lightly transform, the usual torchvision pipeline."""

    def __init__(self, images: torch.Tensor, transform: Callable) -> None:
        from torchvision.transforms.functional import to_pil_image

        self.pictures = [to_pil_image(image) for image in images]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.pictures)

    def __getitem__(self, index: int):
        return self.transform(self.pictures[index])


class LightlyModel(nn.Module):
    """Encoder with lightly's heads; ``loss(views)`` is lightly's loss for the method."""

    def __init__(self, method: str, s: Settings, encoder: nn.Module) -> None:
        super().__init__()
        from lightly.loss import BarlowTwinsLoss, DINOLoss, NegativeCosineSimilarity, NTXentLoss, VICRegLoss
        from lightly.models.modules import (
            BarlowTwinsProjectionHead,
            BYOLPredictionHead,
            BYOLProjectionHead,
            DINOProjectionHead,
            MoCoProjectionHead,
            SimCLRProjectionHead,
        )
        from lightly.models.utils import deactivate_requires_grad

        self.method, self.s = method, s
        self.encoder = encoder
        dim = encoder.feature_dim
        if method == "simclr":
            self.projector = SimCLRProjectionHead(dim, s.hidden_dim, s.out_dim)
            self.criterion = NTXentLoss(temperature=s.temperature)
        elif method == "mocov2":
            self.projector = MoCoProjectionHead(dim, s.hidden_dim, s.out_dim, batch_norm=s.head_batch_norm)
            self.criterion = NTXentLoss(temperature=s.temperature, memory_bank_size=(s.queue_size, s.out_dim))
        elif method == "byol":
            self.projector = BYOLProjectionHead(dim, s.hidden_dim, 256)
            self.predictor = BYOLPredictionHead(256, s.hidden_dim, 256)
            self.criterion = NegativeCosineSimilarity()
        elif method == "dino":

            def dino_head() -> nn.Module:
                return DINOProjectionHead(
                    dim,
                    s.hidden_dim,
                    s.bottleneck_dim,
                    s.dino_out_dim,
                    batch_norm=s.use_bn_in_head,
                    freeze_last_layer=s.freeze_last_layer,
                    norm_last_layer=s.norm_last_layer,
                )

            self.projector = dino_head()
            self.criterion = DINOLoss(
                s.dino_out_dim,
                warmup_teacher_temp=s.warmup_teacher_temp,
                teacher_temp=s.teacher_temp,
                warmup_teacher_temp_epochs=s.warmup_teacher_temp_epochs,
                student_temp=s.student_temp,
                center_momentum=s.center_momentum,
            )
            # the teacher starts as the student and is never stepped (DINO's main_dino.py); the head is
            # built again and loaded, since a weight-normalised layer cannot be deep-copied
            self.target_encoder = copy.deepcopy(encoder)
            self.target_projector = dino_head()
            self.target_projector.load_state_dict(self.projector.state_dict())
            deactivate_requires_grad(self.target_encoder)
            deactivate_requires_grad(self.target_projector)
        else:  # lightly's VICReg example uses the Barlow Twins head too (3 layers, BN + ReLU after two)
            self.projector = BarlowTwinsProjectionHead(dim, s.hidden_dim, s.hidden_dim)
            self.criterion = BarlowTwinsLoss() if method == "barlowtwins" else VICRegLoss()
        if method in MOMENTUM_METHODS:
            self.target_encoder = copy.deepcopy(encoder).requires_grad_(False)
            self.target_projector = copy.deepcopy(self.projector).requires_grad_(False)

    def loss(self, views: list[torch.Tensor], progress: float, epoch: int) -> torch.Tensor:
        from lightly.models.utils import update_momentum

        if self.method == "dino":
            return self.dino_loss(views, epoch)
        x0, x1 = views
        if self.method not in MOMENTUM_METHODS:  # SimCLR, Barlow Twins, VICReg: one network, both views
            return self.criterion(self.projector(self.encoder(x0)), self.projector(self.encoder(x1)))
        tau = self.s.momentum if self.method == "mocov2" else cosine_schedule_at(progress, self.s.momentum)
        update_momentum(self.encoder, self.target_encoder, m=tau)
        update_momentum(self.projector, self.target_projector, m=tau)
        if self.method == "mocov2":
            query = self.projector(self.encoder(x0))
            with torch.no_grad():
                key = self.target_projector(self.target_encoder(x1))
            return self.criterion(query, key)
        p0 = self.predictor(self.projector(self.encoder(x0)))
        p1 = self.predictor(self.projector(self.encoder(x1)))
        with torch.no_grad():
            z0 = self.target_projector(self.target_encoder(x0))
            z1 = self.target_projector(self.target_encoder(x1))
        # x4: the sum of two 2-2cos terms, as edgessl (see the module docstring)
        return 4 * 0.5 * (self.criterion(p0, z1) + self.criterion(p1, z0))

    def dino_loss(self, views: list[torch.Tensor], epoch: int) -> torch.Tensor:
        global_crops, local_crops = views[:2], views[2:]
        with torch.no_grad():  # the teacher sees the global crops only
            teacher = multi_crop(self.target_encoder, self.target_projector, global_crops)
        student = multi_crop(self.encoder, self.projector, global_crops + local_crops)
        # DINOLoss: teacher view i against every student view but i, teacher temperature by epoch; centre
        # updated
        return self.criterion(teacher, student, epoch=epoch)

    def before_optimizer_step(self, epoch: int) -> None:
        """DINO: each parameter's gradient norm clipped on its own, then the last layer's dropped in the
        first epochs."""
        if self.method != "dino":
            return
        for param in self.parameters():
            if param.grad is not None:  # facebookresearch/dino utils.clip_gradients
                norm = param.grad.detach().norm(2)
                scale = self.s.clip_grad / (norm + 1e-6)
                if scale < 1:
                    param.grad.mul_(scale)
        self.projector.cancel_last_layer_gradients(epoch)

    @torch.no_grad()
    def after_optimizer_step(self, progress: float) -> None:
        """DINO: the teacher follows the student by EMA, momentum by DINO's per-iteration cosine to 1."""
        from lightly.models.utils import update_momentum

        if self.method != "dino":
            return
        tau = cosine_schedule_at(progress, self.s.momentum)
        update_momentum(self.encoder, self.target_encoder, m=tau)
        update_momentum(self.projector, self.target_projector, m=tau)

    def evaluated_encoder(self) -> nn.Module:
        """What is scored: DINO's teacher backbone (its evaluation default), the online encoder otherwise."""
        return self.target_encoder if self.method == "dino" else self.encoder


def multi_crop(encoder: nn.Module, head: nn.Module, crops: list[torch.Tensor]) -> list[torch.Tensor]:
    """DINO's MultiCropWrapper: the backbone once per run of equal-resolution crops, the head once on all."""
    features, start = [], 0
    while start < len(crops):
        end = start
        while end < len(crops) and crops[end].shape[-1] == crops[start].shape[-1]:
            end += 1
        features.append(encoder(torch.cat(crops[start:end])))
        start = end
    return list(head(torch.cat(features)).chunk(len(crops)))


def cosine_schedule_at(progress: float, start: float) -> float:
    """BYOL's tau from ``start`` to 1 by a cosine over training (lightly's ``cosine_schedule``, by
    progress)."""
    return 1.0 - (1.0 - start) * (math.cos(math.pi * progress) + 1.0) / 2.0


def lightly_transform(method: str, s: Settings, mean, std):
    from lightly.transforms import BYOLTransform, DINOTransform, MoCoV2Transform, SimCLRTransform
    from lightly.transforms.byol_transform import BYOLView1Transform, BYOLView2Transform

    normalize = {"mean": list(mean), "std": list(std)}
    if method == "simclr":
        return SimCLRTransform(input_size=IMAGE_SIZE, cj_strength=0.5, gaussian_blur=0.5, normalize=normalize)
    if method == "mocov2":
        return MoCoV2Transform(input_size=IMAGE_SIZE, normalize=normalize)
    if method == "dino":  # DINO's views; colour jitter 0.4, 0.4, 0.2, 0.1 (p 0.8), grayscale 0.2, flip 0.5
        assert s.global_solarize_p[0] == 0, "DINOTransform solarises the second global crop only"
        return DINOTransform(
            global_crop_size=IMAGE_SIZE,
            global_crop_scale=s.global_crops_scale,
            local_crop_size=s.local_crop_size,
            local_crop_scale=s.local_crops_scale,
            n_local_views=s.local_crops_number,
            gaussian_blur=(*s.global_blur_p, s.local_blur_p),
            solarization_prob=s.global_solarize_p[1],  # DINOTransform: on the second global crop only
            normalize=normalize,
        )
    return BYOLTransform(  # BYOL, and Barlow Twins and VICReg, whose papers (and edgessl) take BYOL's views
        BYOLView1Transform(input_size=IMAGE_SIZE, normalize=normalize),
        BYOLView2Transform(input_size=IMAGE_SIZE, normalize=normalize),
    )


def train_lightly(
    method: str, seed: int, s: Settings, images: torch.Tensor, mean, std
) -> tuple[nn.Module, float]:
    seed_all(seed)
    model = LightlyModel(method, s, build_backbone(BACKBONE))
    dataset = ImageTensorDataset(images, lightly_transform(method, s, mean, std))
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=s.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=2,
        persistent_workers=True,
        generator=torch.Generator().manual_seed(seed),
    )
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=s.lr, momentum=0.9, weight_decay=s.weight_decay)
    total = s.epochs * len(loader)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / total))
    )
    model.train()
    step, start = 0, time.perf_counter()
    for epoch in range(s.epochs):
        for views in loader:
            loss = model.loss(views, step / total, epoch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            model.before_optimizer_step(epoch)
            optimizer.step()
            scheduler.step()
            model.after_optimizer_step(step / total)  # DINO: momentum_schedule[it], it = this step's index
            step += 1
        if not math.isfinite(float(loss.detach())):
            raise RuntimeError(f"lightly-built {method} diverged")
    seconds = time.perf_counter() - start
    encoder = nn.Sequential(Normalize(mean, std), model.evaluated_encoder()).eval()
    return encoder, total * s.batch_size / seconds


def random_encoder(seed: int, data: Data) -> nn.Module:
    seed_all(seed)
    return nn.Sequential(Normalize(data.mean, data.std), build_backbone(BACKBONE))


# ---------------------------------------------------------------- scoring


# What the side-by-side runs found, with the runs that show it (seed 0 unless stated).
FINDINGS = """## What was found

**Parity.** edgessl's mean is within 0.5 points of the lightly-built mean or above it for
SimCLR, MoCo v2, BYOL and VICReg, and every gap is well inside one seed-to-seed standard
deviation (about 2 points at this size). Every gap's 95% interval over the three paired seeds
contains 0, Barlow Twins' included: "within noise" is what three seeds can say, and they could
not detect a true gap smaller than about 6 points (the narrowest half-width, MoCo v2's 5.5).
Barlow Twins learns in neither implementation at this budget (below). edgessl trains 1.7-2.1x \
more images/s end to end: batched augmentation on
the device against PIL transforms in 2 DataLoader workers that share the same 2 cores. SimCLR,
MoCo v2, BYOL and VICReg beat random init by 6-17 points. At this budget (75,000-100,000 images
seen) only SimCLR and VICReg come near raw pixels: they beat them under the study's Euclidean kNN
(33.8% and 30.1% vs 28.9%) but not under cosine kNN (33.7% and 31.0% vs 35.9%); MoCo v2 and BYOL
need longer runs than 2 CPU cores allow here. For Barlow Twins and VICReg, `hidden_dim` is also
the output width (`out_dim` below is the contrastive methods').
The backbone is edgessl's `shufflenetv2`, the x0.5 width of the reference study (the issue's
first measurement used x1.0).

**SimCLR: the 2.7 points were the projector.** edgessl's head was Linear -> BN -> ReLU -> Linear
(with a bias); google-research/simclr and lightly's `SimCLRProjectionHead` also batch-normalise
the output layer. On 5,000 images x 12 epochs, one seed (`--methods simclr --seeds 1 --epochs
simclr=12`, and `--sides edgessl --edgessl-set output_batch_norm=false` for the old head):
edgessl without output BN 29.3% cosine kNN, with it 33.7%, lightly-built 33.8%. Output BN is now
SimCLR's default (`output_batch_norm`, cited). The other suspects stayed as they are and the gap
is gone without them: edgessl still draws the colour-jitter order once per batch (torchvision:
per image), its blur kernel at 32 px is 3 px (10% of the side; PIL's blur has no fixed kernel), and
both sides here decay every parameter (`exclude_bias_and_norm: false`).

**MoCo v2: with the paper's head, both implementations collapse here.** With MoCo v2's BN-free
MLP head, the mean cosine of a query with its key and with the queue both reach 0.99 within 50
steps and kNN ends below random init: 12.7% edgessl, 14.6% lightly-built (15 epochs, seed 0;
random init 18.6%). Lower lr (0.03, 0.01), warm-up, T 0.1 or 0.5, m 0.9, a 256- or 1,024-key queue,
64 px inputs and whole-batch key BN all collapse the same way in edgessl. The head's output shares
one direction across images that raises every positive similarity while the queue still holds
random vectors; BN on the head's layers (MoCo v3's head, lightly's
`MoCoProjectionHead(batch_norm=True)`) removes that shared part, and both sides learn. Parity is
therefore measured with the BN head on both sides, and MoCo v2's `short` recipe uses it.

**BYOL: loss scales matched.** edgessl sums two 2-2cos terms; the lightly-built loop multiplies
lightly's averaged -cos terms by 4, which gives the same gradients, so the same SGD lr and
weight decay apply to both. tau 0.97 (DeepMind's shortest preset) so the target moves within
the benchmark's few epochs.

**VICReg: parity, and above raw pixels under the study's kNN.** Both sides use a 3-layer
1024-wide expander (lightly has no VICReg head; its VICReg example uses
`BarlowTwinsProjectionHead`, as here), lightly's `VICRegLoss` against edgessl's (equal values,
`tests/methods/test_losses.py`) and BYOL's views (VICReg's paper takes BYOL's augmentations;
lightly-built: `BYOLTransform`). 31.0 ± 1.3 against 31.4 ± 1.6 cosine; Euclidean 30.1 ± 1.5,
above raw pixels' 28.9.

**Barlow Twins: no learning signal here in either implementation, so parity is not shown.**
Same head width, lightly's `BarlowTwinsLoss` (equal values to edgessl's), BYOL's views, SGD 0.1
with one learning rate for every parameter (edgessl's `bias_lr_scale` set to 1). edgessl 15.4,
10.0, 15.8; lightly-built 19.3, 19.1, 10.0 (cosine; random init 17.0 ± 1.8). One seed of
three ends at chance (10.0%) on each side: the features of most images become equal. The loss
falls (about 900 to 750) while kNN does not move. edgessl alone, seed 0: lr 0.01 gives 18.4,
a 512-wide head 17.1, and LARS at lr 0.3 / weight decay 1e-4 with 2 warm-up epochs (solo-learn's
CIFAR setting) 15.6: all at or below random init. The paper trains 1,000 epochs with LARS at batch 2048;
Barlow Twins parity needs a budget (or a LARS on both sides) where at least one implementation
learns, which these 2 cores do not give in one benchmark run.

**DINO: how the two sides are matched.** edgessl's `dino` against lightly's `DINOProjectionHead`,
`DINOLoss` and `DINOTransform` in DINO's loop (module docstring): head 1024 -> 1024 -> 256 ->
4096 without BN, last layer weight-normalised with its norm fixed, 2 global crops at 32 px of
scale (0.4, 1) and 6 local crops at 14 px (DINO's 96/224) of scale (0.05, 0.4), student T 0.1,
teacher T 0.04 -> 0.07 over 5 epochs, centre momentum 0.9, last layer frozen in epoch 1, each
parameter's gradient norm clipped at 3.0, SGD as every method here (every parameter decayed, on
both sides; DINO itself exempts biases and norms). Teacher EMA 0.99 cosine to 1 rather than DINO's
0.996: 1/(1 - m) steps is the teacher's averaging window, and 250 steps (0.996) is nearly this
run's 285, which would leave the scored teacher near its random init. Both sides score the
teacher's encoder. Given the same weights and views, the two losses and centres agree to 1e-6
(teacher-temperature warm-up included). Small differences left: edgessl's teacher EMA takes the
momentum of the step's end (lightly-built: of its start, as DINO), its crops are resampled
bilinearly with antialiasing (PIL: bicubic) and its blur kernel is 23/224 of the side.

**images/s**: both sides ran in one process, interleaved per seed. The SimCLR rows ran while a
niced test job shared the cores for part of the time, so their images/s are lower than MoCo's
and BYOL's; the ratio within a row pair is what to read.
"""


def report_lines(record: dict) -> list[str]:
    lines = [
        "# Method parity: edgessl vs the same method built from lightly's parts",
        "",
        (
            f"CIFAR-10 JPEGs at {IMAGE_SIZE}px: {record['train_images']} pretraining images "
            "(also the kNN bank), "
            f"{record['test_images']} held-out queries. {BACKBONE}, seeds {record['seeds']}. kNN k=20: "
            "cosine-weighted (T=0.07) and Euclidean majority vote. Mean ± standard deviation over seeds; "
            "images/s is pretraining throughput (images, two views each; DINO: 2 global + "
            f"{record['settings'].get('dino', {}).get('local_crops_number', 'N')} local crops) end to end, "
            "each side's own data pipeline included."
        ),
        "",
        "| method | epochs | implementation | kNN cosine % | kNN Euclidean % | images/s | per-seed cosine |",
        "|---|---|---|---|---|---|---|",
    ]
    order = ("—", "simclr", "mocov2", "byol", "barlowtwins", "vicreg", "dino")
    for row in sorted(record["rows"], key=lambda row: order.index(row["method"])):
        lines.append(
            f"| {row['method']} | {row['epochs']} | {row['implementation']} | {spread(row['cosine'])} | "
            f"{spread(row['euclidean'])} | {spread(row['images_per_second']) if row['epochs'] else '—'} | "
            f"{', '.join(f'{v:.1f}' for v in row['cosine'])} |"
        )
    lines += [
        "",
        (
            "The gap is the mean of edgessl − lightly over seeds, paired by seed (both sides of a seed share "
            "the encoder's initialisation and the images), with its 95% Student-t interval. 'Within noise': "
            "the interval contains 0, so these seeds cannot tell the two implementations apart."
        ),
        "",
        "| method | edgessl − lightly (cosine), 95% CI | verdict | target: mean ≥ −0.5 |",
        "|---|---|---|---|",
    ]
    for method in record["gaps"]:
        gap = gap_interval(*(side_scores(record, method, side) for side in ("edgessl", "lightly-built")))
        verdict = gap_verdict(gap, "edgessl better", "edgessl worse")
        target = "met" if gap.estimate >= -0.5 else "NOT met"
        if target != "met" and gap.known and gap.high >= -0.5:
            target += " (its interval reaches −0.5: within noise of the target)"
        lines.append(f"| {method} | {gap_cell(gap)} | {verdict} | {target} |")
    lines += ["", "Shared settings per method:", ""]
    for method, settings in record["settings"].items():
        lines.append(f"- {method}: `{json.dumps(settings)}`")
    lines += ["", FINDINGS, f"Machine: {record['machine']}"]
    lines += [f"Earlier rows kept from: {machine}" for machine in record.get("earlier_runs", [])]
    return lines


def side_scores(record: dict, method: str, implementation: str) -> list[float]:
    """One implementation's per-seed cosine kNN scores for ``method``."""
    return next(
        row["cosine"]
        for row in record["rows"]
        if row["method"] == method and row["implementation"] == implementation
    )


def keep_other_methods(record: dict, methods: list[str]) -> None:
    """Carry the existing report's rows, settings and gaps of methods other than ``methods`` into
    ``record``."""
    path = RESULTS / f"{record['report']}.json"
    if not path.is_file():
        return
    old = json.loads(path.read_text())
    record["rows"] += [row for row in old["rows"] if row["method"] not in ("—", *methods)]
    for key in ("settings", "gaps"):
        record[key].update({m: v for m, v in old[key].items() if m not in methods})
    record["earlier_runs"] = old.get("earlier_runs", []) + [old["machine"]]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one seed: checks the script")
    parser.add_argument("--methods", default="simclr,mocov2,byol,barlowtwins,vicreg,dino")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--train", type=int, default=500, help="pretraining images per class")
    parser.add_argument("--test", type=int, default=200, help="held-out query images per class")
    parser.add_argument("--epochs", default="simclr=15,mocov2=15,byol=20,barlowtwins=15,vicreg=15,dino=15")
    parser.add_argument("--report", default=None, help="results file name (default method_parity[_quick])")
    parser.add_argument(
        "--update",
        action="store_true",
        help="keep the report's rows of methods not run now (rerun one method)",
    )
    parser.add_argument("--sides", default="edgessl,lightly", help="which implementations to train")
    parser.add_argument(
        "--edgessl-set",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="extra edgessl method override for ablations, e.g. output_batch_norm=false",
    )
    parser.add_argument(
        "--render", action="store_true", help="rewrite the report from its committed JSON (no training)"
    )
    args = parser.parse_args(argv)
    if args.render:
        name = args.report or "method_parity"
        write_markdown(name, report_lines(json.loads((RESULTS / f"{name}.json").read_text())))
        return
    if args.quick:
        args.seeds, args.train, args.test = 1, 60, 20
        args.epochs = "simclr=1,mocov2=1,byol=1,barlowtwins=1,vicreg=1,dino=1"
    methods, sides = args.methods.split(","), args.sides.split(",")
    extra = {key: json.loads(value) for key, value in (item.split("=", 1) for item in args.edgessl_set)}
    epochs = {name: int(value) for name, value in (item.split("=") for item in args.epochs.split(","))}
    data = prepare_data(DATA, args.train, args.test)
    record = {
        "quick": args.quick,
        "report": args.report or ("method_parity_quick" if args.quick else "method_parity"),
        "train_images": len(data.bank),
        "test_images": len(data.queries),
        "seeds": list(range(args.seeds)),
        "machine": machine_line(),
        "rows": [],
        "settings": {},
        "gaps": {},
        "edgessl_extra_overrides": extra,
    }
    if args.update:
        keep_other_methods(record, methods)
    baselines = {
        "random init": lambda seed: random_encoder(seed, data),
        "raw pixels": lambda seed: pixel_representation(IMAGE_SIZE, data.mean, data.std),
    }
    for name, build in baselines.items():
        scores = [knn_scores(build(seed), data) for seed in record["seeds"]]
        record["rows"].append(
            {
                "method": "—",
                "epochs": 0,
                "implementation": name,
                "cosine": [x["cosine"] for x in scores],
                "euclidean": [x["euclidean"] for x in scores],
                "images_per_second": [0.0],
            }
        )
        print(name, scores[0], flush=True)
    with tempfile.TemporaryDirectory() as work:
        for method in methods:
            settings = Settings(epochs=epochs[method], **METHOD_SETTINGS.get(method, {}))
            record["settings"][method] = recorded_settings(method, settings)
            results = {side: [] for side in sides}
            for seed in record["seeds"]:
                for side in sides:  # interleaved: both see the same machine state
                    if side == "edgessl":
                        model, rate = train_edgessl(method, seed, settings, Path(work), extra)
                    else:
                        model, rate = train_lightly(method, seed, settings, data.bank, data.mean, data.std)
                    scores = knn_scores(model, data)
                    results[side].append({**scores, "images_per_second": rate})
                    print(method, side, seed, scores, f"{rate:.0f} img/s", flush=True)
            for side, runs in results.items():
                record["rows"].append(
                    {
                        "method": method,
                        "epochs": settings.epochs,
                        "implementation": side if side == "edgessl" else "lightly-built",
                        **{
                            key: [run[key] for run in runs]
                            for key in ("cosine", "euclidean", "images_per_second")
                        },
                    }
                )
            if len(results) == 2:
                record["gaps"][method] = statistics.mean(
                    r["cosine"] for r in results["edgessl"]
                ) - statistics.mean(r["cosine"] for r in results["lightly"])
            write_results(record["report"], record, report_lines(record))
    print(write_results(record["report"], record, report_lines(record)).read_text())


if __name__ == "__main__":
    main()
