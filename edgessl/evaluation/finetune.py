"""Fine-tuning: the whole network plus a linear head, trained with Adam and cross-entropy.

This is the reference study's downstream protocol (categorical cross-entropy, Adam).
The representation is deep-copied, so the caller's model is never modified. Training
batches get light augmentation, batched on the device (:class:`edgessl.augment.ViewAugment`):
a random square crop covering ``min_crop_scale`` to all of the image area (resized
back) and a horizontal flip; no colour changes, so what the encoder learned about
colour is not perturbed.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Annotated

import torch
import torch.nn.functional as F
from annotated_types import Ge

from edgessl.augment import ViewAugment
from edgessl.config import NonNegativeFloat, PositiveFloat, PositiveFraction, PositiveInt
from edgessl.data.base import ImageDataset
from edgessl.evaluation.features import FeatureCache, extract_features, to_unit_float
from edgessl.evaluation.linear import Classifier, seeded_linear
from edgessl.evaluation.protocols import PROTOCOLS, Protocol
from edgessl.evaluation.results import Curve, EvalResult


@dataclass
class FinetuneOptions:
    """Fine-tuning options; Adam with its default learning rate, as in the study."""

    epochs: PositiveInt = 20
    lr: PositiveFloat = 1e-3  # Adam (Kingma & Ba's default), encoder and head alike
    weight_decay: NonNegativeFloat = 0.0
    batch_size: Annotated[int, Ge(2)] = 64  # batch norm needs two samples
    augment: bool = True  # random crop (area >= min_crop_scale) + horizontal flip
    min_crop_scale: PositiveFraction = 0.8
    eval_batch_size: PositiveInt = 256
    seed: int = 0  # head initialisation, shuffling and augmentation


def light_augment(min_crop_scale: float) -> ViewAugment:
    """Random square crop of ``min_crop_scale``..1 of the area (resized back) and a horizontal flip.

    Built on the pretraining augmentation with every colour operation switched off.
    """
    return ViewAugment(
        crop_scale=(min_crop_scale, 1.0),
        crop_ratio=(1.0, 1.0),
        hflip_p=0.5,
        jitter_p=0.0,
        grayscale_p=0.0,
        blur_p=0.0,
        solarize_p=0.0,
    )


def run_finetune(
    features: FeatureCache, train: ImageDataset, test: ImageDataset, options: FinetuneOptions
) -> EvalResult:
    """Train a copy of ``model`` with a new head on ``train``; test accuracy after every epoch."""
    model, device = features.model, features.device  # trains a copy of the model, not frozen features
    generator = torch.Generator().manual_seed(options.seed)  # head and shuffling, on the CPU
    # augmentation, on the device
    augment_generator = torch.Generator(device=device).manual_seed(options.seed)
    augment = light_augment(options.min_crop_scale)
    head = seeded_linear(int(model.feature_dim), train.num_classes, generator)
    classifier = Classifier(copy.deepcopy(model), head).to(device)
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
                images = augment(images, generator=augment_generator)
            loss = F.cross_entropy(classifier(images), labels[index.to(device)])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        logits = extract_features(classifier, test.images, options.eval_batch_size, device)
        curve.record(logits.argmax(1))
    return curve.result("finetune", lr=options.lr, batch_size=options.batch_size, augment=options.augment)


PROTOCOLS.register("finetune")(
    Protocol(FinetuneOptions, run_finetune, "whole network + linear head, Adam, light augmentation")
)
