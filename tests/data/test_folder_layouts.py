"""Image-folder layouts with real CIFAR-10 JPEGs: which files make each split, and the statistics.

Each test builds a folder of real files in one layout and counts images per split; the
pretext split and the normalisation statistics must never include a test image.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from edgessl.data import read_split_arrays
from edgessl.data.arrays import channel_stats
from edgessl.data.reading import split_source
from edgessl.errors import DataError

CLASSES = ["airplane", "cat", "ship"]


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch) -> None:
    monkeypatch.setenv("EDGESSL_CACHE", str(tmp_path_factory.mktemp("cache")))


def build(source: Path, root: Path, counts: dict[str, int]) -> dict[str, list[Path]]:
    """``root/<split>/<class>/`` with ``counts[split]`` distinct real JPEGs per class; the files per split."""
    written: dict[str, list[Path]] = {}
    for name in CLASSES:
        files = iter(sorted((source / name).iterdir()))
        for split, count in counts.items():
            for _ in range(count):
                path = next(files)
                # unlabeled/ holds loose files (any depth works); class-prefixed so names stay distinct
                target = (
                    root / split / (f"{name}_{path.name}" if split == "unlabeled" else f"{name}/{path.name}")
                )
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, target)
                written.setdefault(split, []).append(target)
    return written


def read(root: Path, split: str):
    return read_split_arrays(str(root), split, image_size=32)


def sizes(root: Path) -> dict[str, int]:
    return {split: len(read(root, split)) for split in ("unlabeled", "train", "test")}


def test_train_and_val_val_serves_as_test_and_pretext_is_train(cifar10_small, tmp_path) -> None:
    build(cifar10_small, tmp_path, {"train": 4, "val": 2})
    assert sizes(tmp_path) == {"unlabeled": 12, "train": 12, "test": 6}
    train, test, unlabeled = read(tmp_path, "train"), read(tmp_path, "test"), read(tmp_path, "unlabeled")
    assert train.class_names == tuple(CLASSES)  # never ("train", "val")
    assert np.bincount(test.labels).tolist() == [2, 2, 2] and unlabeled.labels is None
    assert np.array_equal(unlabeled.images, train.images)
    # Statistics of what training and the kNN bank see: the train images, not val.
    assert np.allclose((train.mean, train.std), channel_stats(train.images), atol=1e-12)
    assert test.mean == train.mean
    source = split_source(str(tmp_path), "test")
    assert (
        source == f"the test split: 6 files from {tmp_path / 'val'}/ "
        "(val/ serves as the test split: there is no test/)"
    )
    assert split_source(str(tmp_path), "train") == f"the train split: 12 files from {tmp_path / 'train'}/"
    assert "without labels" in split_source(str(tmp_path), "unlabeled")


def test_train_val_test_uses_test_and_ignores_val(cifar10_small, tmp_path) -> None:
    written = build(cifar10_small, tmp_path, {"train": 3, "val": 2, "test": 1})
    assert sizes(tmp_path) == {"unlabeled": 9, "train": 9, "test": 3}
    test = read(tmp_path, "test")
    from PIL import Image

    first_test = min(written["test"])  # airplane's test file
    assert np.array_equal(
        test.images[0], np.asarray(Image.open(first_test).convert("RGB")).transpose(2, 0, 1)
    )
    assert "val/ is not read" in split_source(str(tmp_path), "train")


def test_unlabeled_folder_is_the_pretext_split_and_joins_the_statistics(cifar10_small, tmp_path) -> None:
    build(cifar10_small, tmp_path, {"train": 2, "test": 2, "unlabeled": 3})
    assert sizes(tmp_path) == {"unlabeled": 9, "train": 6, "test": 6}
    train, test, unlabeled = read(tmp_path, "train"), read(tmp_path, "test"), read(tmp_path, "unlabeled")
    seen = np.concatenate([unlabeled.images, train.images])
    assert np.allclose((train.mean, train.std), channel_stats(seen), atol=1e-12)
    assert not np.allclose(train.mean, channel_stats(np.concatenate([seen, test.images]))[0], atol=1e-6)


def test_train_folder_alone_is_split_by_hash(cifar10_small, tmp_path) -> None:
    build(cifar10_small, tmp_path, {"train": 10})
    assert sizes(tmp_path) == {"unlabeled": 24, "train": 24, "test": 6}
    assert read(tmp_path, "train").class_names == tuple(CLASSES)


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ({"train/a.jpg", "test/cat/b.jpg"}, r"train holds no class folders"),
        ({"train/cat/a.jpg", "val/b.jpg"}, r"val holds no class folders"),
        ({"cat/a.jpg", "dog/b.jpg", "test/c.jpg"}, r"test holds no class folders"),
        ({"val/cat/a.jpg", "test/cat/b.jpg"}, r"has val/, test/ but no train/"),
        ({"train/cat/a.jpg", "test/cat/b.jpg", "dog/c.jpg"}, r"class folders beside them \(dog/\)"),
    ],
)
def test_split_folders_are_never_read_as_classes(cifar10_small, tmp_path, layout, message) -> None:
    image = next((cifar10_small / "cat").iterdir())
    for relative in layout:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(image, tmp_path / relative)
    for split in ("unlabeled", "train", "test"):
        with pytest.raises(DataError, match=message) as caught:
            read(tmp_path, split)
        assert "\n" not in str(caught.value)


def test_registered_datasets_state_their_splits() -> None:
    assert split_source("shapes10", "test") == "shapes10's test split"
    assert split_source("cifar10", "train") == "cifar10's train split"
