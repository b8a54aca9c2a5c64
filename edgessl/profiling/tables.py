"""``edgessl profile``'s report (:func:`edgessl.profiling.report.profile_backbones`) as rich tables:
size and compute, latency, pretraining cost, then a line per source of the figures.

Kept apart from the measuring so that the report stays one JSON-ready dict, rendered only
when a person, not a program, reads it.
"""

from __future__ import annotations

from typing import Any


def _cost_table(report: dict[str, Any]) -> Any:
    from rich.table import Table

    size = report["options"]["image_size"]
    table = Table(
        title=f"Size and compute per image at {size}x{size} (MACs = multiply-accumulates, FLOPs = 2 x MACs)"
    )
    table.add_column("backbone", no_wrap=True)
    for column in ("params", "trainable", "MACs (thop)", "FLOPs", "conv/linear MACs: thop", "flop_counter"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("cross-check")
    for entry in report["backbones"]:
        compute = entry["compute"]
        verdict = (
            f"ok ({compute['relative_difference']:.1%})"
            if compute["agrees"]
            else f"[bold red]DISAGREE {compute['relative_difference']:.1%}[/]"
        )
        table.add_row(
            entry["name"],
            f"{entry['params']['total'] / 1e6:.3f}M",
            f"{entry['params']['trainable'] / 1e6:.3f}M",
            f"{compute['macs']:.3e}",
            f"{compute['flops']:.3e}",
            f"{compute['thop_matmul_conv_macs']:.3e}",
            f"{compute['flop_counter_macs']:.3e}",
            verdict,
        )
    return table


def _latency_table(report: dict[str, Any]) -> Any:
    from rich.table import Table

    machine = report["machine"]
    table = Table(
        title=f"Inference latency per call on {machine['device_name']} ({machine['threads']} threads)"
    )
    table.add_column("backbone", no_wrap=True)
    table.add_column("backend", no_wrap=True)
    for column in ("batch", "median ms", "p90 ms", "images/s", "x eager", "% of peak"):
        table.add_column(column, justify="right", no_wrap=True)
    for entry in report["backbones"]:
        for row in entry["latency"]:
            table.add_row(
                entry["name"],
                row["backend"],
                str(row["batch_size"]),
                f"{row['median_ms']:.2f}",
                f"{row['p90_ms']:.2f}",
                f"{row['images_per_second']:.0f}",
                "" if row["speedup_vs_eager"] is None else f"{row['speedup_vs_eager']:.2f}",
                "" if row["efficiency"] is None else f"{row['efficiency']:.1%}",
            )
    return table


def _training_table(report: dict[str, Any]) -> Any:
    from rich.table import Table

    epochs = report["options"]["epochs"]
    table = Table(
        title="Pretraining cost (measured steps, projected to STL-10 epochs of 100,000 images; "
        f"{epochs} epochs)"
    )
    table.add_column("backbone", no_wrap=True)
    table.add_column("method", no_wrap=True)
    for column in ("batch", "images/s", "per epoch", f"{epochs} epochs", "kWh", "kgCO2eq", "energy source"):
        table.add_column(column, justify="right", no_wrap=True)
    for entry in report["backbones"]:
        cost = entry["training"]
        if cost is None:
            continue
        energy = cost["projected_energy"]
        table.add_row(
            entry["name"],
            cost["method"],
            str(cost["batch_size"]),
            f"{cost['images_per_second']:.1f}",
            _duration(cost["seconds_per_epoch"]),
            _duration(cost["projected_seconds"]),
            f"{energy['energy_kwh']:.3f}",
            f"{energy['co2_kg']:.3f}",
            energy["source"],
        )
    return table


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def _energy_basis(energy: dict[str, Any]) -> str:
    """One line saying where the energy figures come from."""
    gpu = ""
    if energy["source"] == "nvml":
        gpu = "GPU energy measured by NVML + "
    elif energy["gpu_tdp_w"]:
        gpu = f"GPU TDP {energy['gpu_tdp_w']:.0f} W + "
    return (
        f"Energy: {gpu}CPU TDP {energy['cpu_tdp_w']:.0f} W x {energy['cpu_fraction']:.0%} of its cores used, "
        f"x PUE {energy['pue']}, x grid {energy['grid_intensity_kg_per_kwh']} kgCO2eq/kWh (edgessl.energy)."
    )


def render_report(report: dict[str, Any], console: Any) -> None:
    """The report as rich tables and notes, for a person reading a terminal (``--json`` is for programs)."""
    console.print(_cost_table(report))
    for entry in report["backbones"]:
        if entry["weights"]:
            console.print(f"{entry['name']} with weights {entry['weights']}", soft_wrap=True)
    console.print(_latency_table(report))
    if any(entry["training"] for entry in report["backbones"]):
        console.print(_training_table(report))
        energy = next(
            entry["training"]["projected_energy"] for entry in report["backbones"] if entry["training"]
        )
        console.print(_energy_basis(energy), soft_wrap=True)
    peak = report["machine"]["peak"]
    peak_text = f"{peak['peak_macs_per_second']:.3e} MAC/s" if peak["peak_macs_per_second"] else "unknown"
    console.print(f"Peak: {peak_text} ({peak['basis']}).", soft_wrap=True)
    skipped = {
        backend: reason
        for entry in report["backbones"]
        for backend, reason in entry["latency_skipped"].items()
    }
    for backend, reason in skipped.items():
        console.print(f"Skipped {backend}: {reason}.", soft_wrap=True)
