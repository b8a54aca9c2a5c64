"""Vanilla-gradient saliency (Simonyan, Vedaldi & Zisserman, 2014) of a downstream classifier.

The reference study's Figure 3 shows, for BYOL on MobileNetV2, which pixels drive the
prediction for the most confidently correct images of a class (best true positives) and
the most confidently wrong ones (worst false negatives), e.g. blue sky driving
airplane/ship confusions. The classifier is the frozen representation plus a linear head
trained on its features, so the maps explain the representation, not a fine-tuned network.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from matplotlib.figure import Figure
from torch import nn

from edgessl.explain.pictures import to_hwc


def vanilla_saliency(
    model: nn.Module, images: torch.Tensor, targets: torch.Tensor, batch_size: int = 64
) -> torch.Tensor:
    """``|d score_target / d input|`` maximised over colour channels: ``(N, H, W)``.

    Scores are the pre-softmax logits, as in Simonyan et al.; ``images`` are float RGB in
    [0, 1] on the model's device. The model's weights receive no gradient.
    """
    maps = []
    with torch.enable_grad():
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size].detach().clone().requires_grad_(True)
            scores = model(batch).gather(1, targets[start : start + batch_size].view(-1, 1).to(batch.device))
            (gradient,) = torch.autograd.grad(scores.sum(), batch)
            maps.append(gradient.abs().amax(dim=1).cpu())
    return torch.cat(maps)


@dataclass(frozen=True)
class Example:
    """One picked image: its index in the dataset, true and predicted class, p(true class)."""

    index: int
    label: int
    predicted: int
    confidence: float  # softmax probability of the true class
    kind: str  # "TP" (best true positive) or "FN" (worst false negative)


def select_examples(
    probabilities: torch.Tensor, labels: torch.Tensor, per_class: int
) -> dict[int, tuple[list[Example], list[Example]]]:
    """Per class: the ``per_class`` best true positives and worst false negatives.

    Best true positive: correctly classified, highest probability of the true class.
    Worst false negative: misclassified, lowest probability of the true class (the
    network was most sure it was something else). Ties keep dataset order.
    """
    predicted = probabilities.argmax(1)
    true_probability = probabilities.gather(1, labels.view(-1, 1)).squeeze(1)
    picked: dict[int, tuple[list[Example], list[Example]]] = {}
    for label in range(probabilities.shape[1]):
        members = labels == label
        groups = []
        for kind, mask, descending in (
            ("TP", members & (predicted == label), True),
            ("FN", members & (predicted != label), False),
        ):
            indices = mask.nonzero().squeeze(1)
            order = torch.sort(true_probability[indices], descending=descending, stable=True).indices[
                :per_class
            ]
            groups.append(
                [
                    Example(int(i), label, int(predicted[i]), float(true_probability[i]), kind)
                    for i in indices[order]
                ]
            )
        picked[label] = (groups[0], groups[1])
    return picked


def saliency_figure(
    images: torch.Tensor,
    maps: torch.Tensor,
    examples: Sequence[Example],
    class_names: Sequence[str],
    per_class: int,
    cell_inches: float = 1.6,
) -> Figure:
    """Figure 3's grid: a row per class; for each picked image the image and its saliency overlay.

    Columns: ``per_class`` true positives then ``per_class`` false negatives, two axes
    each. ``images`` (uint8 or [0, 1] float, ``(N, 3, H, W)``) and ``maps`` are aligned
    with ``examples``. Empty slots (a class with fewer examples) are left blank.
    """
    classes = sorted({example.label for example in examples}) or [0]
    columns = 4 * per_class
    figure = Figure(
        figsize=(cell_inches * columns, cell_inches * len(classes) + 0.4), dpi=100, layout="constrained"
    )
    axes = figure.subplots(len(classes), columns, squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    slots: dict[tuple[int, str], int] = {}
    for position, example in enumerate(examples):
        row = classes.index(example.label)
        slot = slots.get((example.label, example.kind), 0)
        slots[example.label, example.kind] = slot + 1
        column = 2 * slot + (2 * per_class if example.kind == "FN" else 0)
        picture = to_hwc(images[position])
        axes[row, column].imshow(picture)
        axes[row, column].set_title(_caption(example, class_names), fontsize=7)
        axes[row, column + 1].imshow(picture)
        axes[row, column + 1].imshow(maps[position].numpy(), cmap="jet", alpha=0.5)
    figure.suptitle(
        "Saliency |d score / d pixel|: best true positives (left), worst false negatives (right)", fontsize=9
    )
    return figure


def _caption(example: Example, class_names: Sequence[str]) -> str:
    true = class_names[example.label]
    if example.kind == "TP":
        return f"TP {true} p={example.confidence:.2f}"
    return f"FN {true}->{class_names[example.predicted]} p={example.confidence:.2f}"
