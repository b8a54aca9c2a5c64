"""How hard is shapes10 before any pretraining? kNN on colour, raw pixels and random-init features.

The built-in dataset is only a useful demo if it is learnable but not already solved:
raw pixels and a randomly initialised encoder should both score well below what
self-supervised pretraining reaches. Measures kNN (k=20, Euclidean, majority vote)
train -> test accuracy at 32x32 and 64x64, side by side, plus generation time, and
writes benchmarks/results/shapes10_knn.md and .json.

Run: python benchmarks/shapes10_knn.py
"""

from __future__ import annotations

import datetime
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from edgessl.backbones import build_backbone
from edgessl.data import load_dataset
from edgessl.data.synthetic import generate_split
from edgessl.hardware import cpu_model

K = 20
SIZES = (32, 64)
BACKBONE = "shufflenetv2"
SEEDS = (0, 1, 2)  # random initialisations of the encoder
RESULTS = Path(__file__).parent / "results"


def knn_accuracy(
    train: torch.Tensor, train_labels: torch.Tensor, test: torch.Tensor, test_labels: torch.Tensor, k: int = K
) -> float:
    """Majority vote of the k nearest (Euclidean) training samples; ties go to the smaller label."""
    distances = torch.cdist(test.double(), train.double())
    nearest = distances.topk(k, largest=False).indices
    votes = torch.nn.functional.one_hot(train_labels[nearest], int(train_labels.max()) + 1).sum(1)
    return float((votes.argmax(1) == test_labels).double().mean())


def mean_colour(images: torch.Tensor) -> torch.Tensor:
    """Each image's average RGB: the cue that must not give the class away."""
    return images.float().mean(dim=(2, 3))


@torch.no_grad()
def random_init_features(
    images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...], seed: int
) -> torch.Tensor:
    torch.manual_seed(seed)
    encoder = build_backbone(BACKBONE).eval()
    m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    return torch.cat([encoder((batch.float() / 255 - m) / s) for batch in images.split(250)])


def generation_seconds(size: int) -> float:
    start = time.perf_counter()
    for split in ("unlabeled", "train", "test"):
        generate_split(split, size)
    return time.perf_counter() - start


def machine() -> dict[str, object]:
    cpu = cpu_model()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],  # other jobs on the machine slow the timings
        "torch": torch.__version__,
        "date": datetime.date.today().isoformat(),
    }


def main() -> None:
    info = machine()  # before the run, so the load average is other jobs' load
    torch.set_num_threads(os.cpu_count() or 1)
    rows = []
    for size in SIZES:
        train, test = (
            load_dataset("shapes10", "train", image_size=size),
            load_dataset("shapes10", "test", image_size=size),
        )
        colour = knn_accuracy(mean_colour(train.images), train.labels, mean_colour(test.images), test.labels)
        raw = knn_accuracy(
            train.images.flatten(1).float(), train.labels, test.images.flatten(1).float(), test.labels
        )
        randoms = [
            knn_accuracy(
                random_init_features(train.images, train.mean, train.std, seed),
                train.labels,
                random_init_features(test.images, train.mean, train.std, seed),
                test.labels,
            )
            for seed in SEEDS
        ]
        row = {
            "size": size,
            "mean_colour": colour,
            "raw_pixels": raw,
            "random_init": randoms,
            "generate_all_splits_s": generation_seconds(size),
        }
        rows.append(row)
        print(
            f"{size}x{size}: mean colour {colour:.3f}, raw pixels {raw:.3f}, random-init {BACKBONE} {np.mean(randoms):.3f} "
            f"(seeds {', '.join(f'{r:.3f}' for r in randoms)}), chance 0.100, "
            f"generation {row['generate_all_splits_s']:.2f} s"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "shapes10_knn.json").write_text(
        json.dumps({"machine": info, "k": K, "backbone": BACKBONE, "rows": rows}, indent=2)
    )
    lines = [
        "# shapes10: kNN before pretraining",
        "",
        (
            f"kNN (k={K}, Euclidean, majority vote), train (2,000) -> test (1,000); chance is 0.100. "
            f"Random-init {BACKBONE} in eval mode, inputs normalised with the dataset mean/std, "
            f"{len(SEEDS)} initialisation seeds. Generation time covers all three splits (13,000 images)."
        ),
        "",
        "| size | mean colour | raw pixels | random-init (mean) | random-init per seed | generate all splits (s) |",
        "|---|---|---|---|---|---|",
        *(
            f"| {r['size']} | {r['mean_colour']:.3f} | {r['raw_pixels']:.3f} | {np.mean(r['random_init']):.3f} | "
            f"{', '.join(f'{a:.3f}' for a in r['random_init'])} | {r['generate_all_splits_s']:.2f} |"
            for r in rows
        ),
        "",
        (
            f"Machine: {info['cpu']}, {info['cores']} cores, load average {info['load_average_1min']:.1f} "
            "before the run (shared with other jobs: timings are noisy), "
            f"torch {info['torch']}, {info['date']}."
        ),
    ]
    (RESULTS / "shapes10_knn.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
