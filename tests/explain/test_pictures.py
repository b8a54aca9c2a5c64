"""Saliency picks, retrieval order and confusion counts on constructed cases with known answers."""

from __future__ import annotations

import torch
from torch import nn

from edgessl.evaluation.linear import Classifier, LinearOptions, train_linear_classifier
from edgessl.explain.confusion import confusion_figure, confusion_matrix, top_confusions
from edgessl.explain.retrieval import nearest_neighbours, pick_queries, retrieval_figure
from edgessl.explain.saliency import saliency_figure, select_examples, vanilla_saliency


def test_select_examples_picks_best_true_positives_and_worst_false_negatives() -> None:
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1])
    # p(class 0), p(class 1); argmax gives the prediction.
    p0 = torch.tensor([0.9, 0.6, 0.2, 0.4, 0.3, 0.8, 0.55])
    probabilities = torch.stack([p0, 1 - p0], dim=1)
    picked = select_examples(probabilities, labels, per_class=1)
    (tp0,), (fn0,) = picked[0]
    assert (tp0.index, tp0.kind) == (0, "TP")  # 0.9 beats 0.6
    assert (fn0.index, fn0.predicted) == (2, 1)  # p(true)=0.2 is worse than 0.4
    tp1, fn1 = picked[1]
    assert [e.index for e in tp1] == [4]
    assert [e.index for e in fn1] == [5]  # p(true)=0.2 beats 0.45 as the worst
    assert abs(fn1[0].confidence - 0.2) < 1e-6
    both = select_examples(probabilities, labels, per_class=2)
    assert [e.index for e in both[0][0]] == [0, 1] and [e.index for e in both[0][1]] == [2, 3]
    assert [e.index for e in both[1][1]] == [5, 6]


def test_vanilla_saliency_is_the_input_gradient_max_over_channels() -> None:
    torch.manual_seed(0)
    weight = torch.randn(2, 3, 4, 4)
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 2, bias=False))
    model[1].weight.data = weight.flatten(1)
    images = torch.rand(3, 3, 4, 4)
    targets = torch.tensor([1, 0, 1])
    maps = vanilla_saliency(model, images, targets, batch_size=2)
    expected = weight[targets].abs().amax(dim=1)  # a linear score's gradient is its weight
    torch.testing.assert_close(maps, expected)
    assert model[1].weight.grad is None


def test_linear_head_separates_features_and_folds_standardisation() -> None:
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(3).repeat(40)
    centres = torch.tensor([[1000.0, 0.0], [0.0, 0.01], [-1000.0, -0.01]])
    features = centres[labels] + torch.randn(120, 2, generator=generator) * torch.tensor([50.0, 0.001])
    head = train_linear_classifier(features, labels, 3, LinearOptions(epochs=30, lr=0.05, batch_size=32)).head
    assert (head(features).argmax(1) == labels).float().mean() == 1.0
    classifier = Classifier(nn.Identity(), head)
    assert classifier(features).shape == (120, 3)


def test_saliency_figure_has_image_and_overlay_per_example() -> None:
    probabilities = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]])
    labels = torch.tensor([0, 0, 1, 1])
    picked = select_examples(probabilities, labels, per_class=1)
    examples = [e for tp, fn in picked.values() for e in tp + fn]
    images = torch.randint(0, 256, (len(examples), 3, 8, 8), dtype=torch.uint8)
    figure = saliency_figure(images, torch.rand(len(examples), 8, 8), examples, ["cat", "dog"], per_class=1)
    assert len(figure.axes) == 2 * 4
    shown = [ax for ax in figure.axes if ax.images]
    assert len(shown) == 2 * len(examples)
    assert sum(len(ax.images) == 2 for ax in shown) == len(examples)  # overlays: image + map
    assert {ax.get_title() for ax in shown if ax.get_title()} == {
        "TP cat p=0.90",
        "FN cat->dog p=0.20",
        "TP dog p=0.70",
        "FN dog->cat p=0.40",
    }


def test_nearest_neighbours_sorted_by_euclidean_distance() -> None:
    bank = torch.tensor([[5.0, 0.0], [1.0, 0.0], [3.0, 0.0], [0.0, 2.5], [-0.5, 0.0]])
    queries = torch.tensor([[0.0, 0.0], [4.2, 0.0]])
    distances, indices = nearest_neighbours(queries, bank, k=4, chunk=1)
    assert indices.tolist() == [[4, 1, 3, 2], [0, 2, 1, 4]]
    torch.testing.assert_close(distances[0], torch.tensor([0.5, 1.0, 2.5, 3.0]))
    assert bool((distances[:, 1:] >= distances[:, :-1]).all())
    generator = torch.Generator().manual_seed(1)
    bank, queries = torch.randn(300, 16, generator=generator), torch.randn(7, 16, generator=generator)
    _, indices = nearest_neighbours(queries, bank, k=5, chunk=3)
    assert indices.tolist() == torch.cdist(queries, bank).argsort(1)[:, :5].tolist()


def test_retrieval_figure_marks_correct_and_wrong_neighbours() -> None:
    bank_labels = torch.tensor([0, 1, 0, 1])
    images = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    indices = torch.tensor([[0, 1, 2], [3, 2, 1]])
    distances = torch.tensor([[0.1, 0.2, 0.3], [0.1, 0.5, 0.9]])
    figure = retrieval_figure(
        images[:2], torch.tensor([0, 1]), images, bank_labels, distances, indices, class_names=["cat", "dog"]
    )
    assert len(figure.axes) == 2 * 4
    titles = [ax.get_title() for ax in figure.axes]
    assert titles[:4] == ["query: cat", "cat d=0.10", "dog d=0.20", "cat d=0.30"]
    colours = [ax.title.get_color() for ax in figure.axes[1:4]]
    assert colours == ["tab:green", "tab:red", "tab:green"]
    assert pick_queries(torch.tensor([1, 0, 1, 0, 0]), per_class=2).tolist() == [1, 3, 0, 2]


def test_confusion_matrix_counts_exact() -> None:
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
    predicted = torch.tensor([0, 2, 2, 1, 0, 2, 2, 0, 2])
    matrix = confusion_matrix(labels, predicted, 3)
    assert matrix.tolist() == [[1, 0, 2], [1, 1, 0], [1, 0, 3]]
    names = ["airplane", "ship", "truck"]
    assert top_confusions(matrix, names, n=2) == [("airplane", "truck", 2), ("ship", "airplane", 1)]
    figure = confusion_figure(matrix, names, "byol")
    texts = [t.get_text() for t in figure.axes[0].texts]
    assert texts == ["1", "0", "2", "1", "1", "0", "1", "0", "3"]
    assert [t.get_text() for t in figure.axes[0].get_xticklabels()] == names
    assert figure.axes[0].get_title() == "byol accuracy 0.556"
