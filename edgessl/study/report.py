"""``edgessl report STUDY``: one self-contained HTML page to read a study in.

The page holds Table 1 with its intervals, the best-method verdicts, every pairwise
comparison, the cost table, Figures 1-2, each cell's training curves over its seeds
(loss, online kNN and the collapse measures from ``metrics.jsonl``), the retrieval and
saliency pictures of every run ``edgessl explain`` has written, and the exact config and
library versions. Every picture is a PNG inlined as a ``data:`` URI and there is no
script, stylesheet or font from anywhere else, so the file opens offline, can be mailed,
and shows the same thing on every machine.

Everything is rendered from ``study.json`` and the run folders: a report can be written
at any time, also while other workers are still training.
"""

from __future__ import annotations

import base64
import html
import io
import platform
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from matplotlib.figure import Figure

from edgessl.files import atomic_output
from edgessl.study.compare import Comparison, all_pairs, read_units
from edgessl.study.config import StudyConfig, Unit, study_from_dict
from edgessl.study.figures import figure_by_backbone, figure_by_method
from edgessl.study.folder import RUNS_DIR
from edgessl.study.results import CellResult
from edgessl.study.table import StudyTable, build_table, format_value
from edgessl.training.run_log import METRICS_FILE, read_metrics

REPORT_FILE = "report.html"
CURVE_KEYS = ("loss", "knn_accuracy", "embedding_std", "effective_rank")
VERSIONED = ("edgessl", "torch", "torchvision", "timm", "numpy", "scipy", "matplotlib", "onnxruntime")
EXPLAIN_DIR = "explain"

STYLE = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 2rem auto; max-width: 1250px;
       color: #1d232a; line-height: 1.45; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #d5dae0; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.92rem; }
th, td { border: 1px solid #d5dae0; padding: 0.3rem 0.6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #eef1f4; } tr.best td { background: #f4f8ec; font-weight: 600; }
td.better { color: #1f6f2b; font-weight: 600; } td.worse { color: #a1261d; font-weight: 600; }
img { max-width: 100%; border: 1px solid #e3e6ea; margin: 0.4rem 0; }
.meta { color: #59636e; font-size: 0.9rem; } .grid { display: flex; flex-wrap: wrap; gap: 1rem; }
.grid figure { margin: 0; width: 600px; } figcaption { font-size: 0.85rem; color: #59636e; }
pre { background: #f5f7f9; padding: 0.8rem; overflow-x: auto; font-size: 0.85rem; }
"""


def write_report(study: str | Path, out: str | Path | None = None) -> Path:
    """Render ``STUDY/report.html`` (or ``out``) from the study's record and run folders."""
    root = Path(study)
    record, units = read_units(root)
    config = study_from_dict(dict(record["config"]))
    protocol = str(record["protocol"])
    page = render_page(root, config, protocol, units)
    path = Path(out) if out is not None else root / REPORT_FILE
    with atomic_output(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path


def render_page(root: Path, config: StudyConfig, protocol: str, units: Sequence[CellResult]) -> str:
    table = build_table(units, protocol, config.methods, config.backbones)
    comparisons = all_pairs(units, config.methods, protocol)
    seeds = sorted({cell.seed for cell in units})
    sections = [
        f"<h1>{_text(config.name)}: study report</h1>",
        (
            f"<p class='meta'>{len(units)} of {len(config.units())} runs finished "
            f"({len(config.cells())} cells x {len(config.seed_values())} seeds; seeds present: "
            f"{_text(', '.join(map(str, seeds)) or 'none')}); protocol {_text(protocol)}; rendered "
            f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC from {_text(str(root))}</p>"
        ),
        "<h2>Table 1: accuracy</h2>",
        (
            f"<p>{_text(table.title)}. The last column is each method's interquartile mean over every "
            "backbone "
            "and seed, with a bootstrap interval stratified by backbone. The best row names a method only "
            "where its interval lies above every other method's; otherwise the methods whose intervals "
            "overlap the leader's are tied.</p>"
        ),
        accuracy_table(table),
        diverged_list(units),
        "<h2>Paired comparisons</h2>",
        (
            "<p>Each pair of methods, paired by (backbone, seed): the mean difference of Table 1's number "
            "with its 95% stratified-bootstrap interval, and the probability of improvement P(A &gt; B) "
            "(Mann-Whitney, averaged over backbones). 'Within noise' when the difference's interval "
            "contains 0.</p>"
        ),
        comparison_table(comparisons),
        "<h2>Costs per backbone</h2>",
        cost_table(table),
        "<h2>Figures 1-2: accuracy against pretraining (mean over seeds, 95% band)</h2>",
        _image(figure_by_method(units, protocol, config.methods, config.backbones), "Figure 1"),
        _image(figure_by_backbone(units, protocol, config.methods, config.backbones), "Figure 2"),
        "<h2>Training curves per cell (one line per seed)</h2>",
        "<div class='grid'>",
        *training_curves(root, config),
        "</div>",
        *explain_section(root, config),
        "<h2>Config</h2>",
        f"<pre>{_text(_dump(config))}</pre>",
        "<h2>Versions</h2>",
        versions_table(),
    ]
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{_text(config.name)}: study report</title>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<style>{STYLE}</style></head><body>\n" + "\n".join(sections) + "\n</body></html>\n"
    )


def accuracy_table(table: StudyTable) -> str:
    body = [_row(row.label, row.formatted()) for row in table.rows_of("accuracy")]
    body += [_row(row.label, row.formatted(), "best") for row in table.rows_of("best")]
    body += [_row(row.label, row.formatted()) for row in table.rows_of("note")]
    return _table(["", *table.columns], body)


def diverged_list(units: Sequence[CellResult]) -> str:
    """Each diverged run and why: they are results (a seed the recipe does not survive), not gaps."""
    diverged = [unit for unit in units if unit.diverged is not None]
    if not diverged:
        return ""
    items = "".join(
        f"<li>{_text(Unit(u.method, u.backbone, u.seed).name)}: {_text(u.diverged)}</li>" for u in diverged
    )
    return f"<p>{len(diverged)} run(s) diverged and are left out of every number above:</p><ul>{items}</ul>"


def cost_table(table: StudyTable) -> str:
    columns = table.columns[:-1]  # the aggregate column holds accuracies only
    body = [
        _row(row.label, [format_value(v, row.fmt) for v in row.values[:-1]]) for row in table.rows_of("cost")
    ]
    return _table(["", *columns], body)


def comparison_table(comparisons: Sequence[Comparison]) -> str:
    if not comparisons:
        return "<p>Fewer than two methods have finished runs.</p>"
    body = []
    for c in comparisons:
        d, p = c.difference, c.probability
        tone = "better" if d.known and d.low > 0 else "worse" if d.known and d.high < 0 else ""
        cells = [
            _text(c.b),
            f"{d.estimate:+.3f}",
            d.bounds("+.3f"),
            f"{p.estimate:.2f}",
            p.bounds(".2f"),
            str(d.n),
        ]
        body.append(
            f"<tr><td>{_text(c.a)}</td>"
            + "".join(f"<td>{cell}</td>" for cell in cells)
            + f"<td class='{tone}'>{_text(c.verdict)}</td></tr>"
        )
    header = ["A", "B", "A - B", "95% CI", "P(A > B)", "95% CI", "pairs", "verdict"]
    return _table(header, body)


def training_curves(root: Path, config: StudyConfig) -> Iterable[str]:
    """A figure per cell: each key of :data:`CURVE_KEYS` its runs logged, a line per seed."""
    for method, backbone in config.cells():
        units = [Unit(method, backbone, seed) for seed in config.seed_values()]
        logs = {
            unit.seed: read_metrics(path)
            for unit in units
            if (path := root / RUNS_DIR / unit.name / METRICS_FILE).is_file()
        }
        keys = [key for key in CURVE_KEYS if any(r.get(key) is not None for rs in logs.values() for r in rs)]
        if not keys:
            continue
        figure = Figure(figsize=(6.0, 1.7 * len(keys)), dpi=100, layout="constrained")
        axes = figure.subplots(len(keys), 1, sharex=True, squeeze=False)[:, 0]
        for ax, key in zip(axes, keys, strict=True):
            for seed, records in logs.items():
                points = [(r["step"], r[key]) for r in records if r.get(key) is not None]
                if points:
                    steps, values = zip(*points, strict=True)
                    ax.plot(steps, values, linewidth=1.1, marker="o" if len(points) < 30 else None,
                            markersize=3, label=f"seed {seed}")  # fmt: skip
            ax.set_ylabel(key, fontsize="small")
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize="x-small", ncols=max(1, len(logs)))
        axes[-1].set_xlabel("optimiser step")
        figure.suptitle(f"{method} on {backbone}", fontsize="medium")
        yield f"<figure>{_image(figure, f'{method} on {backbone}')}</figure>"


def explain_section(root: Path, config: StudyConfig) -> list[str]:
    """Retrieval grids, saliency maps and confusion matrices of every run ``edgessl explain`` has drawn."""
    pictures = []
    for unit in config.units():
        for png in sorted((root / RUNS_DIR / unit.name / EXPLAIN_DIR).glob("*/*.png")):
            data = base64.b64encode(png.read_bytes()).decode("ascii")
            caption = f"{unit.name}: {png.parent.name}/{png.name}"
            pictures.append(
                f"<figure><img alt='{_text(caption)}' src='data:image/png;base64,{data}'>"
                f"<figcaption>{_text(caption)}</figcaption></figure>"
            )
    if not pictures:
        return [
            "<h2>Retrieval and saliency</h2>",
            (
                "<p>No run has pictures yet: <code>edgessl explain STUDY/runs/RUN --data ...</code> "
                "draws them, "
                "and the next report shows them.</p>"
            ),
        ]
    return ["<h2>Retrieval and saliency</h2>", "<div class='grid'>", *pictures, "</div>"]


def versions_table() -> str:
    rows = [_row("python", [platform.python_version()]), _row("platform", [platform.platform()])]
    for name in VERSIONED:
        try:
            rows.append(_row(name, [metadata.version(name)]))
        except metadata.PackageNotFoundError:
            rows.append(_row(name, ["not installed"]))
    return _table(["", "version"], rows)


def _dump(config: StudyConfig) -> str:
    from edgessl.study.config import dump_study

    return dump_study(config)


def _image(figure: Figure, alt: str) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=figure.dpi)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"<img alt='{_text(alt)}' src='data:image/png;base64,{data}'>"


def _row(label: str, values: Sequence[str], css: str = "") -> str:
    cls = f" class='{css}'" if css else ""
    return f"<tr{cls}><td>{_text(label)}</td>" + "".join(f"<td>{_text(v)}</td>" for v in values) + "</tr>"


def _table(header: Sequence[str], body: Sequence[str]) -> str:
    head = "".join(f"<th>{_text(h)}</th>" for h in header)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _text(value: str) -> str:
    return html.escape(value, quote=True)
