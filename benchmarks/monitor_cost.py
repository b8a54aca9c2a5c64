"""What watching a run costs: training wall time with the online monitor at its default interval vs off.

The same run (method, backbone, data, seed, epochs) is trained twice in one process,
after one untimed warm-up run (first-run costs), alternating the order over ``--repeats`` rounds so
that drift of the machine hits both:
``monitor_every=0`` (no monitor) and the default ``monitor_every=1`` (online kNN on 1,000 +
500 fixed images and the collapse measures, every epoch). Both write metrics.jsonl and
checkpoints as usual; plots and trackers are off in both. The cost is the median ratio
of the two wall times minus one. Target (issue "watch training"): <= 3% on the CPU.

Run alone (it times): python benchmarks/monitor_cost.py [--quick]
Writes benchmarks/results/monitor_cost.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from results_io import machine, write_results
from rich.console import Console

from edgessl.training import TrainConfig, train


def timed_run(out: Path, monitor_every: int, args: argparse.Namespace) -> float:
    config = TrainConfig(
        method=args.method, backbone=args.backbone, data=args.data, split=args.split,
        image_size=args.image_size, epochs=args.epochs, batch_size=args.batch, out=str(out),
        monitor_every=monitor_every, plots=False, seed=0, save_every=args.epochs,
        method_overrides={"optimizer": {"name": "sgd", "lr": 0.1, "warmup_epochs": 0}},
    )  # fmt: skip
    start = time.perf_counter()
    train(config, console=Console(quiet=True), progress=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="simclr")
    parser.add_argument("--backbone", default="shufflenetv2")
    parser.add_argument("--data", default="shapes10")
    parser.add_argument("--split", default="unlabeled")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--quick", action="store_true", help="tiny sizes to check the script; writes nothing")
    args = parser.parse_args()
    if args.quick:
        args.split, args.image_size, args.epochs, args.batch, args.repeats = "test", 16, 1, 64, 1
    torch.set_num_threads(args.threads)
    times: dict[int, list[float]] = {0: [], 1: []}
    with tempfile.TemporaryDirectory() as workdir:
        # untimed: first-run costs (data generation, kernel choice)
        timed_run(Path(workdir) / "warm-up", 1, args)
        for round_index in range(args.repeats):
            order = (0, 1) if round_index % 2 == 0 else (1, 0)
            for every in order:
                times[every].append(timed_run(Path(workdir) / f"r{round_index}-m{every}", every, args))
    ratios = [on / off for on, off in zip(times[1], times[0], strict=True)]
    result = {
        "config": {k: v for k, v in vars(args).items() if k != "quick"},
        "seconds_off": times[0],
        "seconds_default": times[1],
        "median_cost": statistics.median(ratios) - 1.0,
        "machine": machine(),  # torch_threads: the runs' --threads
    }
    print(json.dumps(result, indent=2))
    if args.quick:
        return
    m = result["machine"]
    rows = "\n".join(
        f"| {i + 1} | {off:.1f} | {on:.1f} | {on / off - 1:+.1%} |"
        for i, (off, on) in enumerate(zip(times[0], times[1], strict=True))
    )
    lines = [
        "# Online monitoring cost",
        "",
        (
            f"{args.method} on {args.backbone}, {args.data} '{args.split}' "
            f"at {args.image_size}px, "
            f"batch {args.batch}, {args.epochs} epochs per run; "
            "monitor at its default (every epoch: kNN on 1,000 bank + 500 "
            "query images, embedding std, effective rank) vs off. "
            f"Machine: {m['cpu']}, {m['logical_cores']} cores, {m['torch_threads']} "
            f"thread(s), torch {m['torch']}, load {m['load_average_1min']:.2f}, {m['date']}."
        ),
        "",
        "| round | off (s) | default (s) | cost |",
        "|---|---|---|---|",
        rows,
        "",
        f"**Median cost: {result['median_cost']:+.1%}** of training wall time (target <= 3%).",
    ]
    write_results("monitor_cost", result, lines)


if __name__ == "__main__":
    main()
