"""Markdown of a ``gpu_suite`` JSON document: one table per section, then what was skipped or not
reached, and why.

A pure function of the document, so a results file re-renders without a GPU:
``python benchmarks/gpu_suite_report.py FILE.json > FILE.md``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

Column = tuple[str, str, str]  # header, key of the row, format spec ("" = as text)
Record = dict[str, Any]


def cell(value: Any, spec: str) -> str:
    if value is None:
        return "-"
    if spec and isinstance(value, (int, float)) and not isinstance(value, bool):
        return format(value, spec)
    return str(value)


def table(columns: tuple[Column, ...], rows: list[Record]) -> list[str]:
    lines = ["| " + " | ".join(header for header, _, _ in columns) + " |", "|" + "---|" * len(columns)]
    return lines + [
        "| " + " | ".join(cell(row.get(key), spec) for _, key, spec in columns) + " |" for row in rows
    ]


def notes(record: Record) -> list[str]:
    """Skipped parts with their reasons, cells the slice did not reach, and failures."""
    lines = [f"- skipped {name}: {reason}" for name, reason in record.get("skipped", {}).items()]
    if record.get("not_reached"):
        lines.append(f"- not reached in the time slice: {', '.join(record['not_reached'])}")
    lines += [f"- failed {error['cell']}: {error['error']}" for error in record.get("errors", [])]
    return ["", *lines] if lines else []


ENVIRONMENT = (
    "date", "device_name", "compute_capability", "device_memory_gib", "bf16", "torch", "cuda_runtime",
    "cudnn", "tf32_matmul", "tf32_cudnn", "torchvision", "accelerate", "onnxruntime", "onnxruntime_providers",
    "triton", "edgessl", "git_commit", "python", "cpu", "logical_cores", "torch_threads", "load_average_1min",
)  # fmt: skip


def environment(record: Record) -> list[str]:
    rows = [{"key": key, "value": record[key]} for key in ENVIRONMENT if key in record]
    smi = record.get("nvidia_smi") or f"(not recorded: {record.get('nvidia_smi_error')})"
    return [
        *table((("", "key", ""), ("value", "value", ".4g")), rows),
        "",
        "nvidia-smi:",
        "",
        "```",
        smi,
        "```",
    ]


THROUGHPUT = (
    ("variant", "variant", ""), ("method", "method", ""), ("backbone", "backbone", ""),
    ("(a) end to end img/s", "end_to_end", ",.1f"), ("(b) model-only img/s", "model_only", ",.1f"),
    ("(c) torchvision img/s", "torchvision", ",.1f"), ("(a)/(b)", "a_over_b", ".2f"),
    ("(a)/(c)", "a_over_c", ".2f"), ("predicted (a)/(b)", "predicted_a_over_b", ".2f"),
    ("views img/s", "views_only", ",.0f"), ("dataset on", "dataset_on", ""),
    ("first step s", "first_step_max_s", ".1f"),
)  # fmt: skip


def throughput(record: Record) -> list[str]:
    if "rows" not in record:
        return []
    intro = (
        f"{record['image_size']}x{record['image_size']} CIFAR-10 subset (train split), "
        f"batch {record['batch']}, median of "
        f"{record['rounds']} interleaved steps after {record['warmup']} warm-up(s); "
        f"(c) uses {record['workers']} DataLoader "
        f"worker(s). Targets on a GPU: (a)/(b) >= {record['targets']['a_over_b']}, "
        f"(a)/(c) >= {record['targets']['a_over_c']}. "
        "'predicted' is the (a)/(b) the view making alone would leave; 'first step' is the slowest "
        "pipeline's first call (compilation, cuDNN autotuning)."
    )
    return [intro, "", *table(THROUGHPUT, record["rows"]), *notes(record)]


LEARNING = (
    ("epochs done", "epochs_done", ""), ("of", "epochs_planned", ""), ("steps", "steps", ""),
    ("s per epoch", "seconds_per_epoch", ".2f"), ("images/s", "images_per_second", ",.0f"),
    ("final loss", "final_loss", ".3f"), ("kNN random init", "knn_random_init", ".3f"),
    ("kNN trained", "knn_trained", ".3f"),
)  # fmt: skip


def learning(record: Record) -> list[str]:
    if "method" not in record:
        return []
    intro = (
        f"SimCLR on ResNet-18 at {record['image_size']}x{record['image_size']}, "
        f"{record['train_images']} train images, "
        f"batch {record['batch']}, {record['precision']}, "
        f"short-run settings {json.dumps(record['overrides'])}. "
        f"kNN: k={record['k']}, Euclidean, the train split as the bank, "
        f"{record['test_images']} test images as queries. "
        "Time per epoch includes the trainer's checkpoint writes."
    )
    return [intro, "", *table(LEARNING, [record])]


TOTALS = (
    ("precision", "precision", ""), ("cells measured", "cells_measured", ""), ("of", "cells", ""),
    ("grid hours here", "grid_hours", ",.2f"),
    ("x faster than the study's 250 P100-h", "speedup_vs_study", ".1f"),
    ("goal (H100-h)", "goal_h100_hours", ".0f"), ("meets the goal", "meets_goal", ""),
)  # fmt: skip
CELLS = (
    ("precision", "precision", ""), ("method", "method", ""), ("backbone", "backbone", ""),
    ("batch", "batch", ""), ("images/s", "images_per_second", ",.1f"),
    ("h per cell", "projected_hours", ".3f"), ("kWh per cell", "projected_kwh", ".3f"),
    ("energy", "energy_source", ""),
)  # fmt: skip


def projection(record: Record) -> list[str]:
    if "study" not in record:
        return []
    intro = (
        f"Each cell of {record['study']} timed over {record['steps']} real steps after "
        f"{record['warmup']} warm-up(s) at "
        f"{record['image_size']}x{record['image_size']} (edgessl.profiling.training_cost, "
        "as `edgessl profile`), projected to "
        f"{record['epochs']} epochs of {record['epoch_images']:,} images. "
        "Pretraining only: the study's 250 P100-hours "
        "also held its evaluations."
    )
    totals = [{"precision": precision, **values} for precision, values in record["totals"].items()]
    return [intro, "", *table(TOTALS, totals), "", *table(CELLS, record["rows"]), *notes(record)]


LATENCY = (
    ("backbone", "backbone", ""), ("backend", "backend", ""), ("batch", "batch_size", ""),
    ("median ms", "median_ms", ".3f"), ("p90 ms", "p90_ms", ".3f"), ("images/s", "images_per_second", ",.0f"),
    ("x eager", "speedup_vs_eager", ".2f"),
)  # fmt: skip


def inference(record: Record) -> list[str]:
    if "latency" not in record:
        return []
    intro = (
        f"Encoders at {record['image_size']}x{record['image_size']}, median ms per call over "
        f"{record['repeats']} calls after "
        f"{record['warmup']} warm-up(s), backends interleaved (edgessl.profiling.latency)."
    )
    lines = [intro, "", *table(LATENCY, record["latency"]), *notes(record)]
    energy = record.get("energy")
    if energy is None:
        return lines
    if "error" in energy:
        return [*lines, "", f"Energy per training image: not measured ({energy['error']})."]
    source = (
        "measured by NVML"
        if energy["source"] == "nvml"
        else "modelled from TDPs: NVML did not measure this device"
    )
    gpu = (
        f", {energy['gpu_joules_per_image']:.4f} J of it the GPU's at {energy['gpu_watts']:.0f} W"
        if energy["gpu_watts"]
        else ""
    )
    return [*lines, "", (
        f"Energy per training image (SimCLR, ResNet-18, {energy['image_size']}px, batch {energy['batch']}, "
        f"{energy['precision']}, "
        f"{energy['steps']} steps over {energy['span_s']:.1f} s): {energy['joules_per_image']:.4f} J{gpu} "
        f"({source})."
    )]  # fmt: skip


SECTIONS: dict[str, tuple[str, Callable[[Record], list[str]]]] = {
    "environment": ("0. Environment", environment),
    "throughput": ("1. Throughput: trainer end to end vs model-only vs torchvision", throughput),
    "learning": ("2. Learning: SimCLR on ResNet-18, CIFAR-10 subset", learning),
    "projection": ("3. Projection: the 5x5 study on this device", projection),
    "inference": ("4. Inference latency and training energy", inference),
}


def status(record: Record) -> str:
    spent = f", {record['seconds']:.0f} s of a {record['slice_s']:.0f} s slice" if "seconds" in record else ""
    return f"Status: {record.get('status', 'pending')}{spent}."


def markdown(document: Record) -> str:
    env = document["sections"]["environment"]
    elapsed = document.get("elapsed_s")
    ran = f"ran {elapsed:.0f} s" if elapsed is not None else "still running"
    command = "python benchmarks/gpu_suite.py" + (" --smoke" if document["mode"] == "smoke" else "")
    lines = [
        f"# edgessl GPU suite on {env.get('device_name', '?')} ({document['mode']} run)",
        "",
        (
            f"`{command}`: global deadline {document['deadline_s']:.0f} s, {ran}; "
            f"torch {env.get('torch', '?')} (CUDA {env.get('cuda_runtime')} build), {env.get('date', '')}."
        ),
    ]
    for name, record in document["sections"].items():
        title, render = SECTIONS[name]
        lines += ["", f"## {title}", "", status(record), "", *render(record)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown(json.loads(Path(sys.argv[1]).read_text())))
