"""Does the demo's pretraining beat what needs none? kNN on shapes10 before and after pretraining.

The built-in dataset is only a useful demo if it is learnable but not already solved:
mean colour, raw pixels and a randomly initialised encoder should all score well below
what the demo's short SimCLR pretraining reaches. The demo's target: pretrained kNN at
least 25 points above random init and 15 points above raw pixels.

Measures kNN (k=20, Euclidean, majority vote; the demo's protocol, through
:func:`edgessl.evaluation.evaluate_representation`) train -> test accuracy of each
representation side by side: each image's mean colour, its normalised pixels, the
random-init encoder (3 seeds) and, at the demo's size, the encoder after the demo's own
pretraining run (:func:`edgessl.demo.pretrain_config`, same 3 seeds) with its wall-clock
time; plus generation time of all splits. Writes benchmarks/results/shapes10_knn.md and .json.

Run: python benchmarks/shapes10_knn.py          (about 3 x the demo's pretraining time)
     python benchmarks/shapes10_knn.py --quick  (a few steps, 1 seed: checks that it runs; writes nothing)
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from results_io import machine, write_results
from torch import nn

from edgessl.checkpoints import load_representation
from edgessl.data import load_dataset
from edgessl.data.synthetic import generate_split
from edgessl.demo import DemoOptions, pretrain_config
from edgessl.evaluation import evaluate_representation
from edgessl.evaluation.baselines import pixel_representation
from edgessl.methods import build_method
from edgessl.methods.base import Normalize, Representation
from edgessl.training import train

DEMO = DemoOptions()
K = DEMO.knn_k
SIZES = (DEMO.image_size, 64)
SEEDS = (0, 1, 2)  # random initialisations of the encoder, and pretraining seeds


def mean_colour_representation(mean, std) -> Representation:
    """Each image's average normalised RGB: the cue that must not give the class away."""
    return Representation(Normalize(mean, std), nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()), 3)


def knn(model: nn.Module, train_split, test_split) -> float:
    return evaluate_representation(model, train_split, test_split, "knn", device="cpu", k=K).accuracy


def random_init(size: int, train_split, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return (
        build_method(DEMO.method, DEMO.backbone, size, train_split.mean, train_split.std)
        .representation()
        .eval()
    )


def pretrained(seed: int, folder: Path, max_steps: int | None) -> tuple[nn.Module, float, int]:
    """The demo's pretraining with ``seed``: the trained representation, wall-clock seconds and steps."""
    options = dataclasses.replace(DEMO, seed=seed)
    config = dataclasses.replace(pretrain_config(options, str(folder / f"seed{seed}")), max_steps=max_steps)
    start = time.time()
    result = train(config, progress=False)
    return load_representation(result.last_checkpoint).model, time.time() - start, result.steps


def generation_seconds(size: int) -> float:
    start = time.perf_counter()
    for split in ("unlabeled", "train", "test"):
        generate_split(split, size)
    return time.perf_counter() - start


def measure(quick: bool) -> list[dict[str, object]]:
    seeds = SEEDS[:1] if quick else SEEDS
    rows = []
    for size in SIZES[:1] if quick else SIZES:
        train_split = load_dataset("shapes10", "train", image_size=size)
        test_split = load_dataset("shapes10", "test", image_size=size)
        row: dict[str, object] = {
            "size": size,
            "mean_colour": knn(
                mean_colour_representation(train_split.mean, train_split.std), train_split, test_split
            ),
            "raw_pixels": knn(
                pixel_representation(size, train_split.mean, train_split.std), train_split, test_split
            ),
            "random_init": [
                knn(random_init(size, train_split, seed), train_split, test_split) for seed in seeds
            ],
            "generate_all_splits_s": generation_seconds(size),
        }
        if size == DEMO.image_size:
            with tempfile.TemporaryDirectory() as folder:
                runs = [pretrained(seed, Path(folder), 3 if quick else None) for seed in seeds]
            row["pretrained"] = [knn(model, train_split, test_split) for model, _, _ in runs]
            row["pretrain_s"] = [seconds for _, seconds, _ in runs]
            row["pretrain_steps"] = [steps for _, _, steps in runs]
        rows.append(row)
        print(summary(row))
    return rows


def summary(row: dict[str, object]) -> str:
    text = (
        f"{row['size']}x{row['size']}: mean colour {row['mean_colour']:.3f}, "
        f"raw pixels {row['raw_pixels']:.3f}, "
        f"random-init {DEMO.backbone} {np.mean(row['random_init']):.3f}"
    )
    if "pretrained" in row:
        text += (
            f", pretrained {np.mean(row['pretrained']):.3f} (pretraining {np.mean(row['pretrain_s']):.0f} s)"
        )
    return text + f", chance 0.100, generation {row['generate_all_splits_s']:.2f} s"


def cell(row: dict[str, object], key: str, digits: int = 3) -> str:
    return ", ".join(f"{value:.{digits}f}" for value in row[key]) if key in row else "-"


def mean_cell(row: dict[str, object], key: str) -> str:
    return f"{np.mean(row[key]):.3f}" if key in row else "-"


def write(rows: list[dict[str, object]], info: dict[str, object]) -> None:
    lines = [
        "# shapes10: kNN before and after the demo's pretraining",
        "",
        (
            f"kNN (k={K}, Euclidean, majority vote), train (2,000) -> test (1,000); chance is 0.100. "
            f"Random-init {DEMO.backbone} in eval mode; pretrained = the demo's own SimCLR run "
            f"({DEMO.epochs} whole epochs; its {DEMO.minutes:g}-minute limit is only a safety stop, and the "
            "steps column shows each run's count), "
            f"seeds {', '.join(map(str, SEEDS))} for both. "
            "Mean colour and pixels are normalised with the dataset mean/std. "
            "Generation time covers all three splits (13,000 images)."
        ),
        "",
        (
            "| size | mean colour | raw pixels | random-init (mean) | random-init per seed "
            "| pretrained (mean) | pretrained per seed | pretraining steps per seed | pretraining s per seed "
            "| generate all splits (s) |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
        *(
            f"| {r['size']} | {r['mean_colour']:.3f} | {r['raw_pixels']:.3f} | "
            f"{mean_cell(r, 'random_init')} | "
            f"{cell(r, 'random_init')} | {mean_cell(r, 'pretrained')} | "
            f"{cell(r, 'pretrained')} | {cell(r, 'pretrain_steps', 0)} | {cell(r, 'pretrain_s', 0)} | "
            f"{r['generate_all_splits_s']:.2f} |"
            for r in rows
        ),
        "",
        (
            f"Machine: {info['cpu']}, {info['logical_cores']} cores, {info['torch_threads']} torch threads, "
            "load average "
            f"{info['load_average_1min']:.1f} before the run (the accuracies are bound by steps, not time; "
            "the seconds are this run's), "
            f"torch {info['torch']}, {info['date']}."
        ),
    ]
    record = {"machine": info, "k": K, "backbone": DEMO.backbone, "rows": rows}
    write_results("shapes10_knn", record, lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="a few pretraining steps, one seed; writes no results"
    )
    args = parser.parse_args()
    info = machine()  # before the run, so the load average is other jobs' load
    rows = measure(args.quick)
    if not args.quick:
        write(rows, info)


if __name__ == "__main__":
    main()
