"""STL-10 from its official binary layout: files written here, and the real subset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgessl.data import load_dataset, read_split_arrays
from edgessl.data.stl10 import CLASS_NAMES, MEAN, STD
from edgessl.errors import DataError, UnknownNameError

SIDE = 96


def official_bytes(images: np.ndarray) -> bytes:
    """Encode (N, 3, 96, 96) the way the STL-10 files store it, one byte at a time:
    image by image, channel by channel, column by column (column-major)."""
    out = bytearray()
    for image in images.tolist():
        for channel in image:
            for column in range(SIDE):
                out.extend(channel[row][column] for row in range(SIDE))
    return bytes(out)


def decode_pixel(data: bytes, index: int, channel: int, row: int, column: int) -> int:
    """Independent per-pixel decode of the column-major STL-10 layout."""
    return data[index * 3 * SIDE * SIDE + channel * SIDE * SIDE + column * SIDE + row]


def write_stl10(root: Path, counts: dict[str, int], seed: int = 0) -> dict[str, np.ndarray]:
    """``root/stl10_binary`` with random images (and labels 1..10) in the official layout."""
    rng = np.random.default_rng(seed)
    folder = root / "stl10_binary"
    folder.mkdir(parents=True)
    written: dict[str, np.ndarray] = {}
    for part, count in counts.items():
        images = rng.integers(0, 256, (count, 3, SIDE, SIDE), dtype=np.uint8)
        (folder / f"{part}_X.bin").write_bytes(official_bytes(images))
        written[part] = images
        if part != "unlabeled":
            labels = np.arange(count) % 10 + 1
            (folder / f"{part}_y.bin").write_bytes(bytes(labels.tolist()))
            written[f"{part}_labels"] = labels - 1
    (folder / "class_names.txt").write_text("\n".join(CLASS_NAMES) + "\n")
    return written


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    root = tmp_path_factory.mktemp("stl10")
    return root, write_stl10(root, {"train": 4, "test": 3, "unlabeled": 2})


def test_written_files_round_trip_pixel_exact(written) -> None:
    root, arrays = written
    for part in ("train", "test", "unlabeled"):
        split = read_split_arrays("stl10", part, root)
        assert np.array_equal(split.images, arrays[part])
    train = read_split_arrays("stl10", "train", root)
    assert train.labels is not None and train.labels.tolist() == arrays["train_labels"].tolist()
    assert train.class_names == CLASS_NAMES and (train.mean, train.std) == (MEAN, STD)


def test_train_plus_unlabeled_concatenates_and_drops_labels(written) -> None:
    root, arrays = written
    split = read_split_arrays("stl10", "train+unlabeled", root)
    assert split.labels is None
    assert np.array_equal(split.images, np.concatenate([arrays["train"], arrays["unlabeled"]]))
    assert read_split_arrays("stl10", "unlabeled", root).labels is None


def test_root_may_be_the_binary_folder_or_come_from_the_environment(written, monkeypatch) -> None:
    root, arrays = written
    assert np.array_equal(read_split_arrays("stl10", "test", root / "stl10_binary").images, arrays["test"])
    monkeypatch.setenv("EDGESSL_DATA", str(root))
    assert np.array_equal(read_split_arrays("stl10", "test").images, arrays["test"])


def test_a_folder_holding_only_some_files_is_found(tmp_path) -> None:
    arrays = write_stl10(tmp_path, {"test": 2})
    flat = tmp_path / "flat"
    (tmp_path / "stl10_binary").rename(flat)  # any folder name, files directly inside
    split = read_split_arrays("stl10", "test", flat)
    assert np.array_equal(split.images, arrays["test"]) and split.labels.tolist() == [0, 1]


def test_resize_and_torch_wrapping(written) -> None:
    root, arrays = written
    dataset = load_dataset("stl10", "train", root=root, image_size=32)
    assert tuple(dataset.images.shape) == (4, 3, 32, 32)
    # Downscaling averages: each small pixel stays within the range of its 3x3 source block.
    block = arrays["train"][0, 0, :3, :3]
    assert block.min() <= int(dataset.images[0, 0, 0, 0]) <= block.max()


def test_unknown_split(written) -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'unlabeled'"):
        read_split_arrays("stl10", "unlabelled", written[0])


def test_truncated_images_file_names_file_and_expected_size(tmp_path) -> None:
    write_stl10(tmp_path, {"train": 2})
    path = tmp_path / "stl10_binary" / "train_X.bin"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError) as caught:
        read_split_arrays("stl10", "train", tmp_path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and "truncated" in message
    assert "27648-byte" in message and "138,240,000 bytes" in message  # 5,000 full-size images


def test_label_count_must_match_image_count(tmp_path) -> None:
    write_stl10(tmp_path, {"train": 3})
    labels = tmp_path / "stl10_binary" / "train_y.bin"
    labels.write_bytes(labels.read_bytes()[:2])
    with pytest.raises(DataError, match="holds 2 labels but its images file holds 3 images"):
        read_split_arrays("stl10", "train", tmp_path)


def test_labels_outside_1_to_10_are_rejected(tmp_path) -> None:
    write_stl10(tmp_path, {"test": 2})
    (tmp_path / "stl10_binary" / "test_y.bin").write_bytes(bytes([0, 3]))
    with pytest.raises(DataError, match="outside 1..10"):
        read_split_arrays("stl10", "test", tmp_path)


def test_missing_file_says_where_to_put_it(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("EDGESSL_DOWNLOAD", raising=False)
    with pytest.raises(DataError) as caught:
        read_split_arrays("stl10", "unlabeled", tmp_path)
    message = str(caught.value)
    assert "\n" not in message and str(tmp_path / "stl10_binary" / "unlabeled_X.bin") in message
    assert "2,764,800,000 bytes" in message and "EDGESSL_DOWNLOAD=1" in message and "EDGESSL_DATA" in message


def test_real_subset_counts_labels_and_statistics(stl10_mini_root) -> None:
    counts = {"train": 100, "test": 10, "unlabeled": 246, "train+unlabeled": 346}
    splits = {name: read_split_arrays("stl10", name, stl10_mini_root) for name in counts}
    assert {name: len(split) for name, split in splits.items()} == counts
    assert np.bincount(splits["train"].labels).tolist() == [10] * 10
    assert np.bincount(splits["test"].labels).tolist() == [1] * 10
    assert splits["train"].class_names == CLASS_NAMES  # read from the real class_names.txt
    from edgessl.data.arrays import channel_stats

    mean, std = channel_stats(
        np.concatenate([splits[name].images for name in ("train", "test", "unlabeled")])
    )
    assert np.allclose(mean, MEAN, atol=0.02) and np.allclose(std, STD, atol=0.01)


def test_real_subset_pixel_exact_against_independent_decode(stl10_mini_root) -> None:
    data = (stl10_mini_root / "stl10_binary" / "train_X.bin").read_bytes()
    images = read_split_arrays("stl10", "train", stl10_mini_root).images
    rng = np.random.default_rng(1)
    for index in (0, 57, 99):
        for channel, row, column in rng.integers(0, SIDE, (300, 3)) % [3, SIDE, SIDE]:
            assert images[index, channel, row, column] == decode_pixel(data, index, channel, row, column)
