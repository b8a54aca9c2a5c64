"""Training curves of a run folder as PNGs: ``edgessl plot RUN``, and at the end of every ``train``.

Read from ``RUN/metrics.jsonl`` alone, so a finished, killed or running run can be
plotted. ``RUN/plots/`` gets ``loss.png`` (loss and the method's diagnostics),
``lr.png`` and, when the run was monitored, ``monitor.png`` (online kNN accuracy,
embedding std and effective rank). The x axis is the optimiser step; a second axis on
top marks epochs, so curves of runs with different batch sizes line up by epoch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgessl.errors import EdgesslError
from edgessl.training.run_log import METRICS_FILE, read_metrics

PLOTS_DIR = "plots"
STEP_KEYS = ("step", "epoch", "loss", "lr", "images_per_s")
MONITOR_KEYS = ("knn_accuracy", "embedding_std", "effective_rank")


def plot_run(run_dir: str | Path) -> list[Path]:
    """Write the run's curves; returns the files written."""
    run = Path(run_dir)
    metrics = run / METRICS_FILE
    if not metrics.is_file():
        raise EdgesslError(f"{run} has no {METRICS_FILE}; plot a run folder written by 'edgessl train'")
    records = read_metrics(metrics)
    if not records:
        raise EdgesslError(f"{metrics} holds no records yet")
    import matplotlib

    matplotlib.use("Agg")
    out = run / PLOTS_DIR
    out.mkdir(parents=True, exist_ok=True)
    diagnostics = sorted({k for r in records for k in r} - set(STEP_KEYS) - set(MONITOR_KEYS))
    written = [
        _figure(records, ("loss", *diagnostics), out / "loss.png"),
        _figure(records, ("lr",), out / "lr.png"),
    ]
    if any("knn_accuracy" in r or "embedding_std" in r for r in records):
        written.append(_figure(records, MONITOR_KEYS, out / "monitor.png"))
    return written


def _figure(records: list[dict[str, Any]], keys: tuple[str, ...], path: Path) -> Path:
    import matplotlib.pyplot as plt

    present = [key for key in keys if any(r.get(key) is not None for r in records)]
    figure, axes = plt.subplots(len(present), 1, figsize=(7, 2.4 * len(present)), sharex=True, squeeze=False)
    for axis, key in zip(axes[:, 0], present, strict=True):
        points = [(r["step"], r[key]) for r in records if r.get(key) is not None]
        steps, values = zip(*points, strict=True)
        axis.plot(steps, values, marker="o" if len(points) < 30 else None, linewidth=1.2)
        axis.set_ylabel(key)
        axis.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("optimiser step")
    _epoch_axis(axes[0, 0], records)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _epoch_axis(axis: Any, records: list[dict[str, Any]]) -> None:
    """Epoch numbers on top, at the last step of each epoch."""
    ends: dict[int, int] = {}
    for record in records:
        ends[int(record["epoch"])] = int(record["step"])
    top = axis.secondary_xaxis("top")
    epochs = sorted(ends)
    stride = max(1, len(epochs) // 10)
    top.set_xticks([ends[e] for e in epochs[::stride]], labels=[str(e) for e in epochs[::stride]])
    top.set_xlabel("epoch")
