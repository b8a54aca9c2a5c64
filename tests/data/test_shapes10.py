"""The built-in shapes10: sizes, determinism, disjoint splits, and no give-away colour cue."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from edgessl.data import read_split_arrays
from edgessl.data.synthetic import CLASS_NAMES


@pytest.fixture(scope="module")
def splits() -> dict:
    return {
        name: read_split_arrays("shapes10", name, image_size=32) for name in ("unlabeled", "train", "test")
    }


def test_documented_sizes_and_balanced_labels(splits) -> None:
    assert {name: split.images.shape for name, split in splits.items()} == {
        "unlabeled": (10_000, 3, 32, 32),
        "train": (2_000, 3, 32, 32),
        "test": (1_000, 3, 32, 32),
    }
    assert splits["unlabeled"].labels is None
    assert np.bincount(splits["train"].labels).tolist() == [200] * 10
    assert np.bincount(splits["test"].labels).tolist() == [100] * 10
    assert splits["train"].class_names == CLASS_NAMES and len(set(CLASS_NAMES)) == 10
    assert splits["train"].mean == splits["test"].mean == splits["unlabeled"].mean


def test_native_size_is_32_and_generation_is_deterministic(splits) -> None:
    again = read_split_arrays("shapes10", "test", image_size=32)
    assert np.array_equal(again.images, splits["test"].images) and np.array_equal(
        again.labels, splits["test"].labels
    )
    assert np.array_equal(read_split_arrays("shapes10", "test").images, splits["test"].images)  # native 32
    assert read_split_arrays("shapes10", "test", image_size=48).images.shape == (1_000, 3, 48, 48)


def test_splits_share_no_image(splits) -> None:
    digests = {
        name: {hashlib.sha1(image.tobytes()).digest() for image in split.images}
        for name, split in splits.items()
    }
    # no duplicates inside a split either
    assert all(len(d) == len(splits[name]) for name, d in digests.items())
    assert not digests["train"] & digests["test"]
    assert not digests["unlabeled"] & (digests["train"] | digests["test"])


def _knn(train: np.ndarray, train_labels: np.ndarray, test: np.ndarray, k: int = 20) -> np.ndarray:
    distances = ((test[:, None, :] - train[None, :, :]) ** 2).sum(-1)
    nearest = np.argsort(distances, axis=1)[:, :k]
    return np.array([np.bincount(row, minlength=10).argmax() for row in train_labels[nearest]])


def _mean_colour(images: np.ndarray) -> np.ndarray:
    return images.reshape(len(images), 3, -1).mean(-1) / 255


def test_mean_colour_does_not_give_the_class_away(splits) -> None:
    """Per-sample colours are random: kNN on each image's mean colour is near chance (0.1)."""
    train, test = splits["train"], splits["test"]
    accuracy = (
        _knn(_mean_colour(train.images), train.labels, _mean_colour(test.images)) == test.labels
    ).mean()
    assert accuracy < 0.2, accuracy


def test_classes_have_visible_structure(splits) -> None:
    """A colour-blind cue separates textures from filled shapes, so the classes are not noise.

    Each image is projected onto its own main colour axis (PCA over its pixels), smoothed
    by a 3x3 box against pixel noise and thresholded; tone changes along rows are then
    more than twice as frequent in the texture classes as in discs and squares (measured:
    2.6-5.3 vs 1.0-1.1 changes per row), and rarest in ``halves`` (one edge).
    """
    train = splits["train"]
    pixels = train.images.reshape(len(train.images), 3, -1).astype(np.float64)
    pixels -= pixels.mean(-1, keepdims=True)
    _, vectors = np.linalg.eigh(np.einsum("ncp,ndp->ncd", pixels, pixels))
    projected = np.einsum("nc,ncp->np", vectors[:, :, -1], pixels).reshape(-1, 32, 32)
    padded = np.pad(projected, ((0, 0), (1, 1), (1, 1)), mode="edge")
    smooth = sum(padded[:, i : i + 32, j : j + 32] for i in range(3) for j in range(3)).reshape(
        len(projected), -1
    )
    low, high = np.percentile(smooth, [5, 95], axis=1, keepdims=True)
    binary = (smooth > (low + high) / 2).reshape(-1, 32, 32)
    changes = (binary[:, :, 1:] != binary[:, :, :-1]).sum((1, 2)) / 32
    per_class = {name: changes[train.labels == index].mean() for index, name in enumerate(CLASS_NAMES)}
    shapes = max(per_class["disc"], per_class["square"])
    assert min(per_class["stripes"], per_class["checker"], per_class["dots"]) > 2 * shapes, per_class
    assert min(per_class, key=per_class.get) == "halves", per_class
