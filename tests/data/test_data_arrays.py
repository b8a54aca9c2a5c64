"""The torch-free core, the registry's errors and the torch wrapping."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from edgessl.data import DEFAULT_DATASET, ImageDataset, dataset_names, load_dataset, read_split_arrays
from edgessl.data.arrays import channel_stats
from edgessl.errors import ConfigError, DataError, UnknownNameError


def test_reading_arrays_never_imports_torch() -> None:
    code = (
        "import sys\n"
        "import edgessl.data.reading as reading\n"
        "split = reading.read_split_arrays('shapes10', 'test', image_size=16)\n"
        "assert split.images.shape == (1000, 3, 16, 16) and split.labels.dtype.name == 'int64'\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_registry_holds_the_builtin_datasets() -> None:
    assert {"shapes10", "stl10"} <= set(dataset_names())
    assert DEFAULT_DATASET == "shapes10"


def test_unknown_dataset_names_closest_match_and_image_folders() -> None:
    with pytest.raises(UnknownNameError) as caught:
        read_split_arrays("stl-10", "train")
    message = str(caught.value)
    assert "unknown dataset 'stl-10'" in message and "Did you mean 'stl10'" in message
    assert "image folder" in message and "\n" not in message
    assert caught.value.exit_code == 2


def test_unknown_split_names_closest_match() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'test'"):
        read_split_arrays("shapes10", "tset")


def test_missing_image_folder_path_is_a_data_error(tmp_path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read_split_arrays(str(tmp_path / "nowhere"), "train")


def test_too_small_image_size_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="too small"):
        read_split_arrays("shapes10", "test", image_size=4)


def test_load_dataset_wraps_arrays_without_copying() -> None:
    dataset = load_dataset("shapes10", "test", image_size=16)
    assert isinstance(dataset, ImageDataset)
    assert dataset.images.dtype == torch.uint8 and dataset.images.shape == (1000, 3, 16, 16)
    assert dataset.labels is not None and dataset.labels.dtype == torch.int64
    arrays = read_split_arrays("shapes10", "test", image_size=16)
    assert np.array_equal(dataset.images.numpy(), arrays.images)
    assert dataset.num_classes == 10 and dataset.image_size == 16
    assert load_dataset("shapes10", "unlabeled", image_size=8).labels is None


def test_channel_stats_match_a_direct_computation() -> None:
    images = np.random.default_rng(0).integers(0, 256, (7, 3, 5, 6), dtype=np.uint8)
    mean, std = channel_stats(images)
    scaled = images.astype(np.float64) / 255
    assert np.allclose(mean, scaled.mean(axis=(0, 2, 3)), atol=1e-12)
    assert np.allclose(std, scaled.std(axis=(0, 2, 3)), atol=1e-12)
    from edgessl.data import channel_stats as tensor_stats

    assert np.allclose(tensor_stats(torch.from_numpy(images)), (mean, std), atol=1e-12)
