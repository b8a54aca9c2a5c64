"""Is the run learning or collapsing? Cheap online measurements of the representation during pretraining.

Every ``monitor_every`` epochs the trainer hands the current representation to
:class:`OnlineMonitor`, which embeds a fixed subset of the dataset's labelled ``train``
split (the kNN bank) and ``test`` split (the queries) on the training device and reports:

- ``knn_accuracy``: edgessl's own cosine-weighted kNN (k=20, T=0.07: solo-learn's online
  kNN defaults) of the queries against the bank;
- ``embedding_std``: the std over the queries of their l2-normalised embeddings, averaged
  over dimensions (lightly's ``std_of_l2_normalized``); it goes to 0 when the embeddings
  collapse to a point, and is about ``1/sqrt(D)`` when they spread over the sphere;
- ``effective_rank``: ``exp`` of the entropy of the normalised singular values of the
  centred query embeddings (Roy & Vetterli 2007); 1 means every embedding lies on a line.

The subsets are small (``BANK_SIZE`` + ``QUERY_SIZE`` forward passes, no gradients) so
the default of every epoch costs a few percent of training, and they are fixed (a
seeded choice) so the curve compares like with like. Datasets without labelled splits
get the two collapse measures on pretext images and skip the kNN, saying so once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from rich.console import Console

from edgessl.data import ImageDataset, load_labelled_splits
from edgessl.errors import EdgesslError
from edgessl.evaluation.features import extract_features
from edgessl.evaluation.knn import knn_predict

BANK_SIZE = 1000
QUERY_SIZE = 500
KNN_K, KNN_TEMPERATURE = 20, 0.07


def embedding_std(features: torch.Tensor) -> float:
    """Mean over dimensions of the per-dimension std of l2-normalised ``(N, D)`` features."""
    unit = torch.nn.functional.normalize(features.float(), dim=1)
    return float(unit.std(dim=0).mean())


def effective_rank(features: torch.Tensor) -> float:
    """``exp(H(p))`` with ``p`` the singular values of the centred features, normalised to sum 1."""
    centred = features.float() - features.float().mean(0, keepdim=True)
    singular = torch.linalg.svdvals(centred)
    p = singular / singular.sum().clamp_min(1e-12)
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def fixed_subset(dataset: ImageDataset, size: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The same ``size`` images (and labels) every time: a permutation seeded by the split's length."""
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(len(dataset)))[:size]
    labels = dataset.labels[order] if dataset.labels is not None else None
    return dataset.images[order], labels


@dataclass
class MonitorData:
    queries: torch.Tensor
    query_labels: torch.Tensor | None = None
    bank: torch.Tensor | None = None
    bank_labels: torch.Tensor | None = None
    num_classes: int = 0


class OnlineMonitor:
    """Measures a representation on fixed image subsets; see the module docstring for what and why."""

    def __init__(self, data: MonitorData, device: torch.device) -> None:
        self.data, self.device = data, device

    @classmethod
    def for_dataset(
        cls,
        pretext: ImageDataset,
        spec: str,
        data_root: str | None,
        device: torch.device,
        console: Console,
    ) -> OnlineMonitor:
        """Labelled ``train``/``test`` splits of dataset ``spec`` (a name or an image-folder path, as the
        run's ``data``) when it has them, else the pretext images only."""
        try:
            train, test = load_labelled_splits(spec, data_root, pretext.image_size, purpose="online kNN")
        except EdgesslError as exc:
            console.print(
                f"online kNN skipped: {pretext.name} has no labelled train/test splits ({exc})", markup=False
            )
            return cls(MonitorData(fixed_subset(pretext, QUERY_SIZE)[0]), device)
        bank, bank_labels = fixed_subset(train, BANK_SIZE)
        queries, query_labels = fixed_subset(test, QUERY_SIZE)
        return cls(MonitorData(queries, query_labels, bank, bank_labels, train.num_classes), device)

    @torch.no_grad()
    def measure(self, representation: torch.nn.Module) -> dict[str, float]:
        data = self.data
        queries = extract_features(representation, data.queries, device=self.device)
        values = {"embedding_std": embedding_std(queries), "effective_rank": effective_rank(queries)}
        if data.bank is not None:
            bank = extract_features(representation, data.bank, device=self.device)
            predicted = knn_predict(
                bank,
                data.bank_labels,
                queries,
                data.num_classes,
                k=KNN_K,
                metric="cosine",
                temperature=KNN_TEMPERATURE,
            )
            values["knn_accuracy"] = float((predicted.cpu() == data.query_labels).float().mean())
        return values


def run_monitor(config: Any, dataset: ImageDataset, accelerator: Any, console: Any) -> OnlineMonitor | None:
    """The monitor of a training run: on the main process when ``config.monitor_every`` is on, else None."""
    if not config.monitor_every or not accelerator.is_main_process:
        return None
    return OnlineMonitor.for_dataset(dataset, config.data, config.data_root, accelerator.device, console)
