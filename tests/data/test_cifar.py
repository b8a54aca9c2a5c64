"""CIFAR-10 / CIFAR-100 from their official binary format, written here from real CIFAR-10 JPEGs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgessl.data import load_dataset, read_split_arrays
from edgessl.data.arrays import channel_stats
from edgessl.data.cifar import CIFAR10_CLASSES, CIFAR100_CLASSES, FORMATS
from edgessl.errors import DataError, UnknownNameError

PER_CLASS = 3  # real images per class: 30 in all


def record(labels: tuple[int, ...], pixels: np.ndarray) -> bytes:
    """One binary record as the official files store it, byte by byte: the label byte(s), then
    the red plane, the green plane, the blue plane, each row by row. ``pixels`` is (32, 32, 3)."""
    planes = bytes(
        pixels[row, column, channel] for channel in range(3) for row in range(32) for column in range(32)
    )
    return bytes(labels) + planes


@pytest.fixture(scope="module")
def real_images(cifar10_small) -> list[tuple[int, np.ndarray]]:
    """(class index, (32, 32, 3) pixels) of the first real JPEGs of each class, decoded by PIL."""
    out = []
    for label, name in enumerate(CIFAR10_CLASSES):
        for path in sorted((cifar10_small / name).iterdir())[:PER_CLASS]:
            out.append((label, np.asarray(Image.open(path).convert("RGB"))))
    return out


def write_cifar10(root: Path, images: list[tuple[int, np.ndarray]], meta: bool = True) -> dict[str, list]:
    """``root/cifar-10-batches-bin``: 4 records in each data_batch_N.bin (20), the other 10 in
    test_batch.bin."""
    folder = root / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    order = [images[i] for i in np.random.default_rng(0).permutation(len(images))]
    train, test = order[:20], order[20:]
    for batch in range(5):
        chunk = train[batch * 4 : (batch + 1) * 4]
        (folder / f"data_batch_{batch + 1}.bin").write_bytes(
            b"".join(record((lab,), px) for lab, px in chunk)
        )
    (folder / "test_batch.bin").write_bytes(b"".join(record((lab,), px) for lab, px in test))
    if meta:  # the official file ends with blank lines
        (folder / "batches.meta.txt").write_text("\n".join(CIFAR10_CLASSES) + "\n\n")
    return {"train": train, "test": test}


@pytest.fixture(scope="module")
def cifar10_written(tmp_path_factory, real_images) -> tuple[Path, dict[str, list]]:
    root = tmp_path_factory.mktemp("cifar10")
    return root, write_cifar10(root, real_images)


def test_cifar10_counts_labels_and_exact_pixels(cifar10_written) -> None:
    root, written = cifar10_written
    splits = {name: read_split_arrays("cifar10", name, root) for name in ("train", "test", "unlabeled")}
    assert {name: len(split) for name, split in splits.items()} == {"train": 20, "test": 10, "unlabeled": 20}
    for name in ("train", "test"):
        expected = np.stack([pixels.transpose(2, 0, 1) for _, pixels in written[name]])
        assert np.array_equal(splits[name].images, expected)
        assert splits[name].labels.tolist() == [label for label, _ in written[name]]
    assert splits["unlabeled"].labels is None  # the train images: pretraining never sees test
    assert np.array_equal(splits["unlabeled"].images, splits["train"].images)
    assert splits["train"].class_names == CIFAR10_CLASSES and splits["train"].images.shape[1:] == (3, 32, 32)
    assert (splits["test"].mean, splits["test"].std) == (FORMATS["cifar10"].mean, FORMATS["cifar10"].std)


def test_root_may_be_the_archive_folder_or_come_from_the_environment(cifar10_written, monkeypatch) -> None:
    root, written = cifar10_written
    direct = read_split_arrays("cifar10", "test", root / "cifar-10-batches-bin")
    assert direct.labels.tolist() == [label for label, _ in written["test"]]
    monkeypatch.setenv("EDGESSL_DATA", str(root))
    assert np.array_equal(read_split_arrays("cifar10", "test").images, direct.images)


def test_resized_and_wrapped_as_tensors(cifar10_written) -> None:
    dataset = load_dataset("cifar10", "train", root=cifar10_written[0], image_size=16)
    assert tuple(dataset.images.shape) == (20, 3, 16, 16) and dataset.num_classes == 10


def test_cifar100_reads_fine_labels(tmp_path, real_images) -> None:
    folder = tmp_path / "cifar-100-binary"
    folder.mkdir()
    # Fine label 7 * class + 3, coarse label the class: distinct bytes, so the wrong one would show.
    labelled = [((label, 7 * label + 3), pixels) for label, pixels in real_images]
    (folder / "train.bin").write_bytes(b"".join(record(labels, px) for labels, px in labelled[:25]))
    (folder / "test.bin").write_bytes(b"".join(record(labels, px) for labels, px in labelled[25:]))
    (folder / "fine_label_names.txt").write_text("\n".join(CIFAR100_CLASSES) + "\n")
    train = read_split_arrays("cifar100", "train", tmp_path)
    test = read_split_arrays("cifar100", "test", tmp_path)
    assert (len(train), len(test)) == (25, 5)
    assert train.labels.tolist() == [fine for (_, fine), _ in labelled[:25]]
    assert np.array_equal(test.images[-1], real_images[-1][1].transpose(2, 0, 1))
    assert train.class_names == CIFAR100_CLASSES and len(train.class_names) == 100


def test_cifar_files_read_without_torch(cifar10_written) -> None:
    code = (
        "import sys\n"
        "import edgessl.data.reading as reading\n"
        f"split = reading.read_split_arrays('cifar10', 'test', {str(cifar10_written[0])!r})\n"
        "assert len(split) == 10 and 'torch' not in sys.modules, 'torch was imported'\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_truncated_file_names_file_and_full_size(tmp_path, real_images) -> None:
    write_cifar10(tmp_path, real_images)
    path = tmp_path / "cifar-10-batches-bin" / "data_batch_3.bin"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError) as caught:
        read_split_arrays("cifar10", "train", tmp_path)
    message = one_line(caught)
    assert str(path) in message and "truncated" in message
    assert "3073-byte records" in message and "30,730,000 bytes" in message  # 10,000 records


def test_cifar100_file_read_as_cifar10_is_rejected(tmp_path, real_images) -> None:
    folder = tmp_path / "cifar-10-batches-bin"
    write_cifar10(tmp_path, real_images)
    # 3073 records of 3074 bytes (CIFAR-100's format) are a whole number of 3073-byte records too:
    # the label check catches it (coarse/fine bytes and pixels land where labels should be).
    pixels = real_images[0][1]
    (folder / "test_batch.bin").write_bytes(record((19, 99), pixels) * 3073)
    with pytest.raises(
        DataError, match=r"is not a CIFAR-10 binary file: record \d+ has label byte \d+"
    ) as caught:
        read_split_arrays("cifar10", "test", tmp_path)
    one_line(caught)


def test_missing_file_says_where_to_put_it(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("EDGESSL_DATA", raising=False)
    with pytest.raises(DataError) as caught:
        read_split_arrays("cifar10", "test", tmp_path)
    message = one_line(caught)
    assert str(tmp_path / "cifar-10-batches-bin" / "test_batch.bin") in message
    assert "30,730,000 bytes" in message and "cifar-10-binary.tar.gz" in message


def test_pickled_python_version_is_refused_by_name(tmp_path) -> None:
    pickled = tmp_path / "cifar-10-batches-py"
    pickled.mkdir()
    (pickled / "data_batch_1").write_bytes(b"\x80\x04not read")  # a pickle header: must never be loaded
    for root in (tmp_path, pickled):
        with pytest.raises(DataError, match="pickled python version, which edgessl never reads") as caught:
            read_split_arrays("cifar10", "train", root)
        assert "cifar-10-binary.tar.gz" in one_line(caught)


def test_wrong_class_name_count_and_unknown_split(tmp_path, real_images) -> None:
    write_cifar10(tmp_path, real_images, meta=False)
    assert read_split_arrays("cifar10", "test", tmp_path).class_names == CIFAR10_CLASSES  # built-in names
    (tmp_path / "cifar-10-batches-bin" / "batches.meta.txt").write_text("cat\ndog\n")
    with pytest.raises(DataError, match="lists 2 class names, CIFAR-10 has 10"):
        read_split_arrays("cifar10", "test", tmp_path)
    with pytest.raises(UnknownNameError, match="Did you mean 'test'"):
        read_split_arrays("cifar10", "tset", tmp_path)


def test_class_names_file_that_is_not_utf8_is_one_line(tmp_path, real_images) -> None:
    write_cifar10(tmp_path, real_images, meta=False)
    (tmp_path / "cifar-10-batches-bin" / "batches.meta.txt").write_bytes(b"cat\n\xffdog\n")
    with pytest.raises(DataError, match=r"batches.meta.txt is not UTF-8 text \(byte 0xff at offset 4\)"):
        read_split_arrays("cifar10", "test", tmp_path)


def test_cifar10_statistics_match_real_training_images(cifar10_medium) -> None:
    """The fixed statistics (of the full 50,000 training images) against 5,000 real ones decoded here."""
    images = np.stack(
        [
            np.asarray(Image.open(path).convert("RGB")).transpose(2, 0, 1)
            for folder in sorted(cifar10_medium.iterdir())
            if folder.is_dir()
            for path in sorted(folder.iterdir())
        ]
    )
    assert len(images) == 5_000
    mean, std = channel_stats(images)
    form = FORMATS["cifar10"]
    # Measured: within 0.002 (the JPEG re-encoding moves pixels slightly).
    assert np.allclose(mean, form.mean, atol=0.005) and np.allclose(std, form.std, atol=0.005)
