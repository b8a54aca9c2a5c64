"""k-nearest-neighbour classification on frozen features, batched and memory-bounded.

Two votes are registered in :data:`KNN_METRICS`:

- ``euclidean``: majority vote of the k nearest training features by Euclidean
  distance, the reference study's choice. A tie between classes goes to the tied class
  whose closest member is nearest to the query (equivalently, the class of the nearest
  neighbour among the tied classes), so the answer does not depend on label order
  (only an exact distance tie between those members falls back to the smaller label).
- ``cosine``: the usual self-supervised protocol (Wu et al. 2018, InstDisc; k = 200,
  T = 0.1): the k most cosine-similar features vote with weight ``exp(sim / T)``.

Queries are processed in chunks sized from a memory budget in bytes (the distance
matrix of one chunk against the whole bank), never from a fraction of the test set,
so 1 query and 8,000 queries are handled by the same code path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from edgessl.config import PositiveFloat, PositiveInt
from edgessl.data.base import ImageDataset
from edgessl.errors import ConfigError, DataError
from edgessl.evaluation.features import FeatureCache
from edgessl.evaluation.protocols import PROTOCOLS, Protocol
from edgessl.evaluation.results import EvalResult
from edgessl.registry import Registry

DEFAULT_MEMORY_BUDGET = 512 * 2**20  # bytes per query chunk; fits a laptop GPU and any CPU

# (queries (c, D), bank (N, D), bank_labels (N,), k, num_classes, temperature) -> (c,) int64
Voter = Callable[[torch.Tensor], torch.Tensor]  # a chunk of queries -> their predicted classes
# (bank, bank_labels, k, num_classes, temperature) -> Voter; per-bank work is done once, not per chunk
VoterFactory = Callable[[torch.Tensor, torch.Tensor, int, int, float], Voter]
KNN_METRICS: Registry[VoterFactory] = Registry("kNN metric")


@dataclass
class KnnOptions:
    """kNN protocol options; defaults are the study's metric with the usual SSL k."""

    k: PositiveInt = 200  # neighbours; clipped to the bank size
    metric: str = "euclidean"  # one of KNN_METRICS: euclidean (majority vote) or cosine (weighted)
    temperature: PositiveFloat = 0.1  # cosine only: weight exp(similarity / temperature)
    memory_budget_bytes: PositiveInt = DEFAULT_MEMORY_BUDGET


def bytes_per_query(bank_size: int, k: int, num_classes: int) -> int:
    """Peak bytes one query row needs: its distance row (twice, for top-k) plus votes."""
    return 2 * 4 * bank_size + 5 * 8 * k + 3 * 8 * num_classes


def queries_per_chunk(bank_size: int, k: int, num_classes: int, memory_budget_bytes: int) -> int:
    """How many queries fit the budget at once (at least one, whatever the budget)."""
    return max(1, memory_budget_bytes // bytes_per_query(bank_size, k, num_classes))


@KNN_METRICS.register("euclidean")
def euclidean_majority_vote(
    bank: torch.Tensor, bank_labels: torch.Tensor, k: int, num_classes: int, temperature: float
) -> Voter:
    """Majority vote of the k Euclidean-nearest bank features; ties go to the nearest member.

    Squared distance ``|q|^2 + |b|^2 - 2 q.b`` ranks neighbours like ``|b|^2 - 2 q.b``
    (``|q|^2`` is constant per query), which is one matrix product. The k nearest need
    no sorting: the tie-break uses each class's smallest distance among them.
    """
    del temperature  # unweighted vote
    squared_norms = (bank * bank).sum(1)

    def vote(queries: torch.Tensor) -> torch.Tensor:
        partial = torch.addmm(squared_norms, queries, bank.T, beta=1.0, alpha=-2.0)
        distances, neighbours = partial.topk(k, dim=1, largest=False, sorted=False)
        votes_for = bank_labels[neighbours]  # (c, k)
        counts = torch.zeros(len(queries), num_classes, dtype=torch.int64, device=queries.device)
        counts.scatter_add_(1, votes_for, torch.ones_like(votes_for))
        nearest = torch.full(counts.shape, float("inf"), dtype=distances.dtype, device=queries.device)
        nearest.scatter_reduce_(1, votes_for, distances, reduce="amin")
        # only the tied leaders compete
        nearest.masked_fill_(counts < counts.amax(1, keepdim=True), float("inf"))
        return nearest.argmin(1)

    return vote


@KNN_METRICS.register("cosine")
def cosine_weighted_vote(
    bank: torch.Tensor, bank_labels: torch.Tensor, k: int, num_classes: int, temperature: float
) -> Voter:
    """Vote of the k most cosine-similar bank features, each weighted by ``exp(sim / T)``."""
    unit_bank = F.normalize(bank, dim=1)

    def vote(queries: torch.Tensor) -> torch.Tensor:
        similarity = F.normalize(queries, dim=1) @ unit_bank.T
        top = similarity.topk(k, dim=1, largest=True, sorted=True)
        scores = torch.zeros(len(queries), num_classes, dtype=similarity.dtype, device=queries.device)
        scores.scatter_add_(1, bank_labels[top.indices], (top.values / temperature).exp())
        return scores.argmax(1)

    return vote


def knn_predict(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    num_classes: int,
    *,
    k: int = 200,
    metric: str = "euclidean",
    temperature: float = 0.1,
    memory_budget_bytes: PositiveInt = DEFAULT_MEMORY_BUDGET,
) -> torch.Tensor:
    """Predicted class ``(N_test,)`` int64 of every test feature, on ``test_features.device``.

    Runs on the device of ``train_features`` (the bank); test features are moved there
    one chunk at a time. ``k`` larger than the bank uses the whole bank.
    """
    vote_with = KNN_METRICS.get(metric)
    if k < 1:
        raise ConfigError(f"k must be at least 1, got {k}")
    if temperature <= 0:
        raise ConfigError(f"temperature must be positive, got {temperature}")
    if (
        train_features.ndim != 2
        or test_features.ndim != 2
        or train_features.shape[1] != test_features.shape[1]
    ):
        raise ValueError(
            f"features must be (N, D) with equal D, got {tuple(train_features.shape)} "
            f"and {tuple(test_features.shape)}"
        )
    if train_labels is None or (
        len(train_labels) and not 0 <= int(train_labels.min()) <= int(train_labels.max()) < num_classes
    ):
        raise DataError(
            f"kNN bank labels must be class indices in [0, {num_classes}); "
            "unlabelled samples (no label, or a "
            "placeholder such as -1) never enter the bank: evaluate with a labelled split such as 'train'"
        )
    if len(train_labels) != len(train_features) or len(train_features) == 0:
        raise ValueError(
            "need one label per bank feature and a non-empty bank, "
            f"got {len(train_labels)} labels for {len(train_features)}"
        )
    device = train_features.device
    bank = train_features.float()
    labels = train_labels.to(device=device, dtype=torch.int64)
    k = min(k, len(bank))
    rows = queries_per_chunk(len(bank), k, num_classes, memory_budget_bytes)
    vote = vote_with(bank, labels, k, num_classes, temperature)
    predictions = [
        vote(chunk.to(device).float()).to(test_features.device) for chunk in test_features.split(rows)
    ]
    return (
        torch.cat(predictions)
        if predictions
        else torch.empty(0, dtype=torch.int64, device=test_features.device)
    )


def run_knn(
    features: FeatureCache, train: ImageDataset, test: ImageDataset, options: KnnOptions
) -> EvalResult:
    """Extract train (bank) and test features once, vote, and score the test split."""
    KNN_METRICS.get(options.metric)  # fail on a bad metric before the feature pass
    bank, queries = features(train), features(test)
    predictions = knn_predict(
        bank,
        train.labels,
        queries,
        train.num_classes,
        k=options.k,
        metric=options.metric,
        temperature=options.temperature,
        memory_budget_bytes=options.memory_budget_bytes,
    ).cpu()
    accuracy = float((predictions == test.labels).float().mean())
    details = {
        "k": min(options.k, len(bank)),
        "metric": options.metric,
        "temperature": options.temperature,
        "bank_size": len(bank),
        "test_size": len(queries),
    }
    return EvalResult("knn", accuracy, details, predictions)


PROTOCOLS.register("knn")(Protocol(KnnOptions, run_knn, "k-nearest-neighbour vote on frozen features"))
