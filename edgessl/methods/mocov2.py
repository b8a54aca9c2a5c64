"""MoCo v2 (Chen, Fan, Girshick & He 2020, "Improved Baselines with Momentum Contrastive Learning"),
on MoCo (He, Fan, Wu, Xie & Girshick 2020, "Momentum Contrast for Unsupervised Visual Representation
Learning").

A query encoder and MLP head learn by gradient; a key encoder and head follow them by
momentum (they start as exact copies and get no gradients); a FIFO queue of past keys
supplies the negatives of an InfoNCE loss.

Shuffled BN (He et al. 2020, section 3.3): with batch statistics shared between a query and
its own key, the network can find the positive by the statistics instead of the content.
The key batch is randomly permuted and cut into sub-batches, each normalised by its own BN
statistics, then put back in order:
- One process: ``shuffle_bn_splits`` sub-batches (the official code's 8 GPUs x 32 samples,
  emulated on one device); queries are normalised over the whole batch, so no query shares
  its statistics with its key's sub-batch alone.
- N processes: the official scheme. Key images of all processes are gathered, permuted
  with one permutation (rank 0's, :func:`edgessl.distributed.shared_permutation`), each
  process encodes its slice with its own BN statistics, and the keys are gathered and
  un-permuted. This is exactly the one-process scheme with ``shuffle_bn_splits = N`` and
  the same permutation; with ``sync_batchnorm`` the queries are normalised over the
  global batch as in one process, and the two runs train the same model
  (``tests/distributed/test_exactness.py``). Without it (the default, as the official
  code: per-GPU BN) each process normalises its own queries.
The queue is filled with the keys of all processes in rank order, as the official code,
so it stays identical on every process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from edgessl import distributed
from edgessl.augment import mocov2_view
from edgessl.config import Fraction, PositiveFloat, PositiveInt
from edgessl.methods import METHODS
from edgessl.methods.base import RGB, MethodConfig, OptimizerConfig, StepOutput, momentum_target
from edgessl.methods.heads import mlp_head
from edgessl.methods.losses import InfoNCELoss
from edgessl.methods.recipes import PAPER, PAPER_RECIPE, SHORT, SHORT_REGIME, Recipe
from edgessl.methods.two_view import TwoViewMethod


def mocov2_optimizer() -> OptimizerConfig:
    # MoCo v2, section 2 / table 1 and the official main_moco.py: SGD lr 0.03 for batch 256,
    # momentum 0.9, weight decay 1e-4, cosine schedule (MoCo v2, "cosine learning rate schedule").
    return OptimizerConfig(
        name="sgd",
        lr=0.03,
        reference_batch_size=256,
        weight_decay=1e-4,
        momentum=0.9,
        warmup_epochs=0,
        schedule="cosine",
    )


@dataclass
class MoCoV2Config(MethodConfig):
    batch_size: PositiveInt = 256  # MoCo v2, section 3: batch 256 on 8 GPUs
    optimizer: OptimizerConfig = field(default_factory=mocov2_optimizer)
    queue_size: PositiveInt = 65536  # He et al. 2020, section 4: K = 65,536 negatives
    momentum: Fraction = 0.999  # He et al. 2020, section 3.2 / 4: m = 0.999
    temperature: PositiveFloat = 0.2  # MoCo v2, table 1: tau = 0.2 with the MLP head
    hidden_dim: PositiveInt = 2048  # MoCo v2, section 2: "2-layer MLP head (hidden layer 2048-d, with ReLU)"
    out_dim: PositiveInt = 128  # He et al. 2020, section 3.3: 128-D normalised embedding
    # MoCo v2's head has no BN (section 2). On: every head layer batch-normalised, the output one
    # too, as MoCo v3 (Chen, Xie & He 2021, section 4) and lightly's MoCoProjectionHead(batch_norm=True).
    head_batch_norm: bool = False
    # one process only: the official 8 GPUs of 32 keys each (He et al. 2020, section 3.3)
    shuffle_bn_splits: PositiveInt = 8
    # He et al. 2020 (section 3.3) and the official code normalise per GPU (shuffled BN is what
    # keeps the key statistics apart); on: the queries' BN is global, the keys' stays per process.
    sync_batchnorm: bool = False


def positive_negative_gap(
    queries: torch.Tensor, keys: torch.Tensor, queue: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Mean cosine of each query with its key and with the queue; their gap shrinking towards 0 means no
    learning.

    The mean over the queue is ``q . mean(queue)`` (a dot product is linear), so this costs
    one vector, not another (N, K) product.
    """
    positive = (queries * keys).sum(1).mean()
    negative = (queries @ nn.functional.normalize(queue, dim=1).mean(0)).mean()
    return {
        "positive_similarity": positive,
        "negative_similarity": negative,
        "similarity_gap": positive - negative,
    }


def enqueue(queue: torch.Tensor, pointer: torch.Tensor, keys: torch.Tensor) -> None:
    """Write ``keys`` into ``queue`` (K, D) at ``pointer``, wrapping around; advance ``pointer`` in place.

    Exactly as if the keys were enqueued one at a time, for any K and batch size: the
    oldest entries are replaced first, and of a batch larger than the queue only its
    last K keys remain.
    """
    size = len(queue)
    slots = (pointer + torch.arange(len(keys), device=queue.device)) % size
    queue[slots[-size:]] = keys[-size:].to(queue.dtype)
    pointer.copy_((pointer + len(keys)) % size)


@METHODS.register("mocov2")
class MoCoV2(TwoViewMethod):
    """Query encoder + MLP head by gradient, key encoder + head by momentum, negatives from a queue."""

    name = "mocov2"
    Config = MoCoV2Config
    recipes: ClassVar[dict[str, Recipe]] = {
        PAPER: PAPER_RECIPE,
        SHORT: Recipe(
            SHORT_REGIME,
            {"queue_size": 16384, "momentum": 0.99, "head_batch_norm": True, "optimizer": {"lr": 0.3}},
            (
                (
                    "lr 0.3 at batch 256, key momentum 0.99: solo-learn's CIFAR MoCo v2+ script "
                    "(SGD, weight decay 1e-4 and temperature 0.2 as the paper)"
                ),
                (
                    "queue 16,384: He et al. 2020 figure 3 (accuracy nearly flat from 16,384 to 65,536 "
                    "keys); 65,536 is most of a 100,000-image set, so many queries meet an older key of "
                    "their own image"
                ),
                (
                    "BN in every head layer: MoCo v3 (Chen, Xie & He 2021, section 4); without it the head's "
                    "shared output direction collapses MoCo on ShuffleNetV2 at 32 px in short runs, in "
                    "edgessl and in the "
                    "lightly-built MoCo alike (benchmarks/results/method_parity.md)"
                ),
            ),
        ),
    }

    def __init__(self, backbone: str, config: MoCoV2Config, image_size: int, mean: RGB, std: RGB) -> None:
        augment = mocov2_view()  # query and key views drawn alike
        super().__init__(backbone, config, image_size, mean, std, views=(augment, augment))
        self.head = mlp_head(
            self.encoder.feature_dim,
            config.hidden_dim,
            config.out_dim,
            batch_norm=config.head_batch_norm,
            out_batch_norm=config.head_batch_norm,
        )
        self.key_encoder = momentum_target(self.encoder)
        self.key_head = momentum_target(self.head)
        self.criterion = InfoNCELoss(config.temperature)
        # He et al. 2020: the queue starts as random unit vectors; buffers so a resume restores it.
        self.register_buffer(
            "queue", nn.functional.normalize(torch.randn(config.queue_size, config.out_dim), dim=1)
        )
        self.register_buffer("queue_pointer", torch.zeros((), dtype=torch.long))

    def pair_loss(self, query_view: torch.Tensor, key_view: torch.Tensor) -> StepOutput:
        queries = self.head(self.features(query_view))
        with torch.no_grad():
            keys = nn.functional.normalize(self._keys(self.normalize(key_view)), dim=1)
        # normalised into a new tensor: enqueue may then write
        loss = self.criterion(queries, keys, self.queue)
        with torch.no_grad():
            diagnostics = positive_negative_gap(nn.functional.normalize(queries, dim=1), keys, self.queue)
            enqueue(self.queue, self.queue_pointer, distributed.gather(keys))  # every process's keys
        return StepOutput(loss, diagnostics)

    def _key_projection(self, images: torch.Tensor) -> torch.Tensor:
        return self.key_head(self.key_encoder(images))

    def _keys(self, images: torch.Tensor) -> torch.Tensor:
        """Key projections with shuffled BN (see the module docstring for which scheme runs where)."""
        if distributed.is_distributed():
            return self._keys_across_processes(images)
        splits = max(1, min(self.config.shuffle_bn_splits, len(images) // 2))  # BN needs >= 2 samples
        order = torch.randperm(len(images), device=images.device)
        shuffled = torch.cat([self._key_projection(chunk) for chunk in images[order].chunk(splits)])
        return torch.empty_like(shuffled).index_copy_(0, order, shuffled)

    def _keys_across_processes(self, images: torch.Tensor) -> torch.Tensor:
        everything = distributed.gather(images)
        order = distributed.shared_permutation(len(everything), images.device)
        mine = distributed.local_rows(order)
        keys = distributed.gather(self._key_projection(everything[mine]))
        return distributed.local_rows(torch.empty_like(keys).index_copy_(0, order, keys))

    def global_batchnorm_modules(self) -> list[nn.Module]:
        return [self.encoder, self.head]  # the key encoder's per-process BN is the shuffled BN

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.encoder, self.key_encoder), (self.head, self.key_head)]

    def momentum(self, progress: float) -> float:
        return self.config.momentum  # constant (He et al. 2020, section 3.2)
