"""Shared fixtures: real images from ../shared/data, extracted once and cached."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
STL10_MINI = SHARED_DATA / "stl10-mini"
CIFAR10_ZIP = SHARED_DATA / "cifar10" / "train.zip"
CACHE = Path(os.environ.get("EDGESSL_TEST_CACHE", Path.home() / ".cache" / "edgessl-tests"))


@pytest.fixture(scope="session")
def stl10_mini_root() -> Path:
    """Folder holding the real STL-10 subset's ``stl10_binary/``."""
    if not (STL10_MINI / "stl10_binary").is_dir():
        pytest.skip(
            f"real STL-10 subset not found at {STL10_MINI} (only present beside the project checkout)"
        )
    return STL10_MINI


def extract_cifar10(per_class: int) -> Path:
    """ImageFolder ``root/<class>/*.jpg`` with the first ``per_class`` CIFAR-10 images of each class."""
    if not CIFAR10_ZIP.is_file():
        pytest.skip(f"CIFAR-10 images not found at {CIFAR10_ZIP} (only present beside the project checkout)")
    root = CACHE / f"cifar10-{per_class}"
    done = root / ".complete"
    if done.is_file():
        return root
    taken: dict[str, int] = {}
    with zipfile.ZipFile(CIFAR10_ZIP) as archive:
        for member in sorted(archive.namelist()):
            parts = member.split("/")
            if len(parts) != 3 or not parts[2].endswith(".jpg"):
                continue
            label = parts[1]
            if taken.get(label, 0) >= per_class:
                continue
            taken[label] = taken.get(label, 0) + 1
            target = root / label / parts[2]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(member))
    done.touch()
    return root


@pytest.fixture(scope="session")
def cifar10_small() -> Path:
    """100 real CIFAR-10 images per class (1,000 in all) as an image folder."""
    return extract_cifar10(100)


@pytest.fixture(scope="session")
def cifar10_medium() -> Path:
    """500 real CIFAR-10 images per class (5,000 in all), for learning-signal tests."""
    return extract_cifar10(500)
