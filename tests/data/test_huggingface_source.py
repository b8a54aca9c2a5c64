"""``--data hf:...``: a Hugging Face dataset made from an image folder caches exactly that folder's arrays."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from edgessl.data import read_split_arrays
from edgessl.data.folder_layout import discover
from edgessl.data.huggingface import open_splits
from edgessl.errors import ConfigError, DataError, UnknownNameError

datasets = pytest.importorskip("datasets")

PER_CLASS = 12
UNLABELED = 15
SPLITS = ("train", "test", "unlabeled")


@pytest.fixture(autouse=True)
def private_caches(tmp_path_factory, monkeypatch) -> None:
    monkeypatch.setenv("EDGESSL_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path_factory.mktemp("hf")))
    open_splits.cache_clear()


@pytest.fixture(scope="module")
def folder(cifar10_small, tmp_path_factory) -> Path:
    """Real CIFAR-10 JPEGs: 12 per class, plus 15 more in unlabeled/ (a pretext split of its own)."""
    root = tmp_path_factory.mktemp("folder")
    for label in sorted(p.name for p in cifar10_small.iterdir() if p.is_dir()):
        files = sorted((cifar10_small / label).iterdir())
        (root / label).mkdir()
        for path in files[:PER_CLASS]:
            shutil.copy(path, root / label / path.name)
    (root / "unlabeled").mkdir()
    for path in sorted((cifar10_small / "truck").iterdir())[-UNLABELED:]:
        shutil.copy(path, root / "unlabeled" / path.name)
    return root


def folder_dataset(root: Path, image: str = "image", label: str = "label"):
    """The folder as a DatasetDict storing each file's bytes, split as edgessl splits the folder."""
    layout = discover(root)
    features = datasets.Features(
        {image: datasets.Image(), label: datasets.ClassLabel(names=list(layout.class_names))}
    )
    parts = {}
    for split in ("train", "test"):
        files = layout.labelled[split]
        parts[split] = datasets.Dataset.from_dict(
            {
                image: [{"bytes": (root / name).read_bytes(), "path": None} for name, _ in files],
                label: [value for _, value in files],
            },
            features=features,
        )
    unlabeled = [{"bytes": (root / name).read_bytes(), "path": None} for name in layout.unlabeled]
    parts["unlabeled"] = datasets.Dataset.from_dict(
        {image: unlabeled}, features=datasets.Features({image: datasets.Image()})
    )
    return datasets.DatasetDict(parts)


def assert_same_arrays(spec: str, root: Path) -> None:
    for split in SPLITS:
        ours, theirs = (read_split_arrays(s, split, image_size=32) for s in (spec, str(root)))
        assert ours.images.shape == theirs.images.shape and len(ours) > 0
        assert np.array_equal(ours.images, theirs.images), split
        if theirs.labels is None:
            assert ours.labels is None
        else:
            assert np.array_equal(ours.labels, theirs.labels)
        assert ours.class_names == theirs.class_names and ours.mean == theirs.mean and ours.std == theirs.std


def test_saved_dataset_gives_the_folder_arrays(folder, tmp_path) -> None:
    folder_dataset(folder).save_to_disk(str(tmp_path / "saved"))
    assert_same_arrays(f"hf:{tmp_path / 'saved'}", folder)
    again = read_split_arrays(f"hf:{tmp_path / 'saved'}", "train", image_size=32)
    assert again.cache is not None and not again.cache.built  # decoded once, then mapped


def test_parquet_files_split_by_name_give_the_folder_arrays(folder, tmp_path) -> None:
    data = tmp_path / "hub-layout" / "data"
    data.mkdir(parents=True)
    for split, part in folder_dataset(folder).items():
        part.to_parquet(str(data / f"{split}-00000-of-00001.parquet"))
    assert_same_arrays(f"hf:{tmp_path / 'hub-layout'}", folder)


def test_columns_named_in_the_spec_or_found_by_type(folder, tmp_path) -> None:
    renamed = folder_dataset(folder, image="photo", label="kind")
    renamed = renamed.map(lambda row: {"kind2": 0}).cast_column("kind2", datasets.ClassLabel(names=["x"]))
    renamed.save_to_disk(str(tmp_path / "renamed"))
    spec = f"hf:{tmp_path / 'renamed'}"
    with pytest.raises(DataError, match="several ClassLabel columns"):
        read_split_arrays(spec, "train", image_size=32)
    named = read_split_arrays(f"{spec}?image=photo&label=kind", "train", image_size=32)
    expected = read_split_arrays(str(folder), "train", image_size=32)
    assert np.array_equal(named.images, expected.images) and np.array_equal(named.labels, expected.labels)
    with pytest.raises(DataError, match=r"no column 'labels' \(its columns: photo, kind, kind2\)"):
        read_split_arrays(f"{spec}?label=labels", "train", image_size=32)
    with pytest.raises(DataError, match="'kind' is ClassLabel.*not an Image column"):
        read_split_arrays(f"{spec}?image=kind", "train", image_size=32)


def test_validation_serves_as_test_and_a_lone_dataset_is_train(folder, tmp_path) -> None:
    parts = folder_dataset(folder)
    datasets.DatasetDict({"train": parts["train"], "validation": parts["test"]}).save_to_disk(
        str(tmp_path / "val")
    )
    test = read_split_arrays(f"hf:{tmp_path / 'val'}", "test", image_size=32)
    assert np.array_equal(test.images, read_split_arrays(str(folder), "test", image_size=32).images)
    parts["train"].save_to_disk(str(tmp_path / "lone"))
    unlabeled = read_split_arrays(f"hf:{tmp_path / 'lone'}", "unlabeled", image_size=32)
    train = read_split_arrays(f"hf:{tmp_path / 'lone'}", "train", image_size=32)
    assert unlabeled.labels is None and np.array_equal(unlabeled.images, train.images)
    with pytest.raises(DataError, match="no test or validation split.*its splits: train"):
        read_split_arrays(f"hf:{tmp_path / 'lone'}", "test", image_size=32)


def test_a_resaved_dataset_is_a_new_cache(folder, tmp_path) -> None:
    parts = folder_dataset(folder)
    parts.save_to_disk(str(tmp_path / "d"))
    first = read_split_arrays(f"hf:{tmp_path / 'd'}", "test", image_size=32)
    flipped = parts["test"].map(lambda row: {"label": (row["label"] + 1) % 10})
    shutil.rmtree(tmp_path / "d")
    datasets.DatasetDict({**parts, "test": flipped}).save_to_disk(str(tmp_path / "d"))
    open_splits.cache_clear()
    second = read_split_arrays(f"hf:{tmp_path / 'd'}", "test", image_size=32)
    assert second.cache.built and second.cache.path != first.cache.path
    assert np.array_equal(second.labels, (first.labels + 1) % 10)


def test_bad_specs_are_one_clear_error(tmp_path) -> None:
    with pytest.raises(DataError, match="no such folder or file"):
        read_split_arrays(f"hf:{tmp_path / 'absent'}", "train")
    with pytest.raises(DataError, match="image=COLUMN and label=COLUMN only"):
        read_split_arrays(f"hf:{tmp_path}?colour=red", "train")
    with pytest.raises(UnknownNameError, match="unknown data scheme 'hff'.*Did you mean 'hf'"):
        read_split_arrays(f"hff:{tmp_path}", "train")
    assert not any((tmp_path).iterdir())  # nothing written


def test_missing_extra_names_it(monkeypatch, tmp_path) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets -> ImportError
    with pytest.raises(ConfigError, match=r"pip install 'edgessl\[hf\]'"):
        read_split_arrays(f"hf:{tmp_path}", "train")


def test_train_and_eval_read_the_columns_kept_in_the_spec(folder, tmp_path, capsys) -> None:
    from edgessl.cli import main

    folder_dataset(folder, image="photo", label="kind").save_to_disk(str(tmp_path / "d"))
    spec = f"hf:{tmp_path / 'd'}"
    tiny = ["--method", "simclr", "--backbone", "shufflenetv2", "--image-size", "32", "--batch-size", "8"]
    tiny += ["--epochs", "1", "--monitor-every", "0", "--no-progress", "--no-plots"]
    assert main(["train", "--data", "shapes10", "--image-column", "photo", "--print-config"]) == 2
    assert "choose columns of hf: or wds: data, not of 'shapes10'" in capsys.readouterr().err
    run = tmp_path / "run"
    columns = ["--image-column", "photo", "--label-column", "kind"]
    assert main(["train", "--data", spec, *columns, *tiny, "--max-steps", "2", "--out", str(run)]) == 0
    assert "cache built in" in capsys.readouterr().out
    kept = (run / "config.yaml").read_text()
    assert f"data: {spec}?image=photo&label=kind" in kept
    assert main(["eval", str(run), "--data", spec, *columns, "--json"]) == 0
    assert '"accuracy"' in capsys.readouterr().out
