"""PyTorch eager vs ONNX Runtime fp32 vs int8, dynamic vs fixed batch, float vs uint8 camera input, \
per study backbone.

For every study backbone at 96x96 the same encoder is exported by ``edgessl.export``
(``export_representation`` with ``--int8 --fixed-batch 1 --input uint8-nhwc``: verified
fp32 ONNX, static int8 QDQ per-channel calibrated on 256 shapes10 train images, their
batch-1 fixed-shape copies, and camera-input copies taking uint8 NHWC frames of the
model's size, so their in-graph preprocessing is the Transpose / Cast / Div alone) and
timed: median over timed calls after warm-up calls, one intra-op thread everywhere
(``torch.set_num_threads(1)``; ORT ``intra_op_num_threads=1, inter_op_num_threads=1``),
input prepared outside the timing. kNN accuracy (k = 20, Euclidean majority vote,
shapes10 train -> test at 96x96) is measured on the features each backend produces.

The ONNX Runtime mobile usability report (NNAPI, CoreML; not a timing) of every
fixed-shape file is written to ``results/export_usability.md``; ``--usability-only``
writes just that, which is safe on a busy machine.

Encoders are random-init (seed 0) unless ``--runs DIR`` names a folder holding a run
per backbone (``DIR/<method>-<backbone>``, e.g. from ``edgessl train``): then each run's
last checkpoint is measured, so int8's accuracy cost is seen on trained features.

Run: python benchmarks/export_latency.py [--runs DIR]  (several minutes on 2 cores, alone on the machine)
     python benchmarks/export_latency.py --usability-only  (the accelerator report only)
     python benchmarks/export_latency.py --quick  (ShuffleNetV2 at 32x32, few repeats: checks the
     script; writes nothing)
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime
import torch
from results_io import machine, write_results

from edgessl.backbones import STUDY_MACS_224, build_backbone
from edgessl.checkpoints import load_representation
from edgessl.data.reading import read_split_arrays
from edgessl.evaluation.knn import knn_predict
from edgessl.export.options import ExportOptions
from edgessl.export.ort_eval import latency_ms, onnx_features, open_session
from edgessl.export.pipeline import export_representation
from edgessl.export.verify import torch_features
from edgessl.hardware import read_cpu_features
from edgessl.methods.base import Normalize, Representation
from edgessl.runs import list_checkpoints

K = 20
BATCHES = (1, 32)
THREADS = 1
DATA = "shapes10"
# file role -> table column; all at batch 1 (the fixed copies take exactly one image)
BATCH1_FILES = {
    "fp32": "ORT fp32",
    "fixed": "fp32 fixed",
    "fp32.uint8": "fp32 uint8",
    "int8": "ORT int8",
    "fixed.int8": "int8 fixed",
    "int8.uint8": "int8 uint8",
}
USABILITY_FILES = ("fixed", "fixed.int8", "fixed.uint8", "fixed.int8.uint8")


@dataclass(frozen=True)
class Setting:
    """What one run measures: the full benchmark, or --quick (tiny, to check the script works)."""

    size: int = 96
    backbones: tuple[str, ...] = tuple(STUDY_MACS_224)
    repeats: tuple[tuple[int, int], ...] = ((1, 30), (32, 8))
    warmup: tuple[tuple[int, int], ...] = ((1, 5), (32, 2))

    def timed(self, batch: int) -> tuple[int, int]:
        """(warm-up calls, timed calls) at ``batch``."""
        return dict(self.warmup)[batch], dict(self.repeats)[batch]


QUICK = Setting(size=32, backbones=("shufflenetv2",), repeats=((1, 5), (32, 2)), warmup=((1, 1), (32, 1)))


def eager_latency_ms(model: torch.nn.Module, batch: int, setting: Setting) -> float:
    """Median wall time of one eager forward under ``inference_mode`` (same protocol as ``latency_ms``)."""
    warmup, repeats = setting.timed(batch)
    images = torch.rand(batch, 3, setting.size, setting.size, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        for _ in range(warmup):
            model(images)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(images)
            times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000.0)


def knn_accuracy(bank: np.ndarray, train, queries: np.ndarray, test) -> float:
    predictions = knn_predict(
        torch.from_numpy(bank),
        torch.from_numpy(train.labels),
        torch.from_numpy(queries),
        len(train.class_names),
        k=K,
    )
    return float((predictions.numpy() == test.labels).mean())


def encoder_under_test(
    name: str, train, runs: Path | None, size: int
) -> tuple[torch.nn.Module, dict[str, object]]:
    """The trained representation of ``runs/<method>-<name>`` when there is one, else a random-init
    encoder."""
    trained = sorted(runs.glob(f"*-{name}")) if runs is not None else []
    if trained:
        loaded = load_representation(list_checkpoints(trained[0])[-1])
        return loaded.model, {
            **loaded.metadata,
            "weights": f"{loaded.metadata['method']}, {loaded.metadata['step']} steps",
        }
    torch.manual_seed(0)
    encoder = build_backbone(name)
    model = Representation(Normalize(train.mean, train.std), encoder, encoder.feature_dim).eval()
    return model, {
        "method": "random-init",
        "backbone": name,
        "image_size": size,
        "mean": train.mean,
        "std": train.std,
        "dataset": DATA,
        "weights": "random init",
    }


def export_all(name: str, train, workdir: Path, runs: Path | None, size: int):
    """The encoder and every file ``edgessl export --int8 --fixed-batch 1 --input uint8-nhwc`` writes,
    verified."""
    model, checkpoint_metadata = encoder_under_test(name, train, runs, size)
    options = ExportOptions(out_dir=workdir / name, int8=True, fixed_batch=1, input="uint8-nhwc", k=K)
    start = time.perf_counter()
    result = export_representation(model, checkpoint_metadata, options)
    return model, checkpoint_metadata, result, time.perf_counter() - start


def usability_rows(name: str, result) -> list[dict[str, object]]:
    """One row per fixed-shape file and provider: the ORT mobile usability checker's numbers (not a
    timing)."""
    rows = []
    for role in USABILITY_FILES:
        for provider in result.usability[role].providers:
            rows.append({"backbone": name, "file": role, **provider.as_dict()})
    return rows


def measure(name: str, train, test, workdir: Path, runs: Path | None, setting: Setting) -> dict[str, object]:
    model, checkpoint_metadata, result, seconds = export_all(name, train, workdir, runs, setting.size)
    row: dict[str, object] = {
        "backbone": name,
        "weights": checkpoint_metadata["weights"],
        "export_all_seconds": seconds,
        "parity": {role: parity.as_dict() for role, parity in result.parity.items()},
        "parity_fp32": result.parity["fp32"].as_dict(),
        "parity_int8": result.parity["int8"].as_dict(),
    }
    sessions = {role: open_session(result.files[role], threads=THREADS) for role in BATCH1_FILES}
    with torch.inference_mode():
        features = {"eager": (torch_features(model, train.images), torch_features(model, test.images))}
    for kind in ("fp32", "int8"):
        features[f"ort_{kind}"] = (
            onnx_features(sessions[kind], train.images),
            onnx_features(sessions[kind], test.images),
        )
    row["knn"] = {
        backend: knn_accuracy(bank, train, queries, test) for backend, (bank, queries) in features.items()
    }
    torch.set_num_threads(THREADS)
    latency = {}
    for batch in BATCHES:  # dynamic files and eager at batch 1 and 32
        warmup, repeats = setting.timed(batch)
        latency[f"eager@{batch}"] = eager_latency_ms(model, batch, setting)
        for kind in ("fp32", "int8"):
            latency[f"ort_{kind}@{batch}"] = latency_ms(
                sessions[kind], batch, setting.size, repeats=repeats, warmup=warmup
            )
    warmup, repeats = setting.timed(1)
    # batch 1, every file; two interleaved rounds, the lower median kept, so drift hits all alike
    for _round in range(2):
        for role in BATCH1_FILES:
            timed = latency_ms(sessions[role], 1, setting.size, repeats=repeats, warmup=warmup)
            latency[f"{role}@1"] = min(timed, latency.get(f"{role}@1", timed))
    row["latency_ms"] = latency
    row["size_mb"] = {role: result.files[role].stat().st_size / 1e6 for role in ("fp32", "int8")}
    row["usability"] = usability_rows(name, result)
    return row


def int8_facts() -> dict[str, object]:
    """What the int8 timings depend on: the CPU's VNNI dot-product instructions and ONNX Runtime's build."""
    cpu = read_cpu_features()
    flags = cpu.flags if cpu is not None else frozenset()
    return {
        "avx512_vnni": "avx512_vnni" in flags,
        "avx_vnni": "avx_vnni" in flags,
        "onnxruntime": onnxruntime.__version__,
        "threads": THREADS,
    }


def render(rows: list[dict], info: dict, setting: Setting) -> list[str]:
    size = setting.size
    (w1, r1), (w32, r32) = setting.timed(1), setting.timed(32)
    lines = [
        "# Export latency: PyTorch eager vs ONNX Runtime fp32 vs ONNX Runtime int8",
        "",
        (
            f"Machine: {info['cpu']}, {info['logical_cores']} logical cores "
            "(shared with other jobs: timings are noisy), "
            f"AVX512-VNNI {'yes' if info['avx512_vnni'] else 'no'}, "
            f"AVX-VNNI {'yes' if info['avx_vnni'] else 'no'}; "
            f"torch {info['torch']}, onnxruntime {info['onnxruntime']}; {info['threads']} thread; "
            f"{info['date']}."
        ),
        "",
        (
            f"Input {size}x{size}, median ms per batch over warmed-up calls (batch 1: {r1} timed after {w1}; "
            f"batch 32: {r32} after {w32}). Speed-ups are eager / backend (>1 = faster). "
            f"kNN: k={K}, Euclidean majority vote, {DATA} train ({info['train']}) -> test ({info['test']}) "
            f"at {size}x{size}, "
            "on the features each backend computes. The weights column says which encoder was measured: "
            "a short SimCLR run "
            "(from `--runs`) or random init."
        ),
        "",
        (
            "int8 = static QDQ, per-channel, activations u8 / weights s8 (U8S8), calibrated on 256 train "
            "images. An earlier run of this script with ORT's default S8S8 measured int8 no faster than "
            "fp32 on this CPU (resnet18 1.00x, squeezenet 0.14x at batch 1): ORT runs S8S8 QDQ on slow "
            "paths on x86, U8S8 on VNNI kernels."
        ),
        "",
        (
            "| backbone | weights | eager@1 | ORT fp32@1 | ORT int8@1 | eager@32 | ORT fp32@32 | ORT int8@32 "
            "| fp32/eager @1 | int8/fp32 @1 | int8/fp32 @32 | kNN eager | kNN fp32 | kNN int8 "
            "| MB fp32 / int8 | int8 cosine (mean) |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        t, acc = row["latency_ms"], row["knn"]
        lines.append(
            f"| {row['backbone']} | {row['weights']} | {t['eager@1']:.2f} | {t['ort_fp32@1']:.2f} "
            f"| {t['ort_int8@1']:.2f} | {t['eager@32']:.1f} | {t['ort_fp32@32']:.1f} "
            f"| {t['ort_int8@32']:.1f} "
            f"| {t['eager@1'] / t['ort_fp32@1']:.2f}x | {t['ort_fp32@1'] / t['ort_int8@1']:.2f}x "
            f"| {t['ort_fp32@32'] / t['ort_int8@32']:.2f}x "
            f"| {acc['eager']:.1%} | {acc['ort_fp32']:.1%} | {acc['ort_int8']:.1%} "
            f"| {row['size_mb']['fp32']:.1f} / {row['size_mb']['int8']:.1f} "
            f"| {row['parity_int8']['mean_cosine']:.4f} |"
        )
    lines += [
        "",
        "fp32 parity (ORT vs PyTorch, max relative error): "
        + ", ".join(f"{r['backbone']} {r['parity_fp32']['max_relative']:.1e}" for r in rows)
        + ".",
    ]
    lines += [
        "",
        "## Batch 1: dynamic vs fixed batch, float vs uint8 camera input (ONNX Runtime CPU)",
        "",
        (
            "Median ms of one call with one image, the lower of two interleaved rounds "
            f"({r1} timed calls after {w1} each). "
            "*fixed*: the same graph with its batch axis pinned to 1 (`--fixed-batch 1`, what NNAPI/CoreML "
            "need). "
            f"*uint8*: the camera-input copy (`--input uint8-nhwc`) fed uint8 NHWC {size}x{size} frames "
            "instead of float NCHW, "
            "its extra nodes the Transpose, Cast and Div by 255; the ratio is its added cost "
            "(target: at most +5%)."
        ),
        "",
        "| backbone | "
        + " | ".join(BATCH1_FILES.values())
        + " | fixed/dynamic fp32 | uint8/float fp32 | fixed/dynamic int8 | uint8/float int8 |",
        "|---|" + "---|" * (len(BATCH1_FILES) + 4),
    ]
    for row in rows:
        t = row["latency_ms"]
        ratios = [
            t["fixed@1"] / t["fp32@1"],
            t["fp32.uint8@1"] / t["fp32@1"],
            t["fixed.int8@1"] / t["int8@1"],
            t["int8.uint8@1"] / t["int8@1"],
        ]
        lines.append(
            f"| {row['backbone']} | "
            + " | ".join(f"{t[f'{role}@1']:.2f}" for role in BATCH1_FILES)
            + " | "
            + " | ".join(f"{ratio:.3f}" for ratio in ratios)
            + " |"
        )
    return lines


def render_usability(rows: list[dict], info: dict, size: int) -> list[str]:
    """The accelerator report of the fixed-shape files, one row per file and provider."""
    lines = [
        "# ONNX Runtime mobile usability of the fixed-shape exports (NNAPI, CoreML)",
        "",
        (
            f"onnxruntime {info['onnxruntime']} `onnxruntime.tools.mobile_helpers.usability_checker` (what "
            "`python -m onnxruntime.tools.check_onnx_model_mobile_usability` prints), called in process by "
            f"`edgessl.export.usability` on every study encoder exported at {size}x{size} with "
            "`edgessl export --int8 --fixed-batch 1 --input uint8-nhwc` "
            "(random-init weights: coverage depends on the graph, "
            f"not the weights); {info['date']}. The dynamic-batch files are refused by all three "
            "(every node has a dynamic "
            "input shape). XNNPACK is not covered by the checker. Not a timing."
        ),
        "",
        "| backbone | file | provider | nodes | share | partitions | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['backbone']} | {row['file']} | {row['provider']} | "
            f"{row['supported_nodes']}/{row['nodes']} | "
            f"{row['node_share']:.1%} | {row['partitions']} | {row['verdict'].split(';')[0].split(',')[0]} |"
        )
    low = [row for row in rows if row["node_share"] < 0.95]
    blocked = sorted({op for row in low for op in row["unsupported_ops"]})
    cases = sorted({f"{row['backbone']} {row['file']} on {row['provider']}" for row in low})
    lines += ["", f"Below 95% of nodes: {', '.join(cases) or 'none'}."]
    if blocked:
        lines.append(
            f"Operators that block them: {', '.join(blocked)} "
            "(see docs/MOBILE.md for why and what would fix it)."
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs",
        type=Path,
        help="folder of runs named <method>-<backbone>; their last checkpoints are measured",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick",
        action="store_true",
        help="ShuffleNetV2 at 32x32 with few repeats, printed only: checks that the script works",
    )
    mode.add_argument(
        "--usability-only",
        action="store_true",
        help="only the accelerator report of the fixed-shape files (no timing)",
    )
    args = parser.parse_args()
    setting = QUICK if args.quick else Setting()
    train = read_split_arrays(DATA, "train", image_size=setting.size)
    test = read_split_arrays(DATA, "test", image_size=setting.size)
    info = machine(**int8_facts(), train=len(train), test=len(test))
    rows, usability = [], []
    with tempfile.TemporaryDirectory(prefix="edgessl-export-bench-") as workdir:
        for name in setting.backbones:
            if args.usability_only:
                usability += usability_rows(
                    name, export_all(name, train, Path(workdir), args.runs, setting.size)[2]
                )
                print(name, "usability done", flush=True)
                continue
            rows.append(measure(name, train, test, Path(workdir), args.runs, setting))
            usability += rows[-1]["usability"]
            print(json.dumps(rows[-1]["latency_ms"]), rows[-1]["knn"], flush=True)
    usability_report = render_usability(usability, info, setting.size)
    report = [] if args.usability_only else render(rows, info, setting)
    if not args.quick:
        write_results("export_usability", {"machine": info, "rows": usability}, usability_report)
        if report:
            write_results("export_latency", {"machine": info, "rows": rows}, report)
    print("\n".join([*report, "", *usability_report]))


if __name__ == "__main__":
    main()
