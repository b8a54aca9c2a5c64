"""Fine-tuning: the whole network plus a linear head, trained with Adam and cross-entropy.

This is the reference study's downstream protocol (categorical cross-entropy, Adam).
The representation is deep-copied, so the caller's model is never modified. Training
batches get light augmentation, batched on the device: a random crop covering
``min_crop_scale`` to all of the image area (resized back) and a horizontal flip; no
colour changes, so what the encoder learned about colour is not perturbed.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from edgessl.data.base import ImageDataset
from edgessl.errors import ConfigError
from edgessl.evaluation.features import extract_features, to_unit_float
from edgessl.evaluation.protocols import PROTOCOLS, Protocol
from edgessl.evaluation.results import Curve, EvalResult


@dataclass
class FinetuneOptions:
    """Fine-tuning options; Adam with its default learning rate, as in the study."""

    epochs: int = 20
    lr: float = 1e-3  # Adam (Kingma & Ba's default), encoder and head alike
    weight_decay: float = 0.0
    batch_size: int = 64
    augment: bool = True  # random crop (area >= min_crop_scale) + horizontal flip
    min_crop_scale: float = 0.8
    eval_batch_size: int = 256
    seed: int = 0  # head initialisation, shuffling and augmentation


def crop_flip(images: torch.Tensor, min_scale: float, generator: torch.Generator) -> torch.Tensor:
    """Per-sample random square crop of ``min_scale``..1 of the area, resized back, and h-flip.

    One ``affine_grid``/``grid_sample`` call does the whole batch: each sample's crop is
    an affine map (scale, shift, mirror) of the output grid into the input image.
    """
    n = len(images)
    side = (min_scale + (1 - min_scale) * torch.rand(n, generator=generator)).sqrt()  # crop side / image side
    shift = (1 - side[:, None]) * (2 * torch.rand(n, 2, generator=generator) - 1)  # keeps the crop inside the image
    mirror = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = side * mirror, side
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta.to(images.device), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


class Classifier(nn.Module):
    """Representation followed by a linear head: [0, 1] RGB -> class logits."""

    def __init__(self, representation: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.representation = representation
        self.head = nn.Linear(int(representation.feature_dim), num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.representation(images))


def run_finetune(model: nn.Module, train: ImageDataset, test: ImageDataset, options: FinetuneOptions, device: torch.device) -> EvalResult:
    """Train a copy of ``model`` with a new head on ``train``; test accuracy after every epoch."""
    if options.epochs < 1 or options.batch_size < 2:
        raise ConfigError(f"fine-tuning needs epochs >= 1 and batch_size >= 2, got {options.epochs} and {options.batch_size}")
    if not 0 < options.min_crop_scale <= 1:
        raise ConfigError(f"min_crop_scale must be in (0, 1], got {options.min_crop_scale}")
    generator = torch.Generator().manual_seed(options.seed)
    classifier = Classifier(copy.deepcopy(model), train.num_classes)
    with torch.no_grad():  # seeded head, independent of global RNG state
        bound = 1.0 / classifier.head.in_features**0.5
        classifier.head.weight.copy_(torch.rand(classifier.head.weight.shape, generator=generator) * 2 * bound - bound)
        classifier.head.bias.zero_()
    classifier.to(device)
    optimizer = torch.optim.Adam(classifier.parameters(), lr=options.lr, weight_decay=options.weight_decay)
    labels = train.labels.to(device)
    curve = Curve(test.labels)
    for _ in range(options.epochs):
        classifier.train()
        for index in torch.randperm(len(train), generator=generator).split(options.batch_size):
            if len(index) < 2:  # BatchNorm cannot train on a single image
                continue
            images = to_unit_float(train.images[index], device)
            if options.augment:
                images = crop_flip(images, options.min_crop_scale, generator)
            loss = F.cross_entropy(classifier(images), labels[index.to(device)])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        logits = extract_features(classifier, test.images, options.eval_batch_size, device)
        curve.record(logits.argmax(1))
    return curve.result("finetune", lr=options.lr, batch_size=options.batch_size, augment=options.augment)


PROTOCOLS.register("finetune")(Protocol(FinetuneOptions, run_finetune, "whole network + linear head, Adam, light augmentation"))
