"""The confusion matrix of a downstream classifier, with class names.

The reference study reads its failures as airplane <-> ship and car <-> truck
confusions; the matrix (and :func:`top_confusions`) shows which pairs a given
representation actually mixes up.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from matplotlib.figure import Figure


def confusion_matrix(labels: torch.Tensor, predicted: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``(C, C)`` int64 counts; row = true class, column = predicted class."""
    flat = labels.long() * num_classes + predicted.long()
    return torch.bincount(flat, minlength=num_classes * num_classes).view(num_classes, num_classes)


def top_confusions(
    matrix: torch.Tensor, class_names: Sequence[str], n: int = 5
) -> list[tuple[str, str, int]]:
    """The ``n`` largest off-diagonal counts as ``(true, predicted, count)``, largest first."""
    off_diagonal = matrix.clone()
    off_diagonal.fill_diagonal_(0)
    counts, positions = off_diagonal.flatten().sort(descending=True, stable=True)
    size = matrix.shape[0]
    return [
        (class_names[int(p) // size], class_names[int(p) % size], int(c))
        for c, p in zip(counts[:n], positions[:n])
        if c > 0
    ]


def confusion_figure(matrix: torch.Tensor, class_names: Sequence[str], title: str = "") -> Figure:
    """The matrix as a heat map, counts written in every cell, rows normalised for colour."""
    size = len(class_names)
    inches = max(4.0, 0.55 * size + 1.5)
    figure = Figure(figsize=(inches, inches), dpi=100, layout="constrained")
    ax = figure.subplots()
    rates = matrix.float() / matrix.sum(1, keepdim=True).clamp_min(1)
    image = ax.imshow(rates.numpy(), cmap="Blues", vmin=0.0, vmax=1.0)
    for row in range(size):
        for column in range(size):
            ax.text(
                column,
                row,
                str(int(matrix[row, column])),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if rates[row, column] > 0.5 else "black",
            )
    ax.set_xticks(range(size), class_names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(size), class_names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    accuracy = float(matrix.diagonal().sum()) / max(1, int(matrix.sum()))
    ax.set_title(f"{title} accuracy {accuracy:.3f}".strip(), fontsize=9)
    figure.colorbar(image, ax=ax, fraction=0.046, label="fraction of the true class")
    return figure
