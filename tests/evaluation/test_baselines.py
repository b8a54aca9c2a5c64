"""The raw-pixel baseline: the kNN protocol on it equals a kNN written out on the normalised pixels."""

from __future__ import annotations

import numpy as np

from edgessl.evaluation import evaluate_representation
from edgessl.evaluation.baselines import pixel_representation


def test_pixel_knn_matches_a_direct_computation(colour_data) -> None:
    train, test = colour_data("train", 12, 6, seed=3), colour_data("test", 5, 6, seed=4)
    model = pixel_representation(6, train.mean, train.std)
    accuracy = evaluate_representation(model, train, test, "knn", k=5).accuracy

    def normalised(images) -> np.ndarray:
        scaled = images.numpy().astype(np.float64) / 255
        return ((scaled - np.array(train.mean)[:, None, None]) / np.array(train.std)[:, None, None]).reshape(
            len(scaled), -1
        )

    bank, queries = normalised(train.images), normalised(test.images)
    distances = ((queries[:, None] - bank[None]) ** 2).sum(-1)
    nearest = np.argsort(distances, axis=1, kind="stable")[:, :5]
    votes = np.array([np.bincount(train.labels.numpy()[row], minlength=4) for row in nearest])
    expected = (votes.argmax(1) == test.labels.numpy()).mean()
    assert model.feature_dim == 3 * 6 * 6
    assert accuracy == expected and 0.25 < accuracy  # noisy single colours: pixels separate them
