"""kNN retrieval grids (the reference study's Figure 4).

A query image and its nearest neighbours in feature space by Euclidean distance, the
distance increasing from left to right. Neighbours whose label differs from the query's
are framed red, matching ones green: rows of red show what the representation confuses
(e.g. airplanes next to ships because both are mostly blue).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from matplotlib.figure import Figure

from edgessl.explain.pictures import to_hwc

MATCH, MISMATCH, QUERY = "tab:green", "tab:red", "black"


def nearest_neighbours(
    queries: torch.Tensor, bank: torch.Tensor, k: int, chunk: int = 1024
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(distances, indices)``, each ``(Q, k)``: the ``k`` bank rows closest to each query.

    Sorted by increasing Euclidean distance; queries are processed ``chunk`` at a time so
    the distance matrix stays ``chunk x B``.
    """
    k = min(k, len(bank))
    distances, indices = [], []
    for start in range(0, len(queries), chunk):
        block = torch.cdist(queries[start : start + chunk].float(), bank.float())
        values, positions = block.topk(k, dim=1, largest=False, sorted=True)
        distances.append(values)
        indices.append(positions)
    return torch.cat(distances), torch.cat(indices)


def pick_queries(labels: torch.Tensor, per_class: int) -> torch.Tensor:
    """The first ``per_class`` images of every class, in class order (reproducible)."""
    picked = [(labels == label).nonzero().squeeze(1)[:per_class] for label in torch.unique(labels).tolist()]
    return torch.cat(picked) if picked else torch.empty(0, dtype=torch.long)


def retrieval_figure(
    query_images: torch.Tensor,
    query_labels: torch.Tensor,
    bank_images: torch.Tensor,
    bank_labels: torch.Tensor,
    distances: torch.Tensor,
    indices: torch.Tensor,
    *,
    class_names: Sequence[str],
    cell_inches: float = 1.3,
) -> Figure:
    """A row per query: the query, then its neighbours left to right by increasing distance."""
    rows, k = indices.shape
    figure = Figure(figsize=(cell_inches * (k + 1), cell_inches * rows + 0.4), dpi=100, layout="constrained")
    axes = figure.subplots(max(rows, 1), k + 1, squeeze=False)
    for row in range(rows):
        query_label = int(query_labels[row])
        _show(axes[row, 0], query_images[row], f"query: {class_names[query_label]}", QUERY)
        for column in range(k):
            index = int(indices[row, column])
            label = int(bank_labels[index])
            colour = MATCH if label == query_label else MISMATCH
            _show(
                axes[row, column + 1],
                bank_images[index],
                f"{class_names[label]} d={float(distances[row, column]):.2f}",
                colour,
            )
    figure.suptitle(
        "Nearest neighbours by Euclidean distance in feature space (green: same class, red: other)",
        fontsize=9,
    )
    return figure


def _show(ax, image: torch.Tensor, title: str, colour: str) -> None:
    ax.imshow(to_hwc(image))
    ax.set_title(title, fontsize=7, color=colour)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_edgecolor(colour)
        spine.set_linewidth(1 if colour == QUERY else 3)
