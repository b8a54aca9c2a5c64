"""Distributed throughput on CPUs: 1 vs 2 gloo processes at the same global batch, and what all-gather \
and SyncBN cost.

One training step as the trainer takes it (views made from uint8 images, loss, backward,
the method's optimiser; no data indexing), global batch B, measured in two phases:

- one process: (a) 1 torch thread, (b) 2 threads (the cores (c) uses), interleaved;
- two gloo processes, 1 thread each, B/2 images each under DDP, interleaved:
  (c) SyncBatchNorm on (SimCLR's and BYOL's default), (d) SyncBatchNorm off; and, alone,
  (e) the all-gather of the NT-Xent negatives (forward + backward of this process's
  projections, :func:`edgessl.distributed.gather_with_grad`) and (f) one
  ``CPUSyncBatchNorm`` layer vs ``BatchNorm2d`` (forward + backward) on a typical
  activation.

Each timed call ends with a barrier in phase two, so a step costs what the slower
process took. Images/s = B / median step time. Writes
benchmarks/results/distributed_throughput.md and .json (``--quick``: tiny settings, a
check that it runs; writes nothing unless ``--out`` is given).

Run: python benchmarks/distributed_throughput.py [--method simclr] [--batch 64] [--rounds 10] [--quick]
"""

from __future__ import annotations

import argparse
import dataclasses
import socket
import statistics
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from results_io import RESULTS, machine, write_results
from torch import distributed as dist
from torch import multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from edgessl import distributed
from edgessl.data import load_dataset
from edgessl.methods import Method, build_method, method_class
from edgessl.timing import time_calls
from edgessl.training.optim import build_optimizer

NAME = "distributed_throughput"
WORLD = 2


def build(args: argparse.Namespace, sync_batchnorm: bool) -> Method:
    torch.manual_seed(0)
    config = dataclasses.replace(method_class(args.method).Config(), sync_batchnorm=sync_batchnorm)
    method = build_method(args.method, args.backbone, args.image_size, (0.5,) * 3, (0.25,) * 3, config)
    return method.train()


def step_call(model: nn.Module, method: Method, images: torch.Tensor, batch: int) -> Callable[[], None]:
    """One optimiser step of ``model`` (``method``, or DDP around it) on ``images``."""
    optimizer = build_optimizer(method, method.config.optimizer, batch)

    def step() -> None:
        model(images).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def with_threads(threads: int, call: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        torch.set_num_threads(threads)
        call()

    return run


def one_process(args: argparse.Namespace, images: torch.Tensor) -> dict[str, float]:
    """(a) and (b): seconds per step (medians), interleaved."""
    method = build(args, sync_batchnorm=False)
    step = step_call(method, method, images, len(images))
    times = time_calls(
        {"one_process_1_thread": with_threads(1, step), "one_process_2_threads": with_threads(2, step)},
        warmup=1,
        repeats=args.rounds,
    )
    torch.set_num_threads(1)
    return {name: statistics.median(values) for name, values in times.items()}


def _worker(rank: int, port: int, args: argparse.Namespace, images: torch.Tensor, out: str) -> None:
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", message="`broadcast_buffers` is deprecated", category=FutureWarning)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        mine = images.chunk(WORLD)[rank]
        calls = {}
        for name, sync in (("two_processes_syncbn", True), ("two_processes_local_bn", False)):
            method = build(args, sync)
            method.synchronize_batchnorm("cpu")
            calls[name] = step_call(
                DistributedDataParallel(method, broadcast_buffers=False), method, mine, len(images)
            )
        times = time_calls(calls, warmup=1, repeats=args.rounds, synchronize=dist.barrier)
        result = {name: statistics.median(values) for name, values in times.items()}
        result.update(collective_costs(args, mine))
        if rank == 0:
            torch.save(result, Path(out) / "two.pt")
    finally:
        dist.destroy_process_group()


def collective_costs(args: argparse.Namespace, mine: torch.Tensor) -> dict[str, float]:
    """(e) the negatives' all-gather and (f) one synchronised BatchNorm layer vs a local one, seconds
    (medians)."""
    projections = torch.randn(2 * len(mine), 128, requires_grad=True)  # both views' projections

    def gather() -> None:
        distributed.gather_with_grad(projections).sum().backward()

    channels, side = 48, max(2, args.image_size // 8)  # a ShuffleNetV2 stage-2 activation
    activation = torch.randn(2 * len(mine), channels, side, side, requires_grad=True)
    local = nn.BatchNorm2d(channels)
    synced = distributed.CPUSyncBatchNorm(channels)

    def layer(norm: nn.Module) -> Callable[[], None]:
        return lambda: norm(activation).square().sum().backward()

    times = time_calls(
        {"allgather_negatives": gather, "batchnorm_layer": layer(local), "syncbn_layer": layer(synced)},
        warmup=2,
        repeats=max(20, 5 * args.rounds),
        synchronize=dist.barrier,
    )
    return {name: statistics.median(values) for name, values in times.items()}


def two_processes(args: argparse.Namespace, images: torch.Tensor) -> dict[str, float]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as out:
        # fork: the children reuse the imported modules (spawn would re-import torch)
        mp.start_processes(
            _worker, args=(port, args, images, out), nprocs=WORLD, join=True, start_method="fork"
        )
        return torch.load(Path(out) / "two.pt", weights_only=True)


def summary(seconds: dict[str, float], batch: int) -> dict[str, Any]:
    speeds = {
        name: batch / seconds[name]
        for name in (
            "one_process_1_thread",
            "one_process_2_threads",
            "two_processes_syncbn",
            "two_processes_local_bn",
        )
    }
    return {
        "images_per_s": speeds,
        "ms": {name: 1000 * value for name, value in seconds.items()},
        "two_over_one_thread": speeds["two_processes_syncbn"] / speeds["one_process_1_thread"],
        "two_over_two_threads": speeds["two_processes_syncbn"] / speeds["one_process_2_threads"],
        "syncbn_step_cost": seconds["two_processes_syncbn"] / seconds["two_processes_local_bn"] - 1,
        "allgather_share_of_step": seconds["allgather_negatives"] / seconds["two_processes_syncbn"],
        "syncbn_layer_over_batchnorm": seconds["syncbn_layer"] / seconds["batchnorm_layer"],
    }


def markdown(result: dict[str, Any], info: dict[str, object], args: argparse.Namespace) -> list[str]:
    speed, ms = result["images_per_s"], result["ms"]
    return [
        "# Distributed throughput on CPUs: 1 vs 2 gloo processes at the same global batch",
        "",
        (
            f"{args.method} on {args.backbone}, shapes10 at {args.image_size}px, "
            f"global batch {args.batch}, median of "
            f"{args.rounds} interleaved steps per phase "
            "(views made each step, loss, backward, the method's optimiser)."
        ),
        "",
        "| setting | images/s | ms per step |",
        "|---|---|---|",
        (
            f"| (a) 1 process, 1 thread | {speed['one_process_1_thread']:.1f} | "
            f"{ms['one_process_1_thread']:.1f} |"
        ),
        (
            f"| (b) 1 process, 2 threads | {speed['one_process_2_threads']:.1f} | "
            f"{ms['one_process_2_threads']:.1f} |"
        ),
        (
            f"| (c) 2 processes x 1 thread, SyncBatchNorm | {speed['two_processes_syncbn']:.1f} | "
            f"{ms['two_processes_syncbn']:.1f} |"
        ),
        (
            "| (d) 2 processes x 1 thread, per-process BatchNorm | "
            f"{speed['two_processes_local_bn']:.1f} | "
            f"{ms['two_processes_local_bn']:.1f} |"
        ),
        "",
        (
            f"(c)/(a) = {result['two_over_one_thread']:.2f}, "
            f"(c)/(b) = {result['two_over_two_threads']:.2f}; "
            f"SyncBatchNorm adds {100 * result['syncbn_step_cost']:.0f}% to a step ((c) vs (d)). "
            "(e) the NT-Xent negatives' all-gather, forward + backward: "
            f"{ms['allgather_negatives']:.2f} ms "
            f"({100 * result['allgather_share_of_step']:.1f}% of step (c)). "
            "(f) one CPUSyncBatchNorm layer "
            f"{ms['syncbn_layer']:.2f} ms vs BatchNorm2d {ms['batchnorm_layer']:.2f} ms "
            f"(x{result['syncbn_layer_over_batchnorm']:.1f}), forward + backward."
        ),
        "",
        (
            f"Machine: {info['cpu']}, {info['logical_cores']} cores; torch {info['torch']}; {info['date']}. "
            "1-minute load "
            f"average at start {info['load_average_1min']:.1f}. "
            "The one- and two-process phases run one after the "
            "other; within each, settings are interleaved."
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="simclr")
    parser.add_argument("--backbone", default="shufflenetv2")
    parser.add_argument("--batch", type=int, default=64, help="global batch (split over the two processes)")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="tiny settings: checks that the benchmark runs")
    parser.add_argument("--out", type=Path, help="results folder (default benchmarks/results; --quick: none)")
    args = parser.parse_args()
    if args.quick:
        args.batch, args.image_size, args.rounds = 8, 16, 2
    torch.set_num_threads(1)
    info = machine()
    images = load_dataset("shapes10", "train", image_size=args.image_size).images[: args.batch]
    seconds = {**one_process(args, images), **two_processes(args, images)}
    result = summary(seconds, args.batch)
    for name, value in result["images_per_s"].items():
        print(f"{name:24s} {value:8.1f} images/s")
    print(
        f"2 processes / 1 process: x{result['two_over_one_thread']:.2f} (1 thread), "
        f"x{result['two_over_two_threads']:.2f} "
        f"(2 threads); SyncBN +{100 * result['syncbn_step_cost']:.0f}% per step; all-gather "
        f"{result['ms']['allgather_negatives']:.2f} ms"
    )
    out = args.out if args.out is not None else (None if args.quick else RESULTS)
    if out is not None:
        record = {"machine": info, "options": vars(args) | {"out": str(out)}, **result}
        print(f"wrote {write_results(NAME, record, markdown(result, info, args), folder=out)}")


if __name__ == "__main__":
    main()
