"""kNN against a brute-force reference computed a second, obvious way."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.neighbors import KNeighborsClassifier

from edgessl.errors import ConfigError, DataError, UnknownNameError
from edgessl.evaluation import evaluate_representation, knn_predict
from edgessl.evaluation.knn import bytes_per_query, queries_per_chunk


def brute_force_majority(
    bank: np.ndarray, labels: np.ndarray, queries: np.ndarray, k: int, num_classes: int
) -> list[int]:
    """Python loops in float64: majority of the k nearest; a tie goes to the class met first by distance."""
    predictions = []
    for query in queries.astype(np.float64):
        distances = [math.dist(query, row) for row in bank.astype(np.float64)]
        order = sorted(range(len(bank)), key=distances.__getitem__)[:k]
        counts = [0] * num_classes
        for index in order:
            counts[labels[index]] += 1
        tied = {c for c in range(num_classes) if counts[c] == max(counts)}
        predictions.append(next(int(labels[i]) for i in order if labels[i] in tied))
    return predictions


def random_problem(n_bank: int, n_query: int, dim: int, num_classes: int, seed: int):
    generator = torch.Generator().manual_seed(seed)
    bank = torch.randn(n_bank, dim, generator=generator)
    labels = torch.randint(0, num_classes, (n_bank,), generator=generator)
    queries = torch.randn(n_query, dim, generator=generator)
    return bank, labels, queries


@pytest.mark.parametrize("n_query", [1, 7, 99, 250])
@pytest.mark.parametrize("k", [1, 4, 15])
def test_euclidean_vote_equals_brute_force_with_many_chunks(n_query: int, k: int) -> None:
    bank, labels, queries = random_problem(120, n_query, 6, 3, seed=n_query * 31 + k)
    budget = 3 * bytes_per_query(len(bank), k, 3)  # three queries per chunk
    assert queries_per_chunk(len(bank), k, 3, budget) == 3
    predicted = knn_predict(bank, labels, queries, 3, k=k, memory_budget_bytes=budget)
    assert predicted.dtype == torch.int64 and predicted.shape == (n_query,)
    assert predicted.tolist() == brute_force_majority(bank.numpy(), labels.numpy(), queries.numpy(), k, 3)


def test_chunk_size_does_not_change_predictions_and_budget_below_one_row_still_works() -> None:
    bank, labels, queries = random_problem(300, 64, 8, 5, seed=3)
    whole = knn_predict(bank, labels, queries, 5, k=20)
    assert torch.equal(knn_predict(bank, labels, queries, 5, k=20, memory_budget_bytes=1), whole)
    assert torch.equal(
        knn_predict(bank, labels, queries, 5, k=20, metric="cosine", memory_budget_bytes=1),
        knn_predict(bank, labels, queries, 5, k=20, metric="cosine"),
    )


def test_agrees_with_sklearn_where_the_vote_is_not_tied() -> None:
    bank, labels, queries = random_problem(500, 200, 16, 4, seed=11)
    k = 15
    ours = knn_predict(bank, labels, queries, 4, k=k, memory_budget_bytes=10_000)
    reference = KNeighborsClassifier(n_neighbors=k, algorithm="brute").fit(bank.numpy(), labels.numpy())
    neighbours = reference.kneighbors(queries.numpy(), return_distance=False)
    counts = np.stack([np.bincount(labels.numpy()[row], minlength=4) for row in neighbours])
    untied = (counts == counts.max(1, keepdims=True)).sum(1) == 1
    assert untied.sum() > 150
    assert np.array_equal(ours.numpy()[untied], reference.predict(queries.numpy())[untied])


def test_euclidean_tie_goes_to_the_class_of_the_nearest_tied_neighbour() -> None:
    bank = torch.tensor([[3.0], [1.0], [-2.0], [-4.0]])
    labels = torch.tensor([1, 1, 0, 0])
    # distances from 0: 3 (1), 1 (1), 2 (0), 4 (0) -> k=4 is a 2-2 tie; nearest member is class 1
    assert knn_predict(bank, labels, torch.zeros(1, 1), 2, k=4).tolist() == [1]
    assert knn_predict(bank, 1 - labels, torch.zeros(1, 1), 2, k=4).tolist() == [0]


def test_cosine_weighted_vote_matches_hand_computation() -> None:
    bank = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.5, 0.75**0.5], [-1.0, 0.0]])  # unit vectors
    labels = torch.tensor([0, 1, 1, 0])
    query = torch.tensor([[2.0, 0.0]])
    # cosine similarities to the query: 1, 0.6, 0.5, -1 -> the top 3 are the first three rows
    score_0, score_1 = math.exp(1.0 / 0.5), math.exp(0.6 / 0.5) + math.exp(0.5 / 0.5)  # 7.39 vs 6.04
    assert score_0 > score_1
    assert knn_predict(bank, labels, query, 2, k=3, metric="cosine", temperature=0.5).tolist() == [0]
    # with T = 2 the weights flatten and the two class-1 neighbours win: e^0.5 < e^0.3 + e^0.25
    assert math.exp(0.5) < math.exp(0.3) + math.exp(0.25)
    assert knn_predict(bank, labels, query, 2, k=3, metric="cosine", temperature=2.0).tolist() == [1]
    # the unweighted Euclidean vote of the same three neighbours is 2 to 1 for class 1
    assert knn_predict(bank, labels, query, 2, k=3, metric="euclidean").tolist() == [1]


def test_k_larger_than_the_bank_uses_the_whole_bank() -> None:
    bank, labels, queries = random_problem(10, 5, 3, 2, seed=0)
    assert torch.equal(
        knn_predict(bank, labels, queries, 2, k=200), knn_predict(bank, labels, queries, 2, k=10)
    )


def test_bad_metric_and_k_are_user_errors() -> None:
    bank, labels, queries = random_problem(10, 2, 3, 2, seed=0)
    with pytest.raises(UnknownNameError, match="cosine"):
        knn_predict(bank, labels, queries, 2, metric="cosin")
    with pytest.raises(ConfigError, match="k must be"):
        knn_predict(bank, labels, queries, 2, k=0)


def test_placeholder_labels_never_enter_the_bank() -> None:
    bank, labels, queries = random_problem(10, 2, 3, 2, seed=0)
    with pytest.raises(DataError, match="unlabelled"):
        knn_predict(bank, torch.where(labels == 0, -1, labels), queries, 2)  # STL-10's -1 placeholder
    with pytest.raises(DataError, match="unlabelled"):
        knn_predict(bank, None, queries, 2)


def test_unlabelled_split_never_enters_the_bank(tiny_splits) -> None:
    train, test, model = tiny_splits
    unlabelled = type(train)(
        train.name, "unlabeled", train.images, None, train.class_names, train.mean, train.std
    )
    with pytest.raises(DataError, match="unlabelled"):
        evaluate_representation(model, unlabelled, test, "knn")


def test_knn_protocol_on_a_model(tiny_splits) -> None:
    train, test, model = tiny_splits
    result = evaluate_representation(model, train, test, "knn", device="cpu", k=5)
    assert result.protocol == "knn" and result.details["k"] == 5 and result.details["metric"] == "euclidean"
    assert result.accuracy == pytest.approx(float((result.predictions == test.labels).float().mean()))
    assert result.accuracy > 0.9  # colour classes are separable even in random features
