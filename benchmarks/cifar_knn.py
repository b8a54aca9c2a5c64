"""What the CIFAR-10 learning benchmarks share: the data, kNN scoring, seeding and the machine line.

``method_parity.py`` and ``recipes.py`` pretrain on the first N images of each CIFAR-10
class (``cifar_subset.py`` copies them from ``../shared/data``) and score every encoder
the same way: kNN k=20 on frozen features, cosine-weighted (T=0.07) and the study's
Euclidean majority vote, with the pretraining images as the bank and the next images of
each class (never seen in pretraining) as the queries.
"""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass
from pathlib import Path

import cifar_subset
import numpy as np
import torch
from results_io import machine
from torch import nn

from edgessl.data import load_dataset
from edgessl.evaluation.features import extract_features
from edgessl.evaluation.knn import knn_predict

IMAGE_SIZE = 32
KNN_K = 20
KNN_METRICS = (("cosine", 0.07), ("euclidean", 0.1))  # (metric, temperature; unused by euclidean)


@dataclass
class Data:
    folder: Path
    bank: torch.Tensor
    bank_labels: torch.Tensor
    queries: torch.Tensor
    query_labels: torch.Tensor
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def prepare_data(folder: Path, train_per_class: int, test_per_class: int) -> Data:
    """Copy the subset into ``folder`` (an image folder with train/ and test/) and load both splits."""
    cifar_subset.prepare(cifar_subset.SOURCE, folder, train_per_class, test_per_class)
    train_split = load_dataset(str(folder), "train", image_size=IMAGE_SIZE)
    test_split = load_dataset(str(folder), "test", image_size=IMAGE_SIZE)
    return Data(
        folder,
        train_split.images,
        train_split.labels,
        test_split.images,
        test_split.labels,
        tuple(train_split.mean),
        tuple(train_split.std),
    )


def knn_scores(model: nn.Module, data: Data) -> dict[str, float]:
    """kNN accuracy (%) of ``model``'s frozen features by each of :data:`KNN_METRICS`."""
    bank = extract_features(model, data.bank, device="cpu")
    queries = extract_features(model, data.queries, device="cpu")
    scores = {}
    for metric, temperature in KNN_METRICS:
        predicted = knn_predict(
            bank, data.bank_labels, queries, 10, k=KNN_K, metric=metric, temperature=temperature
        )
        scores[metric] = 100 * float((predicted == data.query_labels).float().mean())
    return scores


def seed_all(seed: int) -> None:
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)


def spread(values: list[float]) -> str:
    """``mean ± standard deviation`` over seeds (the value alone for one seed)."""
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def gap_interval(ours: list[float], theirs: list[float]):
    """The mean of ``ours - theirs`` paired by seed, with its 95% Student-t interval (edgessl.stats)."""
    from edgessl.stats import mean_interval

    return mean_interval([a - b for a, b in zip(ours, theirs, strict=True)])


def gap_verdict(gap, better: str, worse: str, target: float = 0.0) -> str:
    """``within noise`` when the gap's interval contains ``target``; otherwise which side the interval is
    on."""
    if not gap.known:
        return f"no interval ({gap.n} seed); rerun with --seeds 3"
    if gap.low > target:
        return better
    if gap.high < target:
        return worse
    return "within noise"


def gap_cell(gap) -> str:
    """``+0.2 [-3.1, +3.5]`` (points), or the mean alone when there is one seed."""
    if not gap.known:
        return f"{gap.estimate:+.1f}"
    return f"{gap.estimate:+.1f} [{gap.low:+.1f}, {gap.high:+.1f}]"


def machine_line() -> str:
    """The shared machine facts as the one line these reports end with (their JSON keeps the line)."""
    facts = machine()
    return (
        f"{facts['cpu']}, {facts['logical_cores']} cores, {facts['torch_threads']} torch threads, "
        f"torch {facts['torch']}; {facts['date']}; 1-minute load at start {facts['load_average_1min']:.1f}"
    )
