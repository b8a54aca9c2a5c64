"""``--data wds:...``: WebDataset shards written from an image folder cache exactly that folder's arrays."""

from __future__ import annotations

import gzip
import io
import shutil
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from edgessl.data import read_split_arrays
from edgessl.data.decode import decode_image
from edgessl.data.folder_layout import discover
from edgessl.data.schemes import SchemeSpec
from edgessl.data.webdataset_shards import WebDatasetSource
from edgessl.errors import ConfigError, DataError

wds = pytest.importorskip("webdataset")

PER_CLASS = 12
UNLABELED = 15
SAMPLES_PER_SHARD = 25  # several shards per split, a split's last one part full


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch) -> None:
    monkeypatch.setenv("EDGESSL_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="module")
def folder(cifar10_small, tmp_path_factory) -> Path:
    """Real CIFAR-10 JPEGs: 12 per class, plus 15 more in unlabeled/."""
    root = tmp_path_factory.mktemp("folder")
    for label in sorted(p.name for p in cifar10_small.iterdir() if p.is_dir()):
        (root / label).mkdir()
        for path in sorted((cifar10_small / label).iterdir())[:PER_CLASS]:
            shutil.copy(path, root / label / path.name)
    (root / "unlabeled").mkdir()
    for path in sorted((cifar10_small / "truck").iterdir())[-UNLABELED:]:
        shutil.copy(path, root / "unlabeled" / path.name)
    return root


def write_shards(root: Path, target: Path) -> dict[str, int]:
    """The folder's splits as ``{split}-NNNNNN.tar`` with webdataset's own ShardWriter; shards per split."""
    layout = discover(root)
    target.mkdir()
    rows = {
        "train": layout.labelled["train"],
        "test": layout.labelled["test"],
        "unlabeled": [(name, None) for name in layout.unlabeled],
    }
    counts = {}
    for split, entries in rows.items():
        with wds.ShardWriter(
            str(target / f"{split}-%06d.tar"), maxcount=SAMPLES_PER_SHARD, verbose=0
        ) as sink:
            for name, label in entries:
                sample = {"__key__": name.rsplit(".", 1)[0], "jpg": (root / name).read_bytes()}
                if label is not None:
                    sample["cls"] = label
                sink.write(sample)
        counts[split] = len(list(target.glob(f"{split}-*.tar")))
    return counts


def test_shards_give_the_folder_arrays(folder, tmp_path) -> None:
    counts = write_shards(folder, tmp_path / "shards")
    assert counts["train"] > 1
    braces = f"wds:{tmp_path / 'shards'}/{{split}}-{{000000..{counts['train'] - 1:06d}}}.tar"
    # test has fewer shards than train
    with pytest.raises(DataError, match=r"shard .*test-00000\d\.tar does not exist"):
        read_split_arrays(braces, "train", image_size=32)
    spec = f"wds:{tmp_path / 'shards'}/{{split}}-*.tar"
    for split in ("train", "test", "unlabeled"):
        ours, theirs = (read_split_arrays(s, split, image_size=32) for s in (spec, str(folder)))
        assert np.array_equal(ours.images, theirs.images), split
        assert (ours.labels is None) == (theirs.labels is None)
        if theirs.labels is not None:
            assert np.array_equal(ours.labels, theirs.labels)
        assert ours.mean == theirs.mean and ours.std == theirs.std
        assert ours.class_names == tuple(str(k) for k in range(10))


def test_samples_are_grouped_as_webdataset_groups_them(folder, tmp_path) -> None:
    write_shards(folder, tmp_path / "shards")
    spec = SchemeSpec("wds", f"{tmp_path / 'shards'}/{{split}}-*.tar")
    source = WebDatasetSource(spec)
    ours = [key.split(":", 1)[1] for key in source.index.keys]
    urls = [path for split in ("train", "test", "unlabeled") for path in source.shards[split]]
    theirs = [sample["__key__"] for sample in wds.WebDataset(urls, shardshuffle=False, empty_check=False)]
    assert ours == theirs and len(ours) == 10 * PER_CLASS + UNLABELED


def test_pattern_without_split_is_the_train_split(folder, tmp_path) -> None:
    write_shards(folder, tmp_path / "shards")
    spec = f"wds:{tmp_path / 'shards'}/train-{{000000..000003}}.tar"
    train = read_split_arrays(spec, "train", image_size=32)
    unlabeled = read_split_arrays(spec, "unlabeled", image_size=32)
    assert unlabeled.labels is None and np.array_equal(unlabeled.images, train.images)
    assert len(train) == len(discover(folder).labelled["train"])
    with pytest.raises(DataError, match="no shards for the 'test' split"):
        read_split_arrays(spec, "test", image_size=32)


def test_member_names_in_the_spec(tmp_path, folder) -> None:
    target = tmp_path / "png"
    target.mkdir()
    files = sorted((folder / "cat").iterdir())[:4]
    with wds.TarWriter(str(target / "train-0.tar")) as sink:
        for index, path in enumerate(files):
            sink.write({"__key__": f"s{index}", "image.jpg": path.read_bytes(), "klass": str(index % 2)})
    spec = f"wds:{target}/train-0.tar?image=image.jpg&label=klass"
    train = read_split_arrays(spec, "train", image_size=32)
    assert train.labels.tolist() == [0, 1, 0, 1] and train.class_names == ("0", "1")
    assert np.array_equal(train.images, np.stack([decode_image(str(path), 32) for path in files]))
    with pytest.raises(DataError, match=r"none of the 4 images .*:s0 \(the sample has no jpg / jpeg / png"):
        read_split_arrays(f"wds:{target}/train-0.tar", "unlabeled", image_size=32)


def test_bad_shards_are_one_clear_error(tmp_path, folder) -> None:
    (tmp_path / "s").mkdir()
    plain = tmp_path / "s" / "train-0.tar"
    with wds.TarWriter(str(plain)) as sink:
        sink.write({"__key__": "a", "jpg": next((folder / "cat").iterdir()).read_bytes(), "cls": "cat"})
    with pytest.raises(DataError, match=r"a\.cls is not an integer class label"):
        read_split_arrays(f"wds:{plain}", "train", image_size=32)
    packed = tmp_path / "s" / "train-1.tar.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    with pytest.raises(DataError, match="not a plain .tar.*decompress"):
        read_split_arrays(f"wds:{packed}", "train", image_size=32)
    with pytest.raises(DataError, match=r"shard .*train-1\.tar does not exist \(7 of 8 missing\)"):
        read_split_arrays(f"wds:{tmp_path / 's'}/train-{{0..7}}.tar", "train", image_size=32)
    with pytest.raises(DataError, match="matches no train or unlabeled shards"):
        read_split_arrays(f"wds:{tmp_path / 's'}/{{split}}-x.tar", "train", image_size=32)


def test_train_split_without_labels_cannot_be_evaluated(tmp_path, folder) -> None:
    (tmp_path / "s").mkdir()
    with tarfile.open(tmp_path / "s" / "train-0.tar", "w") as archive:
        for index, path in enumerate(sorted((folder / "dog").iterdir())[:3]):
            archive.add(path, arcname=f"sample{index}.jpg")
    spec = f"wds:{tmp_path / 's'}/train-0.tar"
    assert len(read_split_arrays(spec, "unlabeled", image_size=32)) == 3  # pretraining needs no labels
    with pytest.raises(DataError, match=r"sample .*sample0 has no \.cls label"):
        read_split_arrays(spec, "train", image_size=32)


def test_missing_extra_names_it(monkeypatch, tmp_path) -> None:
    monkeypatch.setitem(sys.modules, "webdataset", None)
    with pytest.raises(ConfigError, match=r"pip install 'edgessl\[webdataset\]'"):
        read_split_arrays(f"wds:{tmp_path}/x.tar", "train")


def test_meta_members_and_names_without_a_dot_are_skipped_as_webdataset_skips_them(tmp_path, folder) -> None:
    image = next((folder / "cat").iterdir()).read_bytes()
    shard = tmp_path / "train-0.tar"
    with tarfile.open(shard, "w") as archive:
        for name, data in [
            ("__meta__", b"{}"),
            ("README", b"hello"),
            ("a.jpg", image),
            ("a.cls", b"1"),
            ("__index__/x.txt", b"skip"),
            ("dir/b.c.JPG", image),
            ("dir/b.c.cls", b"0"),
            ("c.jpg", image),
        ]:
            entry = tarfile.TarInfo(name)
            entry.size = len(data)
            archive.addfile(entry, io.BytesIO(data))
    source = WebDatasetSource(SchemeSpec("wds", str(shard)))
    theirs = [s["__key__"] for s in wds.WebDataset([str(shard)], shardshuffle=False, empty_check=False)]
    assert [key.split(":", 1)[1] for key in source.index.keys] == theirs == ["a", "dir/b", "c"]
    assert source.index.labels.tolist() == [1, -1, -1]  # dir/b's label member is "c.cls", not "cls"
