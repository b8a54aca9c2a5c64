"""Linear probe: a frozen encoder, features extracted once, one ``nn.Linear`` trained with Adam.

Features are standardised with the training split's mean and std before the head (the
role of MAE's affine-free BatchNorm in front of its probe): raw features of different
encoders differ in scale by orders of magnitude, and one Adam learning rate should fit
them all. Accuracy is measured on the test split after every epoch.

:func:`train_linear_classifier` is the one training loop: the probe, the exported ONNX
linear head and the saliency classifier all use it and get the trained layer back.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from edgessl.config import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt
from edgessl.data.base import ImageDataset
from edgessl.evaluation.features import FeatureCache
from edgessl.evaluation.protocols import PROTOCOLS, Protocol
from edgessl.evaluation.results import Curve, EvalResult


@dataclass
class LinearOptions:
    """Linear-probe options: Adam with its default learning rate, as the study uses Adam."""

    epochs: PositiveInt = 100
    lr: PositiveFloat = 1e-3  # Adam (Kingma & Ba's default)
    weight_decay: NonNegativeFloat = 0.0
    batch_size: NonNegativeInt = 256  # features per Adam step; 0 = full batch
    standardize: bool = True  # features scaled by train mean/std before the head
    seed: int = 0  # head initialisation and shuffling


def standardizer(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std of training features (std floored so constant features stay finite)."""
    return features.mean(0), features.std(0, unbiased=False).clamp_min(1e-6)


def seeded_linear(in_features: int, num_classes: int, generator: torch.Generator) -> nn.Linear:
    """A fresh ``nn.Linear`` head drawn from ``generator`` (uniform +-1/sqrt(fan_in), zero bias), not the
    global RNG."""
    head = nn.Linear(in_features, num_classes)
    with torch.no_grad():
        bound = 1.0 / in_features**0.5
        head.weight.copy_(torch.rand(head.weight.shape, generator=generator) * 2 * bound - bound)
        head.bias.zero_()
    return head


class Classifier(nn.Module):
    """A representation (float RGB [0, 1] -> features) followed by a linear head -> class logits."""

    def __init__(self, representation: nn.Module, head: nn.Linear) -> None:
        super().__init__()
        self.representation = representation
        self.head = head

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.representation(images))


@dataclass
class LinearClassifier:
    """A trained head and, when evaluation data was given, its per-epoch accuracy curve.

    ``head`` maps raw features to logits: the standardisation used while training is
    folded into its weight and bias, so exporters get a plain ``x W^T + b`` and saliency
    gradients flow straight to the input. ``batch_size`` is the step actually used
    (``0`` in the options resolves to the training-set size).
    """

    head: nn.Linear
    curve: Curve | None
    batch_size: int


def train_linear_classifier(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    num_classes: int,
    options: LinearOptions | None = None,
    eval_x: torch.Tensor | None = None,
    eval_y: torch.Tensor | None = None,
) -> LinearClassifier:
    """Train ``nn.Linear`` with Adam and cross-entropy on fixed features; the one loop for
    the probe, the exported linear head and the saliency classifier.

    Runs on ``train_x``'s device with its own seeded generator (initialisation and
    shuffling do not depend on the global RNG). With ``eval_x``/``eval_y`` the head is
    scored after every epoch. Gradients are enabled inside, as callers may sit in
    ``no_grad`` (e.g. a lazily built classifier).
    """
    options = options or LinearOptions()
    device = train_x.device
    generator = torch.Generator().manual_seed(options.seed)
    x_train = train_x.float()
    x_eval = eval_x.to(device).float() if eval_x is not None else None
    mean, std = standardizer(x_train) if options.standardize else (None, None)
    if mean is not None:
        x_train = (x_train - mean) / std
        x_eval = (x_eval - mean) / std if x_eval is not None else None
    y_train = train_y.to(device).long()
    head = seeded_linear(x_train.shape[1], num_classes, generator).to(device)
    optimizer = torch.optim.Adam(head.parameters(), lr=options.lr, weight_decay=options.weight_decay)
    step = options.batch_size if options.batch_size > 0 else len(x_train)
    curve = Curve(eval_y) if x_eval is not None and eval_y is not None else None
    with torch.enable_grad():
        for _ in range(options.epochs):
            head.train()
            for index in torch.randperm(len(x_train), generator=generator).to(device).split(step):
                loss = nn.functional.cross_entropy(head(x_train[index]), y_train[index])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            if curve is not None:
                with torch.no_grad():
                    curve.record(head.eval()(x_eval).argmax(1))
    return LinearClassifier(_folded(head, mean, std), curve, step)


def _folded(head: nn.Linear, mean: torch.Tensor | None, std: torch.Tensor | None) -> nn.Linear:
    """``head`` applied to ``(x - mean) / std`` as one layer on raw ``x``:
    ``W z + b = (W / std) x + (b - (W / std) mean)``."""
    if mean is None or std is None:
        return head.eval()
    folded = nn.Linear(head.in_features, head.out_features).to(head.weight.device)
    with torch.no_grad():
        folded.weight.copy_(head.weight / std)
        folded.bias.copy_(head.bias - folded.weight @ mean)
    return folded.eval()


def fit_linear_probe(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    num_classes: int,
    options: LinearOptions | None = None,
) -> EvalResult:
    """The linear-probe protocol: train the head, report test accuracy per epoch (max and final)."""
    options = options or LinearOptions()
    trained = train_linear_classifier(
        train_features, train_labels, num_classes, options, test_features, test_labels
    )
    assert trained.curve is not None  # evaluation data was given
    return trained.curve.result(
        "linear", lr=options.lr, batch_size=trained.batch_size, standardize=options.standardize
    )


def run_linear(
    features: FeatureCache, train: ImageDataset, test: ImageDataset, options: LinearOptions
) -> EvalResult:
    return fit_linear_probe(
        features(train), train.labels, features(test), test.labels, train.num_classes, options
    )


PROTOCOLS.register("linear")(Protocol(LinearOptions, run_linear, "linear head (Adam) on frozen features"))
