"""Image folders: layouts, deterministic split, the uint8 cache and unreadable files."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgessl.data import decode, read_split_arrays
from edgessl.data.arrays import channel_stats
from edgessl.errors import DataError

CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch) -> Path:
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("EDGESSL_CACHE", str(cache))
    return cache / "images"


def copy_subset(source: Path, target: Path, per_class: int) -> Path:
    for name in CIFAR_CLASSES:
        (target / name).mkdir(parents=True)
        for path in sorted((source / name).iterdir())[:per_class]:
            shutil.copy(path, target / name / path.name)
    return target


def test_cifar_folder_exact_split_counts(cifar10_small) -> None:
    train = read_split_arrays(str(cifar10_small), "train", image_size=32)
    test = read_split_arrays(str(cifar10_small), "test", image_size=32)
    unlabeled = read_split_arrays(str(cifar10_small), "unlabeled", image_size=32)
    assert (len(train), len(test), len(unlabeled)) == (800, 200, 800)
    assert np.bincount(train.labels).tolist() == [80] * 10 and np.bincount(test.labels).tolist() == [20] * 10
    assert unlabeled.labels is None and train.class_names == tuple(CIFAR_CLASSES)
    assert train.images.shape == (800, 3, 32, 32) and train.skipped == ()
    # 32x32 JPEGs at their own size: pixels are exactly what PIL decodes.
    first = sorted((cifar10_small / "airplane").iterdir())
    in_train = next(p for p in first if p.name not in set(_hash_test_names(first)))
    expected = np.asarray(Image.open(in_train).convert("RGB")).transpose(2, 0, 1)
    assert np.array_equal(train.images[0], expected)
    # The pretext split is the train split (no test image), and so are the statistics.
    assert np.array_equal(unlabeled.images, train.images)
    assert train.mean == test.mean == unlabeled.mean and train.std == test.std
    assert np.allclose((train.mean, train.std), channel_stats(train.images), atol=1e-12)
    assert not np.allclose(
        train.mean, channel_stats(np.concatenate([train.images, test.images]))[0], atol=1e-6
    )


def _hash_test_names(files: list[Path]) -> list[str]:
    """The documented rule, computed independently: 20% with the smallest SHA-1 of the name."""
    ranked = sorted(files, key=lambda p: hashlib.sha1(p.name.encode()).hexdigest())
    return [p.name for p in ranked[: max(1, round(len(files) * 0.2))]]


def test_corrupt_files_are_skipped_and_reported(cifar10_small, tmp_path) -> None:
    root = copy_subset(cifar10_small, tmp_path / "folder", per_class=10)
    (root / "cat" / "broken.jpg").write_bytes(b"not an image at all")
    good = (root / "dog").iterdir().__next__().read_bytes()
    (root / "dog" / "cut.JPG").write_bytes(good[: len(good) // 3])  # truncated, upper-case extension
    (root / "dog" / "notes.txt").write_text("ignored: not an image extension")
    with pytest.warns(UserWarning, match="skipped 2 unreadable image") as caught:
        train = read_split_arrays(str(root), "train", image_size=16)
    message = str(caught[0].message)
    assert str(root / "cat" / "broken.jpg") in message and str(root / "dog" / "cut.JPG") in message
    assert len(train.skipped) == 2
    with pytest.warns(UserWarning):
        test = read_split_arrays(str(root), "test", image_size=16)
    # 11 files in cat and dog: 2 to test each (round(2.2)); the unreadable one is dropped from its split.
    per_class = {name: (sorted((root / name).glob("*.[jJ][pP][gG]"))) for name in ("cat", "dog")}
    lost_from_test = sum(
        1
        for name, bad in (("cat", "broken.jpg"), ("dog", "cut.JPG"))
        if bad in _hash_test_names(per_class[name])
    )
    assert len(train) + len(test) == 100
    assert len(test) == 20 - lost_from_test


def test_decoded_once_then_read_from_cache(cifar10_small, tmp_path, private_cache, monkeypatch) -> None:
    root = copy_subset(cifar10_small, tmp_path / "folder", per_class=3)
    first = read_split_arrays(str(root), "train", image_size=24)
    assert len([p for p in private_cache.iterdir() if p.is_dir()]) == 1
    assert first.cache is not None and first.cache.built

    def fail(path: Path, size: int) -> np.ndarray:
        raise AssertionError(f"decoded {path} again instead of reading the cache")

    monkeypatch.setattr(decode, "decode_image", fail)
    again = read_split_arrays(str(root), "train", image_size=24)
    assert np.array_equal(first.images, again.images) and np.array_equal(first.labels, again.labels)
    assert again.cache is not None and not again.cache.built and isinstance(again.images, np.memmap)
    # A changed file is a new key: decoded again (here: every file fails, so a DataError).
    target = next((root / "cat").iterdir())
    os.utime(target, ns=(target.stat().st_atime_ns, target.stat().st_mtime_ns + 10**9))
    with pytest.raises(DataError, match="none of the 30 images"):
        read_split_arrays(str(root), "train", image_size=24)


def test_presplit_layout_and_unlabeled_folder_with_exact_pixels(tmp_path) -> None:
    rng = np.random.default_rng(0)
    written = {}
    for split, per_class in (("train", 3), ("test", 2)):
        for name in ("b_square", "a_round"):
            for index in range(per_class):
                pixels = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
                path = tmp_path / split / name / f"{index}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(pixels).save(path)
                written[path.relative_to(tmp_path).as_posix()] = pixels
    wide = rng.integers(0, 256, (20, 40, 3), dtype=np.uint8)  # 20 rows, 40 columns
    (tmp_path / "unlabeled" / "deeper").mkdir(parents=True)
    Image.fromarray(wide).save(tmp_path / "unlabeled" / "deeper" / "wide.PNG")
    train = read_split_arrays(str(tmp_path), "train", image_size=20)
    test = read_split_arrays(str(tmp_path), "test", image_size=20)
    unlabeled = read_split_arrays(str(tmp_path), "unlabeled", image_size=20)
    assert train.class_names == ("a_round", "b_square")
    assert (len(train), len(test), len(unlabeled)) == (6, 4, 1)
    assert train.labels.tolist() == [0, 0, 0, 1, 1, 1] and test.labels.tolist() == [0, 0, 1, 1]
    assert np.array_equal(train.images[3], written["train/b_square/0.png"].transpose(2, 0, 1))
    # Non-square: the centre square is kept (columns 10..29), at its own size unchanged.
    assert np.array_equal(unlabeled.images[0], wide[:, 10:30].transpose(2, 0, 1))


def test_default_size_is_96(tmp_path) -> None:
    (tmp_path / "only").mkdir()
    for index in range(2):
        Image.new("RGB", (10, 10), (index * 200, 0, 0)).save(tmp_path / "only" / f"{index}.bmp")
    split = read_split_arrays(str(tmp_path), "train")
    assert split.images.shape == (1, 3, 96, 96)


def test_folder_without_classes_serves_only_unlabeled(tmp_path) -> None:
    for index in range(3):
        Image.new("RGB", (12, 12), (0, index * 100, 0)).save(tmp_path / f"{index}.webp", lossless=True)
    unlabeled = read_split_arrays(str(tmp_path), "unlabeled", image_size=12)
    assert unlabeled.labels is None and unlabeled.images[:, 1, 0, 0].tolist() == [0, 100, 200]
    with pytest.raises(DataError, match="'train' split of image folder .* has no readable images"):
        read_split_arrays(str(tmp_path), "train", image_size=12)


def test_empty_and_missing_folders(tmp_path) -> None:
    (tmp_path / "empty" / "some_class").mkdir(parents=True)
    with pytest.raises(DataError, match="no images found under") as caught:
        read_split_arrays(str(tmp_path / "empty"), "train")
    assert "\n" not in str(caught.value)
    with pytest.raises(DataError, match="does not exist"):
        read_split_arrays(str(tmp_path / "missing"), "train")
