"""The decode-once cache: exact pixels, built by worker processes, resumed after a kill, shared,
self-checking."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgessl.data import cache_build, read_split_arrays
from edgessl.data.arrays import channel_stats
from edgessl.data.decode import decode_image
from edgessl.data.folder_layout import discover
from edgessl.data.image_folder import FolderSource

SIZE = 24


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch) -> Path:
    root = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("EDGESSL_CACHE", str(root))
    return root / "images"


def only_cache_folder(private_cache: Path) -> Path:
    (folder,) = [p for p in private_cache.iterdir() if p.is_dir()]
    return folder


def test_worker_processes_write_exactly_what_one_decode_gives(cifar10_small, monkeypatch) -> None:
    """1,000 files in chunks of 64 over 2 forkserver workers: every row equals decoding its file alone."""
    monkeypatch.setattr(cache_build, "CHUNK_ROWS", 64)
    monkeypatch.setattr(cache_build, "IN_PROCESS_ROWS", 0)
    monkeypatch.setenv("EDGESSL_DECODE_WORKERS", "2")
    train = read_split_arrays(str(cifar10_small), "train", image_size=SIZE)
    test = read_split_arrays(str(cifar10_small), "test", image_size=SIZE)
    assert isinstance(train.images, np.memmap) and train.cache.built and not test.cache.built
    layout = discover(cifar10_small.resolve())
    for split, arrays in (("train", train), ("test", test)):
        names = [name for name, _ in layout.labelled[split]]
        expected = np.stack([decode_image(str(cifar10_small / name), SIZE) for name in names])
        assert np.array_equal(arrays.images, expected)
        assert arrays.labels.tolist() == [label for _, label in layout.labelled[split]]


def test_a_killed_build_resumes_to_the_same_bytes(
    cifar10_small, private_cache, tmp_path, monkeypatch
) -> None:
    """A build SIGKILLed after 3 chunks keeps them; the next load decodes only the rest."""
    killer = (
        "import os, signal, sys\n"
        "from edgessl.data import cache_build, read_split_arrays\n"
        "cache_build.CHUNK_ROWS = 100\n"
        "real, calls = cache_build.decode_chunk, []\n"
        "def dying(rows):\n"
        "    if len(calls) == 3: os.kill(os.getpid(), signal.SIGKILL)\n"
        "    calls.append(rows)\n"
        "    return real(rows)\n"
        "cache_build.decode_chunk = dying\n"
        f"read_split_arrays({str(cifar10_small)!r}, 'train', image_size={SIZE})\n"
    )
    env = {**os.environ, "EDGESSL_DECODE_WORKERS": "1"}
    died = subprocess.run(
        [sys.executable, "-c", killer], env=env, capture_output=True, text=True, check=False
    )
    assert died.returncode == -9, died.stderr
    (partial,) = private_cache.glob("*.partial")
    assert len((partial / "done.jsonl").read_text().splitlines()) == 3
    resumed = read_split_arrays(str(cifar10_small), "train", image_size=SIZE)
    assert resumed.cache.built and resumed.cache.resumed_rows == 300
    assert not list(private_cache.glob("*.partial"))
    monkeypatch.setenv("EDGESSL_CACHE", str(tmp_path / "fresh"))
    fresh = read_split_arrays(str(cifar10_small), "train", image_size=SIZE)
    assert fresh.cache.resumed_rows == 0 and np.array_equal(resumed.images, fresh.images)
    assert resumed.mean == fresh.mean and resumed.std == fresh.std


def test_processes_racing_to_build_share_one_cache(cifar10_small, private_cache) -> None:
    """Three processes start at once: one builds, the others wait on the lock and map its result."""
    script = (
        "import json, sys\n"
        "from edgessl.data import read_split_arrays\n"
        f"split = read_split_arrays({str(cifar10_small)!r}, 'unlabeled', image_size={SIZE})\n"
        "print(json.dumps([split.cache.built, int(split.images.sum()), len(split)]))\n"
    )
    racers = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) for _ in range(3)
    ]
    results = [json.loads(racer.communicate()[0]) for racer in racers]
    assert all(racer.returncode == 0 for racer in racers)
    assert sorted(built for built, _, _ in results) == [False, False, True]
    assert len({(total, count) for _, total, count in results}) == 1 and results[0][2] == 800
    assert len([p for p in private_cache.iterdir() if p.is_dir()]) == 1


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda folder: os.truncate(folder / "images.u8", 1000), id="truncated"),
        pytest.param(lambda folder: os.truncate(folder / "images.u8", 0), id="images-empty"),
        pytest.param(lambda folder: os.truncate(folder / "labels.npy", 0), id="labels-empty"),
        pytest.param(lambda folder: (folder / "index.json").write_text("{not json"), id="index"),
        pytest.param(lambda folder: (folder / "labels.npy").unlink(), id="labels-missing"),
        pytest.param(lambda folder: zero_last_row(folder), id="zeroed-last-row"),
    ],
)
def test_a_damaged_cache_is_rebuilt_not_read(cifar10_small, private_cache, damage) -> None:
    first = read_split_arrays(str(cifar10_small), "test", image_size=SIZE)
    expected = np.array(first.images)
    del first
    damage(only_cache_folder(private_cache))
    with pytest.warns(UserWarning, match="is damaged: rebuilding it"):
        again = read_split_arrays(str(cifar10_small), "test", image_size=SIZE)
    assert again.cache.built and np.array_equal(again.images, expected)


def zero_last_row(folder: Path) -> None:
    shape = tuple(json.loads((folder / "index.json").read_text())["shape"])
    images = np.memmap(folder / "images.u8", dtype=np.uint8, mode="r+", shape=shape)
    images[-1] = 0
    images.flush()


def test_unreadable_rows_are_dropped_and_every_split_stays_a_contiguous_view(tmp_path) -> None:
    """Bad files in the middle of the train rows and in unlabeled/: the kept rows move down in order."""
    from PIL import Image

    rng = np.random.default_rng(1)
    pixels = {}
    for split, count in (("train", 5), ("test", 2)):
        for name in ("a", "b"):
            for index in range(count):
                path = tmp_path / split / name / f"{index}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                pixels[path] = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
                Image.fromarray(pixels[path]).save(path)
    (tmp_path / "unlabeled").mkdir()
    for index in range(3):
        path = tmp_path / "unlabeled" / f"{index}.png"
        pixels[path] = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        Image.fromarray(pixels[path]).save(path)
    for bad in (tmp_path / "train" / "a" / "2.png", tmp_path / "unlabeled" / "0.png"):
        bad.write_bytes(b"broken")
        del pixels[bad]
    with pytest.warns(UserWarning, match="skipped 2 unreadable"):
        splits = {
            name: read_split_arrays(str(tmp_path), name, image_size=8) for name in cache_build.STATS_SPLITS
        }
    source = FolderSource(tmp_path.resolve(), discover(tmp_path.resolve()))
    assert len(splits["train"]) == 9 and len(splits["unlabeled"]) == 2
    for name, arrays in splits.items():
        files = [tmp_path / f for f in source.plan().names]
        wanted = [f for f in files if f in pixels and f.relative_to(tmp_path).parts[0] == name]
        assert np.array_equal(arrays.images, np.stack([pixels[f].transpose(2, 0, 1) for f in wanted]))
        assert arrays.images.base is not None  # a view of the one map, not a copy
    both = np.concatenate([splits["train"].images, splits["unlabeled"].images])
    assert np.allclose(splits["train"].mean, channel_stats(both)[0], atol=1e-12)


def test_kept_runs_and_merged_ranges() -> None:
    keep = np.array([1, 1, 0, 1, 0, 0, 1, 1, 1], dtype=bool)
    assert cache_build.kept_runs(keep) == [(0, 2), (3, 4), (6, 9)]
    assert cache_build.merged([(5, 9), (0, 3), (0, 3), (2, 4), (9, 9)]) == [(0, 4), (5, 9)]
