"""Linear probe: a frozen encoder, features extracted once, one ``nn.Linear`` trained with Adam.

Features are standardised with the training split's mean and std before the head (the
role of MAE's affine-free BatchNorm in front of its probe): raw features of different
encoders differ in scale by orders of magnitude, and one Adam learning rate should fit
them all. Accuracy is measured on the test split after every epoch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from edgessl.data.base import ImageDataset
from edgessl.errors import ConfigError
from edgessl.evaluation.features import FeatureCache
from edgessl.evaluation.protocols import PROTOCOLS, Protocol
from edgessl.evaluation.results import Curve, EvalResult


@dataclass
class LinearOptions:
    """Linear-probe options: Adam with its default learning rate, as the study uses Adam."""

    epochs: int = 100
    lr: float = 1e-3  # Adam (Kingma & Ba's default)
    weight_decay: float = 0.0
    batch_size: int = 256  # features per Adam step; 0 = full batch
    standardize: bool = True  # features scaled by train mean/std before the head
    seed: int = 0  # head initialisation and shuffling


def standardizer(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std of training features (std floored so constant features stay finite)."""
    return features.mean(0), features.std(0, unbiased=False).clamp_min(1e-6)


def fit_linear_probe(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    num_classes: int,
    options: LinearOptions | None = None,
) -> EvalResult:
    """Train ``nn.Linear`` with Adam and cross-entropy on fixed features; score every epoch."""
    options = options or LinearOptions()
    if options.epochs < 1:
        raise ConfigError(f"epochs must be at least 1, got {options.epochs}")
    device = train_features.device
    generator = torch.Generator().manual_seed(options.seed)
    x_train, x_test = train_features.float(), test_features.to(device).float()
    if options.standardize:
        mean, std = standardizer(x_train)
        x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    y_train = train_labels.to(device)
    head = nn.Linear(x_train.shape[1], num_classes)
    with torch.no_grad():  # seeded initialisation, independent of global RNG state
        bound = 1.0 / x_train.shape[1] ** 0.5
        head.weight.copy_(torch.rand(head.weight.shape, generator=generator) * 2 * bound - bound)
        head.bias.zero_()
    head.to(device)
    optimizer = torch.optim.Adam(head.parameters(), lr=options.lr, weight_decay=options.weight_decay)
    step = options.batch_size if options.batch_size > 0 else len(x_train)
    curve = Curve(test_labels)
    for _ in range(options.epochs):
        head.train()
        for index in torch.randperm(len(x_train), generator=generator).to(device).split(step):
            loss = nn.functional.cross_entropy(head(x_train[index]), y_train[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            curve.record(head.eval()(x_test).argmax(1))
    return curve.result("linear", lr=options.lr, batch_size=step, standardize=options.standardize)


def run_linear(
    features: FeatureCache, train: ImageDataset, test: ImageDataset, options: LinearOptions
) -> EvalResult:
    return fit_linear_probe(
        features(train), train.labels, features(test), test.labels, train.num_classes, options
    )


PROTOCOLS.register("linear")(Protocol(LinearOptions, run_linear, "linear head (Adam) on frozen features"))
