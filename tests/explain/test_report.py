"""The explain pipeline on a real (random-init) encoder and the built-in shapes10 data."""

from __future__ import annotations

import dataclasses
import struct
from pathlib import Path

import pytest
import torch

from edgessl.backbones import build_backbone
from edgessl.checkpoints import LoadedRepresentation
from edgessl.data import load_dataset
from edgessl.errors import UnknownNameError
from edgessl.explain.report import EXPLAINERS, ExplainContext, ExplainOptions, resolve_kinds
from edgessl.methods.base import Normalize, Representation


def png_size(path: Path) -> tuple[int, int]:
    return struct.unpack(">II", path.read_bytes()[16:24])


def subset(dataset, count: int):
    return dataclasses.replace(dataset, images=dataset.images[:count], labels=dataset.labels[:count])


@pytest.fixture(scope="module")
def context() -> ExplainContext:
    torch.manual_seed(0)
    train = subset(load_dataset("shapes10", "train", image_size=32), 200)
    test = subset(load_dataset("shapes10", "test", image_size=32), 100)
    encoder = build_backbone("squeezenet")
    model = Representation(Normalize(train.mean, train.std), encoder, encoder.feature_dim)
    loaded = LoadedRepresentation(
        model.eval(), {"method": "none", "backbone": "squeezenet", "epoch": 0, "image_size": 32}
    )
    return ExplainContext(
        loaded, train, test, ExplainOptions(per_class=1, neighbours=4, head_epochs=100, device="cpu")
    )


def test_every_kind_writes_its_picture(context: ExplainContext, tmp_path: Path) -> None:
    sizes = {}
    for kind in resolve_kinds(["all"]):
        (path,) = EXPLAINERS.get(kind)(context, tmp_path)
        sizes[kind] = png_size(path)
    # 10 classes: saliency 4 axes (TP image+map, FN image+map) of 1.6in per class row;
    # retrieval query + 4 neighbours of 1.3in per class; confusion 7in square, at 100 dpi.
    assert sizes == {"saliency": (640, 1640), "retrieval": (650, 1340), "confusion": (700, 700)}


def test_context_classifier_is_the_representation_plus_head(context: ExplainContext) -> None:
    probabilities = context.test_probabilities
    assert probabilities.shape == (100, 10)
    with torch.no_grad():
        logits = context.classifier(context.test.images[:5].float() / 255.0)
    torch.testing.assert_close(logits.softmax(1), probabilities[:5], atol=1e-4, rtol=1e-4)
    train_accuracy = (
        (context.classifier.head(context.train_features).argmax(1) == context.train.labels).float().mean()
    )
    assert train_accuracy > 0.3  # the head learned something from random features (chance: 0.1)


def test_kinds_are_validated() -> None:
    assert resolve_kinds(["confusion", "saliency"]) == ["saliency", "confusion"]
    with pytest.raises(UnknownNameError, match="saliency"):
        resolve_kinds(["salency"])
