"""``shapes10``: a built-in, procedurally generated 10-class dataset (no files, no network).

Classes: six filled shapes (disc, square, triangle, ring, cross, star), three textures
(stripes, checker, dots) and one colour layout (halves: two colours split by a line).
Every sample draws its own foreground and background colour (two different colours of
an 8-colour palette, each randomly dimmed), position, scale, rotation, texture period,
a smooth lighting gradient and pixel noise, so neither mean colour nor position gives
the class away: a model has to see shape or texture, under the variation that
self-supervised augmentations (crops, colour jitter) teach invariance to.

Native size 64x64; any ``image_size`` is generated at that size directly (geometry is
relative to the image, edges are antialiased over one pixel). Split sizes: unlabeled
10,000 (labels None), train 2,000, test 1,000, class-balanced in every block of 1,000.
Deterministic: each block of 1,000 images has its own seed derived from the split, so
splits never share images and a split is the same on every run (across CPUs, float32
sin/cos may differ in the last bit and move a rare edge pixel by one level). Mean/std
are computed from the first 1,000 unlabeled images at the requested size.

kNN (k=20, Euclidean) train -> test accuracy before any pretraining (chance 0.10),
from benchmarks/shapes10_knn.py (random-init: mean of 3 seeds, eval mode):

=======  ===========  ==========  ==========================
size     mean colour  raw pixels  random-init shufflenetv2
=======  ===========  ==========  ==========================
32x32    0.180        0.226       0.151
64x64    0.182        0.187       0.138
=======  ===========  ==========  ==========================

Generating all three splits (13,000 images) took 0.4 s at 32x32 and 1.6 s at 64x64 on
a 2-core VM when it was quiet, and 1.4-1.9 s and 3.8-5.9 s while other jobs loaded it
(load average 6-11; see benchmarks/results/shapes10_knn.md).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from edgessl.data.arrays import DATASETS, RGB, SplitArrays, channel_stats, check_split

NATIVE_SIZE = 64
SPLIT_SIZES = {"unlabeled": 10_000, "train": 2_000, "test": 1_000}
SPLIT_IDS = {"unlabeled": 0, "train": 1, "test": 2}  # part of each block's seed
SEED = 20_111  # the dataset's identity: change it and every image changes
BLOCK = 1_000  # images per seeded block, class-balanced
# Colours come from a palette rather than all of RGB: continuous random colours make each
# image's colour pair an instance fingerprint that contrastive methods learn instead of
# shape. A minimal SimCLR (shufflenetv2, kornia crops + strong colour jitter, 10 epochs on
# 4,000 unlabeled images at 32x32, CPU) moved kNN from 0.139 to 0.146 with uniform RGB
# colours, and from 0.133 to 0.259 with this palette.
PALETTE = np.array(
    [
        (0.90, 0.10, 0.10),  # red
        (0.10, 0.75, 0.10),  # green
        (0.15, 0.25, 0.95),  # blue
        (0.95, 0.85, 0.10),  # yellow
        (0.10, 0.85, 0.90),  # cyan
        (0.85, 0.20, 0.85),  # magenta
        (0.97, 0.97, 0.97),  # white
        (0.08, 0.08, 0.08),  # black
    ],
    dtype=np.float32,
)
MIN_BRIGHTNESS = 0.6  # each colour is dimmed by a random factor in [0.6, 1]
NOISE_STD = 0.04
LIGHTING = 0.25  # peak-to-peak amplitude of the multiplicative lighting gradient

# A class is a signed distance (negative inside) in its own frame's units.
SignedDistance = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _disc(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.hypot(u, v) - 1.0


def _square(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.maximum(np.abs(u), np.abs(v)) - 0.8


def _triangle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    # Equilateral, circumradius 1.1: the largest distance along its three edge normals.
    edges = [u * np.cos(a) + v * np.sin(a) for a in (np.pi / 2, np.pi * 7 / 6, np.pi * 11 / 6)]
    return np.maximum(np.maximum(edges[0], edges[1]), edges[2]) - 0.55


def _ring(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.abs(np.hypot(u, v) - 0.75) - 0.25


def _cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    au, av = np.abs(u), np.abs(v)
    return np.minimum(np.maximum(au - 1.0, av - 0.3), np.maximum(au - 0.3, av - 1.0))


def _star(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    # Five points: the radius follows a triangle wave of the angle between 0.45 and 1.1.
    phase = (np.arctan2(v, u) * (5 / (2 * np.pi))) % 1.0
    return np.hypot(u, v) - (0.45 + 0.65 * np.abs(2 * phase - 1))


def _band(t: np.ndarray) -> np.ndarray:
    """Distance to the nearest stripe of a unit-period square wave (negative inside)."""
    return np.abs((t % 1.0) - 0.5) - 0.25


def _stripes(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return _band(u)


def _checker(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    a, b = _band(u), _band(v)
    return np.sign(a * b) * np.minimum(np.abs(a), np.abs(b))


def _dots(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.hypot((u % 1.0) - 0.5, (v % 1.0) - 0.5) - 0.25


def _halves(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return u


@dataclass(frozen=True)
class ClassSpec:
    """How one class is drawn: its signed distance and the frame it lives in.

    ``object`` frames are centred on a shape whose unit is its radius (scale 0.14..0.32
    of the image side); ``texture`` frames cover the image with unit = one period
    (0.12..0.25 of the side), centred near the middle so that ``halves`` shows both colours.
    """

    distance: SignedDistance
    frame: str  # "object" | "texture"


CLASSES: dict[str, ClassSpec] = {
    "disc": ClassSpec(_disc, "object"),
    "square": ClassSpec(_square, "object"),
    "triangle": ClassSpec(_triangle, "object"),
    "ring": ClassSpec(_ring, "object"),
    "cross": ClassSpec(_cross, "object"),
    "star": ClassSpec(_star, "object"),
    "stripes": ClassSpec(_stripes, "texture"),
    "checker": ClassSpec(_checker, "texture"),
    "dots": ClassSpec(_dots, "texture"),
    "halves": ClassSpec(_halves, "texture"),
}
CLASS_NAMES = tuple(CLASSES)

# frame -> (unit range, centre range) as fractions of the image side
FRAMES = {"object": ((0.14, 0.32), (0.3, 0.7)), "texture": ((0.12, 0.25), (0.35, 0.65))}


def _colours(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Foreground and background RGB per sample: two different palette colours, each dimmed
    by its own factor in [``MIN_BRIGHTNESS``, 1]."""
    foreground = rng.integers(0, len(PALETTE), n)
    background = (foreground + rng.integers(1, len(PALETTE), n)) % len(PALETTE)  # never the same colour
    brightness = rng.uniform(MIN_BRIGHTNESS, 1.0, (2, n, 1)).astype(np.float32)
    return PALETTE[foreground] * brightness[0], PALETTE[background] * brightness[1]


def _masks(rng: np.random.Generator, labels: np.ndarray, size: int) -> np.ndarray:
    """Antialiased foreground coverage in [0, 1], ``(n, size, size)`` float32."""
    n = len(labels)
    pixel = (np.arange(size, dtype=np.float32) + 0.5) / size  # pixel centres in [0, 1]
    masks = np.empty((n, size, size), dtype=np.float32)
    for label, spec in enumerate(CLASSES.values()):
        index = np.flatnonzero(labels == label)
        if not len(index):
            continue
        (unit_lo, unit_hi), (centre_lo, centre_hi) = FRAMES[spec.frame]
        count = len(index)
        unit = rng.uniform(unit_lo, unit_hi, count).astype(np.float32)[:, None, None]
        cx, cy = rng.uniform(centre_lo, centre_hi, (2, count)).astype(np.float32)[..., None, None]
        angle = rng.uniform(0, 2 * np.pi, count).astype(np.float32)[:, None, None]
        dx, dy = pixel[None, None, :] - cx, pixel[None, :, None] - cy
        u = (np.cos(angle) * dx + np.sin(angle) * dy) / unit
        v = (np.cos(angle) * dy - np.sin(angle) * dx) / unit
        pixels_per_unit = unit * size
        masks[index] = np.clip(0.5 - spec.distance(u, v) * pixels_per_unit, 0.0, 1.0)
    return masks


def _lighting(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """A smooth multiplicative gradient ``(n, 1, size, size)`` in a random direction."""
    pixel = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
    direction = rng.uniform(0, 2 * np.pi, n).astype(np.float32)[:, None, None]
    ramp = np.cos(direction) * pixel[None, None, :] + np.sin(direction) * pixel[None, :, None]
    return (1.0 + LIGHTING * ramp)[:, None]


def generate_block(seed: tuple[int, ...], count: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` class-balanced images ``(count, 3, size, size)`` uint8 and their labels."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(count) % len(CLASSES)).astype(np.int64)
    foreground, background = _colours(rng, count)
    foreground, background = foreground * 255, background * 255
    masks = _masks(rng, labels, size)[:, None]
    # In place, in 0..255 units: each full-size float pass costs as much as drawing the shapes.
    images = np.multiply((foreground - background)[:, :, None, None], masks)
    images += background[:, :, None, None]
    images *= _lighting(rng, count, size)
    noise = rng.standard_normal((count, 1, size, size), dtype=np.float32)  # grey, sensor-like
    noise *= NOISE_STD * 255
    noise += 0.5  # so that the truncating cast below rounds
    images += noise
    np.clip(images, 0.0, 255.0, out=images)
    return images.astype(np.uint8), labels


def generate_split(split: str, size: int = NATIVE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """All images and labels of a split, block by block (bounded memory, reproducible)."""
    total = SPLIT_SIZES[split]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:  # numpy releases the GIL
        blocks = list(
            pool.map(
                lambda start: generate_block(
                    (SEED, SPLIT_IDS[split], start // BLOCK), min(BLOCK, total - start), size
                ),
                range(0, total, BLOCK),
            )
        )
    return np.concatenate([images for images, _ in blocks]), np.concatenate([labels for _, labels in blocks])


@lru_cache(maxsize=8)
def shapes10_stats(size: int) -> tuple[RGB, RGB]:
    """Mean/std of the first unlabeled block at ``size``: one normalisation for every split."""
    images, _ = generate_block((SEED, SPLIT_IDS["unlabeled"], 0), BLOCK, size)
    return channel_stats(images)


@DATASETS.register("shapes10")
def read_shapes10(split: str, root: Path | None, image_size: int | None) -> SplitArrays:
    """One split of shapes10 at ``image_size`` (default 64); ``root`` is unused (no files)."""
    check_split("shapes10", split, SPLIT_SIZES)
    size = image_size or NATIVE_SIZE
    images, labels = generate_split(split, size)
    mean, std = shapes10_stats(size)
    return SplitArrays(
        "shapes10", split, images, None if split == "unlabeled" else labels, CLASS_NAMES, mean, std
    )
