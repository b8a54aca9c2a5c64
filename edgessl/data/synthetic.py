"""``shapes10``: a built-in, procedurally generated 10-class dataset (no files, no network).

Classes: six upright filled shapes (disc, square, triangle, ring, cross, star), three
textures (stripes, checker, dots) and one edge layout (halves: two tones split by a line).
A class is a shape or a structure; everything else is a nuisance that SimCLR-style
augmentations remove, so a self-supervised encoder has a reason to learn the class:

* colour: each image is one random hue at a random saturation (0..0.8); foreground and
  background are a dark and a light level of it (0.1..0.5, and 0.3..0.5 brighter), in
  either order, so neither hue nor brightness says anything about the class (colour
  jitter and grayscale views vary exactly these);
* position and scale: a shape's centre is anywhere in the middle half of the image and
  its size varies by 1.75x; a texture's phase and period vary (random-resized crops vary
  these);
* a smooth lighting gradient and grey pixel noise.

Shapes are upright and not rotated: rotation is not among the augmentations' invariances,
so a rotated copy would be a different instance to the encoder, not the same class.
(Textures and the ``halves`` edge take any orientation: every crop of them shows their class.)

The design was chosen with short 1-thread SimCLR runs (the demo's recipe, see
``edgessl/demo.py``): the previous design (eight-colour palette, random rotation, two
independent colours per image) let the encoder match instances by their background
colour, and its kNN accuracy stayed within a few points of raw pixels.

Native size 32x32 (the demo's size); any ``image_size`` is generated at that size
directly (geometry is relative to the image, edges are antialiased over one pixel).
Split sizes: unlabeled 10,000 (labels None), train 2,000, test 1,000, class-balanced in
every block of 1,000. Deterministic: each block of 1,000 images has its own seed derived
from the split, so splits never share images and a split is the same on every run
(across CPUs, float32 sin/cos may differ in the last bit and move a rare edge pixel by
one level). Mean/std are computed from the first 1,000 unlabeled images at the requested
size. How much raw pixels, random-init features and the demo's pretraining solve:
``benchmarks/shapes10_knn.py`` (results in ``benchmarks/results/shapes10_knn.md``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from edgessl.data.arrays import RGB, SplitArrays, channel_stats, check_split, register_dataset

NATIVE_SIZE = 32
SPLIT_SIZES = {"unlabeled": 10_000, "train": 2_000, "test": 1_000}
SPLIT_IDS = {"unlabeled": 0, "train": 1, "test": 2}  # part of each block's seed
SEED = 20_111  # the dataset's identity: change it and every image changes
BLOCK = 1_000  # images per seeded block, class-balanced
MAX_SATURATION = 0.8  # each image's tint: saturation uniform in [0, 0.8], any hue
DARK = (0.1, 0.5)  # the darker of the two brightness levels (HSV value)
CONTRAST = (0.3, 0.5)  # how much brighter the lighter level is
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

    ``object`` frames are upright and centred on a shape whose unit is its radius (0.2..0.35
    of the image side); ``texture`` frames cover the image at any angle with unit = one
    period (0.3..0.5 of the side), centred near the middle so that ``halves`` shows both tones.
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

# frame -> (unit range, centre range as fractions of the image side, rotated)
FRAMES = {"object": ((0.2, 0.35), (0.25, 0.75), False), "texture": ((0.3, 0.5), (0.35, 0.65), True)}


def _hsv_to_rgb(hue: np.ndarray, saturation: np.ndarray, value: np.ndarray) -> np.ndarray:
    """``(n, 3)`` RGB in [0, 1] from HSV arrays ``(n,)`` (the standard hexcone formula)."""
    sector = np.floor(hue * 6).astype(np.int64) % 6
    fraction = hue * 6 - np.floor(hue * 6)
    p, q, t = (
        value * (1 - saturation),
        value * (1 - fraction * saturation),
        value * (1 - (1 - fraction) * saturation),
    )
    table = np.stack(
        [
            np.stack(rgb, axis=-1)
            for rgb in (
                (value, t, p),
                (q, value, p),
                (p, value, t),
                (p, q, value),
                (t, p, value),
                (value, p, q),
            )
        ]
    )
    return table[sector, np.arange(len(hue))].astype(np.float32)


def _colours(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Foreground and background RGB per sample: one random tint, a dark and a light level.

    Which of the two is the foreground is a coin flip, so brightness order is no cue either.
    """
    hue = rng.uniform(0.0, 1.0, n)
    saturation = rng.uniform(0.0, MAX_SATURATION, n)
    dark = rng.uniform(*DARK, n)
    light = dark + rng.uniform(*CONTRAST, n)
    light_foreground = rng.random(n) < 0.5
    foreground = np.where(light_foreground, light, dark)
    background = np.where(light_foreground, dark, light)
    return _hsv_to_rgb(hue, saturation, foreground), _hsv_to_rgb(hue, saturation, background)


def _masks(rng: np.random.Generator, labels: np.ndarray, size: int) -> np.ndarray:
    """Antialiased foreground coverage in [0, 1], ``(n, size, size)`` float32."""
    n = len(labels)
    pixel = (np.arange(size, dtype=np.float32) + 0.5) / size  # pixel centres in [0, 1]
    masks = np.empty((n, size, size), dtype=np.float32)
    for label, spec in enumerate(CLASSES.values()):
        index = np.flatnonzero(labels == label)
        if not len(index):
            continue
        (unit_lo, unit_hi), (centre_lo, centre_hi), rotated = FRAMES[spec.frame]
        count = len(index)
        unit = rng.uniform(unit_lo, unit_hi, count).astype(np.float32)[:, None, None]
        cx, cy = rng.uniform(centre_lo, centre_hi, (2, count)).astype(np.float32)[..., None, None]
        angle = rng.uniform(0, 2 * np.pi, count).astype(np.float32)[:, None, None] * rotated
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


@register_dataset("shapes10", NATIVE_SIZE)
def read_shapes10(split: str, root: Path | None, image_size: int | None) -> SplitArrays:
    """One split of shapes10 at ``image_size`` (default 64); ``root`` is unused (no files)."""
    check_split("shapes10", split, SPLIT_SIZES)
    size = image_size or NATIVE_SIZE
    images, labels = generate_split(split, size)
    mean, std = shapes10_stats(size)
    return SplitArrays(
        "shapes10", split, images, None if split == "unlabeled" else labels, CLASS_NAMES, mean, std
    )
