"""What the study's five encoders cost on this machine: `edgessl profile --all` as a benchmark.

Side by side in one run, at 96x96 (STL-10) with batch 1 and 32, at each of --threads (default 1
and all cores): thop vs torch.utils.flop_counter MACs, PyTorch eager vs channels_last vs ONNX
Runtime latency (ratio to eager, % of the CPU's assumed peak), and, when the methods are
importable, the measured SimCLR pretraining rate projected to 100 STL-10 epochs with its
modelled energy and CO2. Writes benchmarks/results/profile_backbones.md and .json.

Run: python benchmarks/profile_backbones.py [--repeats 30] [--method simclr]
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
from typing import Any

from results_io import write_results

from edgessl.backbones import STUDY_MACS_224
from edgessl.profiling.report import ProfileOptions, profile_backbones

NAME = "profile_backbones"


def _methods_available(method: str) -> bool:
    try:
        from edgessl.methods import method_class

        method_class(method)
    except (ImportError, KeyError):
        return False
    return importlib.util.find_spec(f"edgessl.methods.{method}") is not None


def _percent(fraction: float | None) -> str:
    return "" if fraction is None else f"{fraction:.1%}"


def _compute_lines(report: dict[str, Any]) -> list[str]:
    lines = [
        (
            f"Per image at {report['options']['image_size']}x{report['options']['image_size']}; "
            "MACs = multiply-accumulates, FLOPs = 2 x MACs."
        ),
        "",
        (
            "| backbone | params | MACs (thop) | FLOPs | conv/linear MACs thop | flop_counter MACs "
            "| cross-check |"
        ),
        "|---|---|---|---|---|---|---|",
    ]
    for entry in report["backbones"]:
        compute = entry["compute"]
        lines.append(
            f"| {entry['name']} | {entry['params']['total'] / 1e6:.3f}M | {compute['macs']:.4g} | "
            f"{compute['flops']:.4g} | "
            f"{compute['thop_matmul_conv_macs']:.4g} | {compute['flop_counter_macs']:.4g} | "
            f"{'agree' if compute['agrees'] else 'DISAGREE'} ({compute['relative_difference']:.1%}) |"
        )
    return lines


def _latency_lines(report: dict[str, Any]) -> list[str]:
    machine, options = report["machine"], report["options"]
    lines = [
        f"### {machine['threads']} thread(s) (torch and ONNX Runtime intra-op)",
        "",
        (
            f"Per call: median / p90 of {options['repeats']} interleaved calls after "
            f"{options['warmup']} warm-up calls."
        ),
        "",
        "| backbone | backend | batch | median ms | p90 ms | images/s | x eager | % of peak |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for entry in report["backbones"]:
        for row in entry["latency"]:
            lines.append(
                f"| {entry['name']} | {row['backend']} | {row['batch_size']} | {row['median_ms']:.2f} | "
                f"{row['p90_ms']:.2f} | "
                f"{row['images_per_second']:.0f} | {row['speedup_vs_eager']:.2f} | "
                f"{_percent(row['efficiency'])} |"
            )
    peak = machine["peak"]
    return lines + ["", f"Peak: {peak['peak_macs_per_second']:.3e} MAC/s from {peak['basis']}.", ""]


def _training_lines(reports: list[dict[str, Any]], method: str) -> list[str]:
    trained = [(report, entry) for report in reports for entry in report["backbones"] if entry["training"]]
    if not trained:
        return [f"Pretraining cost not measured: method '{method}' was not importable when this ran."]
    options = trained[0][0]["options"]
    lines = [
        (
            f"Pretraining ({method}, batch {options['train_batch_size']}, "
            f"{options['train_steps']} timed steps after "
            f"{options['train_warmup']} warm-up, {trained[0][0]['machine']['threads']} threads), "
            "projected to "
            f"{options['epochs']} STL-10 epochs of 100,000 images; energy modelled as in edgessl.energy:"
        ),
        "",
        "| backbone | images/s | per epoch (h) | total (h) | kWh | kgCO2eq | source |",
        "|---|---|---|---|---|---|---|",
    ]
    for _, entry in trained:
        cost, energy = entry["training"], entry["training"]["projected_energy"]
        lines.append(
            f"| {entry['name']} | {cost['images_per_second']:.1f} | {cost['seconds_per_epoch'] / 3600:.2f} | "
            f"{cost['projected_seconds'] / 3600:.1f} | {energy['energy_kwh']:.3f} | {energy['co2_kg']:.3f} | "
            f"{energy['source']} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", default=f"1,{os.cpu_count() or 1}", help="comma-separated thread counts")
    parser.add_argument("--method", default="simclr")
    args = parser.parse_args()
    method = args.method if _methods_available(args.method) else None
    thread_counts = sorted({int(value) for value in args.threads.split(",")})
    reports = []
    load_before = os.getloadavg()[0]
    for threads in thread_counts:
        options = ProfileOptions(
            image_size=96,
            batch_sizes=(1, 32),
            threads=threads,
            backends=("eager", "channels_last", "onnxruntime"),
            repeats=args.repeats,
            method=method if threads == thread_counts[-1] else None,  # training timed once, on all threads
        )
        reports.append(profile_backbones(sorted(STUDY_MACS_224), options))
    machine = reports[0]["machine"]
    load = f"1-min load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    lines = [
        "# Profile of the study's encoders",
        "",
        (
            "`benchmarks/profile_backbones.py` = `edgessl profile --all --image-size 96 --batch-sizes 1,32` "
            "at each thread count."
        ),
        "",
        *_compute_lines(reports[0]),
        "",
        "Study row (224x224, networks with their ImageNet classifier): "
        + ", ".join(f"{name} {macs:.3g}" for name, macs in STUDY_MACS_224.items())
        + "; tests/profiling/test_flops.py checks encoder + classifier MACs against it within 10%.",
        "",
        "## Latency",
        "",
        *[line for report in reports for line in _latency_lines(report)],
        "## Pretraining cost",
        "",
        *_training_lines(reports, args.method),
        "",
        (
            f"Machine: {machine['cpu_model']}, {machine['logical_cores']} cores "
            f"(shared with other jobs: timings are noisy; {load}), "
            f"torch {machine['torch_version']}, onnxruntime {machine['onnxruntime_version']}, "
            f"{reports[0]['created'][:10]}."
        ),
    ]
    markdown = write_results(NAME, {"load_average": load, "runs": reports}, lines)
    print("\n".join(lines))
    print(f"(written {datetime.datetime.now():%H:%M}) -> {markdown} / .json")


if __name__ == "__main__":
    main()
