"""Which augmentation pipeline should make SSL views: edgessl's batched ops, kornia, or torchvision?

Side by side in one run, SimCLR's view (crop (0.08, 1), flip 0.5, jitter 0.8/0.8/0.8/0.2
with p 0.8, grayscale 0.2, blur p 0.5 with sigma (0.1, 2) and a kernel of 10% of the side)
on a uint8 batch of 256 at 96x96 and 32x32, output float32 in [0, 1]:

- ``edgessl``: :func:`edgessl.augment.simclr_view`, one batched call, per-sample parameters;
- ``kornia``: ``kornia.augmentation`` with the same settings, batched, per-sample parameters;
- ``torchvision-v2 tensor``: ``torchvision.transforms.v2`` applied image by image to uint8 tensors;
- ``torchvision-v2 PIL``: the same on PIL images, what DataLoader workers usually run.

The pipelines take turns within every repeat so that they share the machine's noise;
the median per pipeline is reported. Also times edgessl's MoCo v2 view and BYOL's view
pair. Writes benchmarks/results/augment_throughput.md and .json.

Run: python benchmarks/augment_throughput.py [--batch 256] [--sizes 96 32] [--threads 1 2] [--repeats 7]
[--device cpu]. Each thread count is measured in turn (on oversubscribed shared cores, one
thread can beat two: OpenMP workers wait on each other).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import kornia
import kornia.augmentation as K
import torch
import torchvision
from PIL import Image
from results_io import device_name, machine, write_results
from torchvision.transforms import v2

from edgessl.augment import byol_views, mocov2_view, simclr_view
from edgessl.augment.functional import blur_kernel_size

NAME = "augment_throughput"
BASELINE = "edgessl"

Pipeline = Callable[[], object]


def kornia_simclr(size: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """SimCLR's view with kornia's batched augmentations (same parameters as simclr_view)."""
    view = simclr_view()
    kernel = blur_kernel_size(size, view.blur_kernel_fraction)
    augment = K.AugmentationSequential(
        K.RandomResizedCrop((size, size), scale=view.crop_scale, ratio=view.crop_ratio),
        K.RandomHorizontalFlip(p=view.hflip_p),
        K.ColorJitter(view.brightness, view.contrast, view.saturation, view.hue, p=view.jitter_p),
        K.RandomGrayscale(p=view.grayscale_p),
        K.RandomGaussianBlur((kernel, kernel), view.blur_sigma, p=view.blur_p),
    )
    return lambda images: augment(images.float().div_(255))


def torchvision_simclr(size: int) -> v2.Compose:
    """SimCLR's view as torchvision.transforms.v2 for one image (uint8 tensor or PIL in, float out)."""
    view = simclr_view()
    kernel = blur_kernel_size(size, view.blur_kernel_fraction)
    return v2.Compose(
        [
            v2.RandomResizedCrop(size, scale=view.crop_scale, ratio=view.crop_ratio, antialias=True),
            v2.RandomHorizontalFlip(view.hflip_p),
            v2.RandomApply(
                [v2.ColorJitter(view.brightness, view.contrast, view.saturation, view.hue)], view.jitter_p
            ),
            v2.RandomGrayscale(view.grayscale_p),
            v2.RandomApply([v2.GaussianBlur(kernel, view.blur_sigma)], view.blur_p),
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
        ]
    )


def pipelines(images: torch.Tensor, size: int) -> dict[str, Pipeline]:
    """Each contender as a no-argument call that makes one batch of views from ``images``."""
    simclr, korn, per_image = simclr_view(), kornia_simclr(size), torchvision_simclr(size)
    pil = [Image.fromarray(image.permute(1, 2, 0).cpu().numpy()) for image in images]
    contenders: dict[str, Pipeline] = {
        BASELINE: lambda: simclr(images, size),
        "kornia": lambda: korn(images),
        "torchvision-v2 tensor": lambda: torch.stack([per_image(image) for image in images]),
        "torchvision-v2 PIL": lambda: torch.stack([per_image(image) for image in pil]),
    }
    if images.device.type != "cpu":  # per-image transforms of PIL images only run on the CPU
        del contenders["torchvision-v2 PIL"]
    return contenders


def edgessl_presets(images: torch.Tensor, size: int) -> dict[str, Pipeline]:
    """edgessl's presets; a BYOL step makes two views, so its pair counts as one call."""
    moco, (byol1, byol2), simclr = mocov2_view(), byol_views(), simclr_view()
    return {
        "simclr_view": lambda: simclr(images, size),
        "mocov2_view": lambda: moco(images, size),
        "byol_views (pair)": lambda: (byol1(images, size), byol2(images, size)),
    }


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(contenders: dict[str, Pipeline], repeats: int, device: torch.device) -> dict[str, float]:
    """Median wall time per call; contenders alternate within each repeat, after one warm-up each."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for name, run in contenders.items():
        run()
    for _ in range(repeats):
        for name, run in contenders.items():
            synchronize(device)
            start = time.perf_counter()
            run()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def measure(batch: int, size: int, threads: int, repeats: int, device: torch.device) -> dict[str, object]:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    # Stored images are 96x96 (STL-10); the 32x32 runs crop from 32x32 images (CIFAR-10 sized).
    images = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, device=device)
    contenders = median_seconds(pipelines(images, size), repeats, device)
    presets = median_seconds(edgessl_presets(images, size), repeats, device)
    rate = {name: batch / seconds for name, seconds in contenders.items()}
    return {
        "size": size,
        "threads": threads,
        "batch": batch,
        "images_per_s": rate,
        "speedup_of_edgessl": {name: rate[BASELINE] / value for name, value in rate.items()},
        "edgessl_preset_calls_per_s": {name: 1 / seconds for name, seconds in presets.items()},
        "edgessl_preset_images_per_s": {name: batch / seconds for name, seconds in presets.items()},
    }


def report_lines(rows: list[dict], info: dict[str, object], repeats: int) -> list[str]:
    names = list(rows[0]["images_per_s"])
    lines = [
        "# Augmentation throughput: batched on-device views vs kornia vs per-image torchvision",
        "",
        (
            f"SimCLR's view on a uint8 batch of {rows[0]['batch']} (float32 views out), median of {repeats} "
            "interleaved repeats after a warm-up. `edgessl / X` > 1 means edgessl is faster."
        ),
        "",
        "| size | threads | "
        + " | ".join(f"{name} (img/s)" for name in names)
        + " | "
        + " | ".join(f"edgessl / {name}" for name in names if name != BASELINE)
        + " |",
        "|---" * (2 * len(names) + 1) + "|",
    ]
    for row in rows:
        rates = " | ".join(f"{row['images_per_s'][name]:.0f}" for name in names)
        ratios = " | ".join(f"{row['speedup_of_edgessl'][name]:.2f}" for name in names if name != BASELINE)
        lines.append(f"| {row['size']}x{row['size']} | {row['threads']} | {rates} | {ratios} |")
    presets = list(rows[0]["edgessl_preset_images_per_s"])
    lines += [
        "",
        "edgessl presets (a BYOL step makes both views of the pair from the same images):",
        "",
        "| size | threads | " + " | ".join(f"{name} (img/s)" for name in presets) + " |",
        "|---" * (len(presets) + 2) + "|",
        *(
            f"| {row['size']}x{row['size']} | {row['threads']} | "
            + " | ".join(f"{row['edgessl_preset_images_per_s'][name]:.0f}" for name in presets)
            + " |"
            for row in rows
        ),
        "",
        (
            f"Machine: {info['cpu']}, {info['logical_cores']} cores, device "
            f"{info['device']}; torch {info['torch']}, torchvision {info['torchvision']}, "
            f"kornia {info['kornia']}; "
            f"{info['date']}. 1-minute load average at start {info['load_average_1min']:.1f}"
            + (
                ": the cores were shared with other jobs, so absolute numbers are noisy; the ratios, "
                "measured interleaved, are the result."
                if info["load_average_1min"] > 0.5 * info["logical_cores"]
                else "."
            )
            + " With more threads than idle cores, OpenMP workers wait on descheduled peers and every"
            " small kernel pays for it: compare contenders within a row, not rows of different thread counts."
        ),
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--sizes", type=int, nargs="+", default=[96, 32])
    parser.add_argument("--threads", type=int, nargs="+", default=[os.cpu_count() or 1])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    info = machine(device=device_name(device), torchvision=torchvision.__version__, kornia=kornia.__version__)
    rows = []
    for threads in args.threads:
        for size in args.sizes:
            row = measure(args.batch, size, threads, args.repeats, device)
            rows.append(row)
            print(
                f"{size}x{size}, {threads} threads: "
                + ", ".join(
                    f"{name} {rate:.0f} img/s (edgessl x{row['speedup_of_edgessl'][name]:.2f})"
                    for name, rate in row["images_per_s"].items()
                )
            )
    record = {"machine": info, "repeats": args.repeats, "rows": rows}
    write_results(NAME, record, report_lines(rows, info, args.repeats))


if __name__ == "__main__":
    main()
