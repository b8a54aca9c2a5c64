"""One prepared GPU check: edgessl's accelerator paths measured by one command, ended by design \
within 8 minutes.

A GPU is lent only now and then and for minutes, so the measurement is written, and
kept working by a CPU smoke run in the tests, before a machine is there. On the GPU machine:

    python benchmarks/gpu_suite.py --out DIR          # about 7.5 minutes at most

and on any CPU, in seconds (tests/benchmarks/test_gpu_suite.py runs it):

    python benchmarks/gpu_suite.py --smoke --out DIR

It writes ``DIR/gpu_suite_<device>.md`` (tables) and ``.json`` (every number, the
environment, what was skipped and why), rewritten atomically after every measurement,
so a run stopped at any point leaves everything it had measured.

What it measures, each section in its own time slice (``GPU_SLICES``, seconds in brackets):

0. **environment** [20]: ``nvidia-smi`` (its text and a CSV query), torch / CUDA / cuDNN /
   onnxruntime / accelerate versions, the TF32 flags, bf16 support, the git commit.
1. **throughput** [240, shared by the variants that can run; what one leaves goes to the next]
   (``benchmarks/train_throughput.py``'s three pipelines, imported from it):
   for SimCLR, MoCo v2, BYOL (two views), DINO (multi-crop: 2 global + 8 local views) and SEED
   (one view; a random-weights ResNet-18 teacher, as ``train_throughput.method_overrides``
   writes) on ResNet-18 and ShuffleNetV2 at 96x96, batch 256, images/s of (a) the trainer's
   own step end to end (uint8 dataset on the device, views made there), (b) the model-only
   ceiling (views made beforehand) and (c) torchvision transforms of each view in 8
   DataLoader workers, with (a)/(b) and (a)/(c) (targets on a GPU: >= 0.9 and >= 3), under
   fp32, bf16, bf16 + channels_last and bf16 + ``torch.compile`` of every encoder. A
   precision the device cannot run is skipped and the reason written; so is every cell a
   variant's share of the slice did not reach. The smoke run measures fp32 only.
2. **learning** [60]: SimCLR on ResNet-18 at CIFAR's 32x32 over the carried CIFAR-10 subset
   (its train split) for a fixed number of epochs through ``edgessl.training.train``, then
   kNN accuracy (k = 20, bank = train, queries = test) of the trained encoder and of the
   same encoder at random init, and the time per epoch (checkpoint writes included).
3. **projection** [80]: every cell of the study's 5 x 5 grid (``study-stl10``: 100 epochs of
   100,000 STL-10 images at 96x96, each method's paper batch) timed by
   ``edgessl.profiling.training_cost`` (what ``edgessl profile --device cuda`` does: a real
   step on on-device images, data loading excluded), bf16 then fp32, summed to grid hours and
   set against the study's 250 P100-hours and this project's goal of 12 H100-hours.
   Pretraining only: the study's 250 hours also held its evaluations.
4. **inference** [40]: eager vs channels_last vs ONNX Runtime's CUDA provider (when onnxruntime
   has it; the reason when not) at batch 1 and 32, and the energy per training image of
   SimCLR on ResNet-18 over a span of several seconds (NVML's counter when it answers,
   else edgessl's stated TDP model, and the output says which).

Bounded by design (``benchmarks/timebox.py``): a global deadline (``--deadline``, 450 s) and
per-section slices that sum below it. A section that overruns its slice is cut wherever it is
and records "stopped at its time slice" with the rows it has; the next section starts. Within
a section, a cell is not started when the time left is shorter than the last one took.
Failures of one cell (an unsupported kernel, out of memory) are recorded with their message
and the run goes on. Everything the sections would import on first use is imported before the
first window opens, so a timer never fires inside an import (that would leave a half-initialised
module behind).

How to prepare and run it on a lent GPU machine (the CIFAR-10 subset, the wheels its image
lacks, what to carry): ``docs/GPU_RUNBOOK.md``. A missing module stops the run at once with
its name.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import gc
import importlib.util
import json
import math
import platform
import re
import shutil
import subprocess
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from cifar_subset import DEFAULT_DEST, is_complete
from gpu_suite_report import markdown
from results_io import device_name, machine
from rich.console import Console
from timebox import Budget, paced, run_timeboxed
from train_throughput import build_trainer, measure, method_overrides, pipelines, ratios

import edgessl
from edgessl.backbones import build_backbone
from edgessl.backbones.base import Encoder
from edgessl.data import load_dataset
from edgessl.energy import EnergyMeter
from edgessl.errors import EdgesslError
from edgessl.evaluation import evaluate_representation
from edgessl.files import atomic_output
from edgessl.hardware import cpu_model, gpu_spec
from edgessl.methods import Method, build_method, method_class
from edgessl.profiling.latency import measure_latency
from edgessl.profiling.training_cost import STL10_PRETEXT_IMAGES, TrainingCost, measure_training_throughput
from edgessl.registry import Registry
from edgessl.study.presets import study_quick, study_stl10
from edgessl.training import load_representation
from edgessl.training.config import TrainConfig
from edgessl.training.resolve import resolve_run
from edgessl.training.rng import seed_everything
from edgessl.training.trainer import train

REPO = Path(__file__).resolve().parents[1]
NAME = "gpu_suite"
SCHEMA_VERSION = 1
STUDY_P100_HOURS = 250.0  # the reference study's reported cost of its 5 x 5 grid
GOAL_H100_HOURS = 12.0  # this project's goal for the same grid
TARGETS = {"a_over_b": 0.9, "a_over_c": 3.0}  # the end-to-end trainer on a GPU
KNN_K = 20
# The short-run SimCLR setting tests/training/test_learning_signal.py measured learning with on
# CIFAR-10 in a few hundred steps: colour strength 0.5 (SimCLR's CIFAR-10 setting, appendix B.9),
# SGD instead of LARS (whose 10 warm-up epochs would span the whole run).
SGD = {
    "name": "sgd",
    "lr": 0.2,
    "reference_batch_size": 256,
    "momentum": 0.9,
    "warmup_epochs": 0,
    "weight_decay": 0.0,
}
LEARN_OVERRIDES: dict[str, Any] = {"temperature": 0.2, "colour_strength": 0.5, "optimizer": SGD}
Record = dict[str, Any]


# --------------------------------------------------------------------------- sizes


@dataclass(frozen=True)
class Sizes:
    """Everything the run's length depends on; ``GPU`` is the real check, ``SMOKE`` the CPU one."""

    mode: str
    deadline_s: float
    slices: dict[str, float]  # per section, summing below the deadline
    image_size: int = 96
    batch: int = 256
    warmup: int = 2
    rounds: int = 8
    workers: int = 8  # DataLoader workers of pipeline (c), what SSL repositories commonly use
    methods: tuple[str, ...] = ("simclr", "mocov2", "byol", "dino", "seed")
    backbones: tuple[str, ...] = ("resnet18", "shufflenetv2")
    learn_image_size: int = 32
    learn_batch: int = 256
    learn_epochs: int = 20
    projection_grid: tuple[tuple[str, str], ...] = tuple(study_stl10().cells())
    projection_image_size: int = 96  # the study's
    projection_batch: int | None = None  # None: each method's paper batch, as the study trains
    projection_steps: int = 4
    projection_precisions: tuple[str, ...] = ("bf16", "fp32")  # a complete bf16 grid first
    latency_backbones: tuple[str, ...] = ("resnet18", "shufflenetv2")
    latency_batches: tuple[int, ...] = (1, 32)
    latency_warmup: int = 10
    latency_repeats: int = 50
    energy_seconds: float = 5.0  # NVML's counter needs a span well above its update period


GPU_SLICES = {
    "environment": 20.0,
    "throughput": 240.0,
    "learning": 60.0,
    "projection": 80.0,
    "inference": 40.0,
}
GPU = Sizes(mode="gpu", deadline_s=450.0, slices=GPU_SLICES)
SMOKE = Sizes(
    mode="smoke", deadline_s=240.0, slices=dict.fromkeys(GPU_SLICES, 40.0), image_size=32, batch=16, warmup=1,
    rounds=2, workers=1, methods=("simclr", "byol", "seed"), backbones=("shufflenetv2",), learn_batch=32,
    learn_epochs=1, projection_grid=tuple(study_quick().cells()), projection_image_size=32,
    projection_batch=8, projection_steps=1, projection_precisions=("fp32",),
    latency_backbones=("shufflenetv2",), latency_warmup=1, latency_repeats=3, energy_seconds=0.0,
)  # fmt: skip


# --------------------------------------------------------------------------- shared state


@dataclass
class Context:
    """What every section reads and writes: sizes, device, data, scratch space, the clock, the document."""

    sizes: Sizes
    device: torch.device
    data: Path
    workdir: Path
    budget: Budget
    document: Record
    out: Path
    stem: str

    def save(self) -> None:
        """Rewrite the JSON, then the markdown (each atomically: a reader never sees half a file).

        A rendering failure must not cost a GPU run its numbers: the markdown then says so,
        and ``gpu_suite_report.py`` renders the JSON again once the renderer is fixed.
        """
        with atomic_output(self.out / f"{self.stem}.json") as tmp:
            tmp.write_text(json.dumps(self.document, indent=2, default=str) + "\n")
        try:
            text = markdown(self.document)
        except Exception as exc:  # noqa: BLE001 -- see the docstring
            text = f"# {NAME}: rendering failed ({one_line(exc)}); the numbers are in {self.stem}.json\n"
        with atomic_output(self.out / f"{self.stem}.md") as tmp:
            tmp.write_text(text)

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def free_memory(self) -> None:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def bf16(self) -> str | None:
        """Why bf16 cannot run here, or None when it can."""
        if self.sizes.mode == "smoke":
            return "the CPU smoke run measures fp32 only"
        if self.device.type != "cuda" or not torch.cuda.is_bf16_supported():
            return f"{self.document['sections']['environment'].get('device_name')} has no bf16"
        return None

    def autocast(self, precision: str) -> Any:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def fresh_accelerate_state() -> None:
    """Forget accelerate's process-wide state before the next Trainer.

    accelerate keeps one mixed-precision setting per process and refuses an Accelerator
    with another, while this suite builds trainers under fp32 and bf16 in one process.
    The reset is accelerate's own (its test cases call it between tests).
    """
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()


# What the sections import on first use (DataLoader workers, the trainer, readers, kNN, energy, latency).
PRELOAD = (
    "multiprocessing.queues", "accelerate.state", "accelerate.utils", "numpy.ma", "onnxruntime", "PIL.Image",
    "torchvision", "edgessl.data.image_folder", "edgessl.export.metadata", "edgessl.energy",
)  # fmt: skip


def preload(device: torch.device) -> None:
    """Import, before any time window opens, what the sections would import on first use.

    An ``OutOfTime`` (``timebox``) landing inside an import leaves a half-initialised module behind,
    and its re-import can fail later (edgessl's registries refuse a second registration),
    so the imports happen here, outside the timers.
    """
    from edgessl.backbones import backbone_names
    from edgessl.data import dataset_names
    from edgessl.methods import method_names

    optional = ["pynvml"]
    if importlib.util.find_spec("torch.utils.serialization") is not None:  # torch.save's, on first use
        optional.append("torch.utils.serialization")
    if "CUDAExecutionProvider" in importlib.import_module("onnxruntime").get_available_providers():
        optional.append("edgessl.export.onnx_export")
    if device.type == "cuda":
        optional += ["torch._dynamo", "torch._inductor.compile_fx"]
    for name in (*PRELOAD, *optional):
        if importlib.util.find_spec(name.split(".")[0]) is not None:
            importlib.import_module(name)
    try:
        backbone_names(), dataset_names(), method_names()  # each imports and registers its modules
    except ModuleNotFoundError as exc:
        raise SystemExit(
            f"error: edgessl needs {exc.name}, which is not installed here (see docs/GPU_RUNBOOK.md)"
        )


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:400]


# --------------------------------------------------------------------------- 0. environment


def run_command(command: list[str]) -> tuple[str | None, str | None]:
    """(stdout, None), or (None, why it could not run)."""
    if shutil.which(command[0]) is None:
        return None, f"{command[0]} not found on PATH"
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=15, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, one_line(exc)
    if done.returncode != 0:
        return None, f"exit {done.returncode}: {(done.stderr or done.stdout).strip()[:300]}"
    return done.stdout.strip(), None


def environment(ctx: Context, record: Record) -> None:
    import accelerate
    import onnxruntime
    import torchvision

    cuda = ctx.device.type == "cuda"
    smi, smi_error = run_command(["nvidia-smi"])
    fields = "name,driver_version,memory.total,power.limit,clocks.max.sm,clocks.max.mem"
    record.update(
        machine(),
        device=str(ctx.device),
        device_name=torch.cuda.get_device_name(ctx.device) if cuda else cpu_model(),
        compute_capability=".".join(map(str, torch.cuda.get_device_capability(ctx.device))) if cuda else None,
        device_memory_gib=torch.cuda.get_device_properties(ctx.device).total_memory / 2**30 if cuda else None,
        cuda_available=torch.cuda.is_available(),
        cuda_runtime=torch.version.cuda,
        cudnn=torch.backends.cudnn.version() if cuda else None,
        tf32_matmul=torch.backends.cuda.matmul.allow_tf32,
        tf32_cudnn=torch.backends.cudnn.allow_tf32,
        torchvision=torchvision.__version__,
        accelerate=accelerate.__version__,
        onnxruntime=onnxruntime.__version__,
        onnxruntime_providers=onnxruntime.get_available_providers(),
        triton=importlib.util.find_spec("triton") is not None,
        edgessl=edgessl.__version__,
        git_commit=run_command(["git", "-C", str(REPO), "rev-parse", "HEAD"])[0],
        python=platform.python_version(),
        platform=platform.platform(),
        nvidia_smi=smi,
        nvidia_smi_error=smi_error,
        nvidia_smi_query=run_command(["nvidia-smi", f"--query-gpu={fields}", "--format=csv"])[0],
    )
    record["bf16"] = ctx.bf16() or "yes"


# --------------------------------------------------------------------------- 1. throughput


@dataclass(frozen=True)
class Variant:
    """One way to run the same training step: a precision, optionally channels_last or compiled encoders."""

    name: str
    precision: str  # TrainConfig.precision
    channels_last: bool = False
    compile: bool = False

    def unavailable(self, ctx: Context) -> str | None:
        """Why this variant cannot run here, or None."""
        if self.precision == "bf16" and (reason := ctx.bf16()) is not None:
            return reason
        if self.compile and importlib.util.find_spec("triton") is None:
            return "torch.compile on a GPU needs triton, which is not installed"
        return None

    def apply(self, method: Method) -> None:
        """Convert the trainer's model in place (its parameters stay the optimiser's objects)."""
        if self.channels_last:
            method.to(memory_format=torch.channels_last)
        if self.compile:
            for module in method.modules():
                if isinstance(module, Encoder):  # the networks; the augmentation stays eager
                    module.compile()


VARIANTS: Registry[Variant] = Registry("variant")
for _variant in (
    Variant("fp32", "no"),
    Variant("bf16", "bf16"),
    Variant("bf16+channels_last", "bf16", channels_last=True),
    Variant("bf16+compile", "bf16", compile=True),
):
    VARIANTS.register(_variant.name)(_variant)


def throughput_cell(ctx: Context, variant: Variant, method: str, backbone: str) -> Record:
    """(a), (b), (c) and view making of one (variant, method, backbone), by train_throughput's pipelines."""
    sizes = ctx.sizes
    fresh_accelerate_state()
    out = ctx.workdir / "throughput" / f"{variant.name}-{method}-{backbone}"
    config = TrainConfig(
        method=method, backbone=backbone, data=str(ctx.data), split="train", image_size=sizes.image_size,
        epochs=1, batch_size=sizes.batch, precision=variant.precision, out=str(out), monitor_every=0,
        plots=False, method_overrides=method_overrides(method, ctx.workdir),
    )  # fmt: skip
    trainer = build_trainer(config)
    variant.apply(trainer.method)
    steps = pipelines(trainer, sizes.workers)
    first_step_s = {}
    try:
        for name, step in steps.items():  # compilation and cuDNN autotuning happen in these calls
            start = time.perf_counter()
            step()
            ctx.synchronize()
            first_step_s[name] = time.perf_counter() - start
        speeds = measure(steps, sizes.rounds, sizes.batch, max(sizes.warmup - 1, 0), ctx.synchronize)
    finally:
        if variant.compile:
            # Each cell compiles afresh: cached graphs hold the old model, and past dynamo's
            # recompile limit a later cell would silently run eager.
            import torch._dynamo

            torch._dynamo.reset()
    return {
        **speeds,
        **ratios(speeds),
        "dataset_on": str(trainer.train_step.images.device),
        "images": len(trainer.train_step.images),
        "first_step_s": first_step_s,
        "first_step_max_s": max(first_step_s.values()),
    }


def throughput(ctx: Context, record: Record) -> None:
    sizes = ctx.sizes
    cells = [(method, backbone) for method in sizes.methods for backbone in sizes.backbones]
    record.update(
        image_size=sizes.image_size, batch=sizes.batch, warmup=sizes.warmup, rounds=sizes.rounds,
        workers=sizes.workers, targets=TARGETS, rows=[], skipped={}, errors=[],
    )  # fmt: skip
    runnable = []
    for name in VARIANTS:
        reason = VARIANTS.get(name).unavailable(ctx)
        if reason is None:
            runnable.append(VARIANTS.get(name))
        else:
            record["skipped"][name] = reason
    # Every cell is "not reached" until it has run, so a stop at any moment leaves the list right.
    record["not_reached"] = [f"{variant.name} {m}-{b}" for variant in runnable for m, b in cells]
    for index, variant in enumerate(runnable):
        share = ctx.budget.left() / (len(runnable) - index)  # what a variant leaves unused goes to the next
        run_timeboxed(ctx.budget, share, functools.partial(throughput_cells, ctx, record, variant, cells))
        ctx.free_memory()


def throughput_cells(ctx: Context, record: Record, variant: Variant, cells: list[tuple[str, str]]) -> None:
    """One variant's cells in turn, each row or error recorded and saved as soon as it is known."""
    for method, backbone in paced(ctx.budget, cells):
        start, label = time.perf_counter(), f"{variant.name} {method}-{backbone}"
        try:
            row = throughput_cell(ctx, variant, method, backbone)
            where = {"variant": variant.name, "method": method, "backbone": backbone}
            record["rows"].append({**where, **row, "cell_s": time.perf_counter() - start})
        except Exception as exc:  # noqa: BLE001 -- a cell's failure (a kernel, memory) is a result
            error = {"cell": label, "error": one_line(exc), "traceback": traceback.format_exc(8)}
            record["errors"].append(error)
        record["not_reached"].remove(label)
        ctx.free_memory()
        ctx.save()


# --------------------------------------------------------------------------- 2. learning


def learning(ctx: Context, record: Record) -> None:
    sizes = ctx.sizes
    precision = "bf16" if ctx.bf16() is None else "fp32"
    bank = load_dataset(str(ctx.data), "train", image_size=sizes.learn_image_size)
    queries = load_dataset(str(ctx.data), "test", image_size=sizes.learn_image_size)
    config = TrainConfig(
        method="simclr", backbone="resnet18", data=str(ctx.data), split="train",
        image_size=sizes.learn_image_size, epochs=sizes.learn_epochs, batch_size=sizes.learn_batch,
        save_every=sizes.learn_epochs, out=str(ctx.workdir / "learning"),
        precision={"fp32": "no", "bf16": "bf16"}[precision],
        method_overrides=LEARN_OVERRIDES, monitor_every=0, plots=False,
    )  # fmt: skip
    record.update(
        method="simclr", backbone="resnet18", precision=precision, image_size=sizes.learn_image_size,
        batch=sizes.learn_batch, epochs_planned=sizes.learn_epochs, train_images=len(bank),
        test_images=len(queries), k=KNN_K, overrides=LEARN_OVERRIDES,
    )  # fmt: skip

    def knn(model: torch.nn.Module) -> float:
        return evaluate_representation(model, bank, queries, "knn", ctx.device, k=KNN_K).accuracy

    seed_everything(config.seed)  # the trainer's initial weights, before any step
    initial = build_method(
        "simclr", "resnet18", bank.image_size, bank.mean, bank.std, resolve_run(config).method
    )
    record["knn_random_init"] = knn(initial.representation())
    fresh_accelerate_state()
    reserve = 10.0 if sizes.mode == "gpu" else 0.0  # for the checkpoint load and the second kNN
    # stops cleanly, saved
    budgeted = dataclasses.replace(config, time_budget_s=max(ctx.budget.left() - reserve, 1.0))
    result = train(budgeted, console=Console(quiet=True), progress=False)
    steps_per_epoch = len(bank) // sizes.learn_batch
    record.update(
        epochs_done=result.epochs_done, steps=result.steps, steps_per_epoch=steps_per_epoch,
        train_seconds=result.train_seconds,
        seconds_per_epoch=result.train_seconds * steps_per_epoch / result.steps,
        images_per_second=result.images_per_second, final_loss=result.final_loss,
    )  # fmt: skip
    ctx.save()
    record["knn_trained"] = knn(load_representation(result.last_checkpoint).model)


# --------------------------------------------------------------------------- 3. projection


def h100_class(device_name: str) -> bool:
    """H100 and H200 (the H100's compute with more memory bandwidth) count as H100-hours."""
    spec = gpu_spec(device_name)
    return spec is not None and spec.name.startswith(("H100", "H200"))


def projection_totals(rows: list[Record], cells: int, device_name: str) -> Record:
    """Grid hours of the measured cells of one precision; set against the study and the goal once all are
    in."""
    hours = sum(row["projected_hours"] for row in rows)
    complete = len(rows) == cells
    meets: bool | str = hours <= GOAL_H100_HOURS
    if not complete:
        meets = f"not known: {len(rows)} of {cells} cells measured"
    elif not h100_class(device_name):
        meets = f"not known: {device_name} is not an H100-class GPU"
    return {
        "cells_measured": len(rows),
        "cells": cells,
        "complete": complete,
        "grid_hours": hours,
        "study_p100_hours": STUDY_P100_HOURS,
        "speedup_vs_study": STUDY_P100_HOURS / hours if complete else None,
        "goal_h100_hours": GOAL_H100_HOURS,
        "meets_goal": meets,
    }


def projection(ctx: Context, record: Record) -> None:
    sizes, study = ctx.sizes, study_stl10()
    device_name = ctx.document["sections"]["environment"].get("device_name", str(ctx.device))
    record.update(
        study=study.name, epochs=study.train.epochs, epoch_images=STL10_PRETEXT_IMAGES,
        image_size=sizes.projection_image_size, steps=sizes.projection_steps, warmup=sizes.warmup,
        rows=[], totals={}, skipped={}, errors=[],
    )  # fmt: skip
    # a whole grid at a time: one complete grid beats two halves
    for precision in sizes.projection_precisions:
        if precision == "bf16" and (reason := ctx.bf16()) is not None:
            record["skipped"][precision] = reason
            continue
        done = []
        for method, backbone in sizes.projection_grid:
            batch = sizes.projection_batch or method_class(method).Config().batch_size
            try:
                with ctx.autocast(precision):
                    cost = measure_training_throughput(
                        method,
                        backbone,
                        image_size=sizes.projection_image_size,
                        batch_size=batch,
                        steps=sizes.projection_steps,
                        warmup=sizes.warmup,
                        device=ctx.device,
                        threads=torch.get_num_threads(),
                        epochs=study.train.epochs,
                    )
            except Exception as exc:  # noqa: BLE001 -- recorded; the other cells still run
                record["errors"].append({"cell": f"{precision} {method}-{backbone}", "error": one_line(exc)})
                continue
            finally:
                ctx.free_memory()
            done.append({
                "precision": precision, "method": method, "backbone": backbone, "batch": batch,
                "images_per_second": cost.images_per_second, "projected_hours": cost.projected_seconds / 3600,
                "projected_kwh": cost.projected_energy().energy_kwh,
                "energy_source": cost.energy_per_epoch.source,
            })  # fmt: skip
            record["rows"].append(done[-1])
            record["totals"][precision] = projection_totals(done, len(study.cells()), device_name)
            ctx.save()


# --------------------------------------------------------------------------- 4. inference


def inference(ctx: Context, record: Record) -> None:
    sizes = ctx.sizes
    record.update(
        image_size=sizes.image_size, batches=list(sizes.latency_batches), warmup=sizes.latency_warmup,
        repeats=sizes.latency_repeats, latency=[], skipped={},
    )  # fmt: skip
    for backbone in sizes.latency_backbones:
        torch.manual_seed(0)
        result = measure_latency(
            build_backbone(backbone).eval(),
            sizes.image_size,
            batch_sizes=sizes.latency_batches,
            backends=("eager", "channels_last", "onnxruntime-cuda"),
            device=ctx.device,
            threads=torch.get_num_threads(),
            warmup=sizes.latency_warmup,
            repeats=sizes.latency_repeats,
        )
        record["latency"] += [{"backbone": backbone, **row.as_dict()} for row in result.rows]
        record["skipped"].update(result.skipped)
        ctx.free_memory()
        ctx.save()
    record["energy"] = training_energy(ctx)


def training_energy(ctx: Context) -> Record:
    """Energy per training image of SimCLR on ResNet-18: a 2-step calibration, then a span of
    ``energy_seconds``."""
    sizes = ctx.sizes
    precision = "bf16" if ctx.bf16() is None else "fp32"

    def timed(steps: int) -> TrainingCost:
        with ctx.autocast(precision):
            return measure_training_throughput(
                "simclr",
                "resnet18",
                image_size=sizes.image_size,
                batch_size=sizes.batch,
                steps=steps,
                warmup=sizes.warmup,
                device=ctx.device,
                threads=torch.get_num_threads(),
                epochs=1,
                meter=EnergyMeter(ctx.device),
            )

    try:
        cost = timed(2)
        steps = math.ceil(sizes.energy_seconds * cost.images_per_second / sizes.batch)
        if steps > 2:
            cost = timed(min(steps, 500))
    except EdgesslError as exc:  # an unlisted GPU that NVML cannot read
        return {"error": one_line(exc)}
    finally:
        ctx.free_memory()
    energy = cost.energy_per_epoch  # the measured span scaled to epoch_images
    seconds = energy.seconds
    return {
        "precision": precision,
        "batch": sizes.batch,
        "image_size": sizes.image_size,
        "steps": cost.steps,
        "span_s": cost.steps * cost.seconds_per_step,
        "images_per_second": cost.images_per_second,
        "source": energy.source,
        "joules_per_image": energy.energy_kwh * 3.6e6 / cost.epoch_images,
        "gpu_joules_per_image": energy.gpu_kwh * 3.6e6 / cost.epoch_images,
        "gpu_watts": energy.gpu_kwh * 3.6e6 / seconds if seconds > 0 else None,
    }


SECTIONS: Registry[Callable[[Context, Record], None]] = Registry("suite section")
for _name, _run in (
    ("environment", environment),
    ("throughput", throughput),
    ("learning", learning),
    ("projection", projection),
    ("inference", inference),
):
    SECTIONS.register(_name)(_run)


# --------------------------------------------------------------------------- running


def run_section(ctx: Context, name: str, slice_s: float) -> None:
    """Run one section in its slice; its record says how it ended and keeps whatever it measured."""
    record = ctx.document["sections"][name]
    record["slice_s"] = slice_s
    if ctx.budget.left() <= 0:
        record["status"] = "not run: the global deadline had passed"
        return
    start = time.monotonic()
    record["status"] = "running"
    try:
        record["status"] = run_timeboxed(ctx.budget, slice_s, lambda: SECTIONS.get(name)(ctx, record))
    except Exception as exc:  # noqa: BLE001 -- a section's failure is a result; the others still run
        record["status"] = f"failed: {one_line(exc)}"
        record["traceback"] = traceback.format_exc(limit=12)
    finally:
        record["seconds"] = time.monotonic() - start
        # A stop can land inside accelerate's Accelerator() and leave its process-wide state half
        # built (GradientState without plugin_kwargs), which breaks every later Accelerator in
        # the process — the next section's, or the rest of a test session's.
        fresh_accelerate_state()
        ctx.free_memory()
        ctx.save()


def device_slug(device: torch.device) -> str:
    return re.sub(r"[^a-z0-9]+", "_", device_name(device).lower()).strip("_")


def run_suite(sizes: Sizes, device: torch.device, data: Path, out: Path, deadline_s: float) -> Context:
    """Every section in order under one deadline; returns the context whose document was last saved."""
    started = time.monotonic()
    document: Record = {
        "suite": NAME,
        "schema_version": SCHEMA_VERSION,
        "mode": sizes.mode,
        "deadline_s": deadline_s,
        "data": str(data),
        "sizes": dataclasses.asdict(sizes),
        "sections": {name: {"status": "pending"} for name in SECTIONS},
    }
    stem = f"{NAME}_{device_slug(device)}" + ("_smoke" if sizes.mode == "smoke" else "")
    out.mkdir(parents=True, exist_ok=True)
    with Budget(deadline_s) as budget:
        preload(device)  # counts against the deadline, outside every window
        with tempfile.TemporaryDirectory(prefix="edgessl-gpu-suite-") as workdir:
            ctx = Context(sizes, device, data, Path(workdir), budget, document, out, stem)
            for name in SECTIONS:
                run_section(ctx, name, sizes.slices[name])
            document["elapsed_s"] = time.monotonic() - started
            ctx.save()
    return ctx


# --------------------------------------------------------------------------- command line


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=REPO / "benchmarks" / "results", help="folder for the .md and .json"
    )
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DEST, help=f"the CIFAR-10 subset (default {DEFAULT_DEST})"
    )
    parser.add_argument(
        "--smoke", action="store_true", help="tiny sizes on the CPU, in seconds (what CI runs)"
    )
    parser.add_argument(
        "--deadline", type=float, default=None, help="global deadline, seconds (default 450; smoke 240)"
    )
    args = parser.parse_args(argv)
    if args.deadline is not None and args.deadline <= 0:
        parser.error(f"--deadline must be positive (got {args.deadline})")
    if not args.smoke and not torch.cuda.is_available():
        parser.error("torch sees no CUDA device; run the CPU check with --smoke")
    if not is_complete(args.data):
        parser.error(
            f"no CIFAR-10 subset at {args.data}; make it with `python benchmarks/cifar_subset.py` "
            "(reads ../shared/data/cifar10/train.zip) and carry benchmarks/data to the GPU machine"
        )
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    sizes = SMOKE if args.smoke else GPU
    device = torch.device("cpu" if args.smoke else "cuda")
    ctx = run_suite(sizes, device, args.data.resolve(), args.out, args.deadline or sizes.deadline_s)
    print(f"wrote {ctx.out / ctx.stem}.md and .json")
    for name, record in ctx.document["sections"].items():
        print(f"{name:12s} {record['status']}")


if __name__ == "__main__":
    main()
