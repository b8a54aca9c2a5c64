"""Figures 1 and 2 of the reference study: accuracy against pretraining epochs.

Figure 1 has a panel per method with a curve per backbone (which network learns best
with each method); Figure 2 a panel per backbone with a curve per method (which method
suits each network). A curve is the mean over seeds at each checkpoint, and its band the
95% Student-t interval over those seeds (:func:`curve_band`); one seed draws no band. Both are
built as :class:`matplotlib.figure.Figure` objects without pyplot, so they render headless (Agg)
and can be inspected before saving.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure

from edgessl.stats import mean_interval
from edgessl.study.results import CellResult

Band = tuple[list[int], list[float], list[float], list[float]]  # epochs, means, lows, highs

PANEL_INCHES = (4.0, 3.0)
MAX_COLUMNS = 3
DPI = 100


def curve_grid(
    cells: Sequence[CellResult],
    protocol: str,
    panel_by: str,
    curve_by: str,
    panels: Sequence[str] | None = None,
    curves: Sequence[str] | None = None,
) -> Figure:
    """One panel per value of ``panel_by`` ("method" or "backbone"), one curve per ``curve_by``.

    A cell without results for ``protocol`` draws no curve; every panel keeps the same
    y range (0 to 1) so panels compare at a glance.
    """
    lookup: dict[tuple[str, str], list[CellResult]] = {}
    for cell in cells:
        lookup.setdefault((getattr(cell, panel_by), getattr(cell, curve_by)), []).append(cell)
    panels = list(dict.fromkeys(panels or [getattr(cell, panel_by) for cell in cells]))
    curves = list(dict.fromkeys(curves or [getattr(cell, curve_by) for cell in cells]))
    columns = min(MAX_COLUMNS, max(1, len(panels)))
    rows = max(1, math.ceil(len(panels) / columns))
    figure = Figure(
        figsize=(PANEL_INCHES[0] * columns, PANEL_INCHES[1] * rows), dpi=DPI, layout="constrained"
    )
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for unused in axes[len(panels) :]:
        figure.delaxes(unused)
    for ax, panel in zip(axes, panels):
        for curve in curves:
            band = curve_band(lookup.get((panel, curve), []), protocol)
            if band is None:
                continue
            epochs, means, lows, highs = band
            (line,) = ax.plot(epochs, means, marker="o", markersize=3, label=curve)
            if not all(math.isnan(low) for low in lows):  # NaN where only one seed has the epoch
                ax.fill_between(epochs, lows, highs, color=line.get_color(), alpha=0.2, linewidth=0)
        ax.set_title(panel)
        ax.set_xlabel("pretraining epochs")
        ax.set_ylabel(f"val. accuracy ({protocol}), mean, 95% CI")
        ax.set_ylim(0.0, 1.0)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize="small")
    return figure


def curve_band(runs: Sequence[CellResult], protocol: str) -> Band | None:
    """Mean and 95% interval over ``runs`` (the seeds of one cell) at each epoch that any of them
    evaluated."""
    by_epoch: dict[int, list[float]] = {}
    for run in runs:
        for epoch, accuracy in run.curves.get(protocol, ()):
            by_epoch.setdefault(epoch, []).append(accuracy)
    if not by_epoch:
        return None
    epochs = sorted(by_epoch)
    intervals = [mean_interval(by_epoch[epoch]) for epoch in epochs]
    return (
        epochs,
        [i.estimate for i in intervals],
        [i.low for i in intervals],
        [i.high for i in intervals],
    )


def figure_by_method(
    cells: Sequence[CellResult],
    protocol: str,
    methods: Sequence[str] | None = None,
    backbones: Sequence[str] | None = None,
) -> Figure:
    """Figure 1: a panel per method, a curve per backbone."""
    figure = curve_grid(cells, protocol, "method", "backbone", methods, backbones)
    figure.suptitle("Accuracy vs pretraining, per method (curves: backbones)")
    return figure


def figure_by_backbone(
    cells: Sequence[CellResult],
    protocol: str,
    methods: Sequence[str] | None = None,
    backbones: Sequence[str] | None = None,
) -> Figure:
    """Figure 2: a panel per backbone, a curve per method."""
    figure = curve_grid(cells, protocol, "backbone", "method", backbones, methods)
    figure.suptitle("Accuracy vs pretraining, per backbone (curves: methods)")
    return figure


def save_figure(figure: Figure, path: Path) -> Path:
    """PNG at the figure's own size and dpi (no tight cropping, so the size is predictable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=figure.dpi)
    return path
