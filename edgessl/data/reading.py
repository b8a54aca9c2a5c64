"""Which reader serves a dataset spec: a scheme's (``hf:``, ``wds:``), a registered name's, or the
image-folder reader for a path.

This module sits above every reader (:mod:`.cifar`, :mod:`.stl10`, :mod:`.image_folder`,
:mod:`.synthetic`, :mod:`.huggingface`, :mod:`.webdataset_shards`), which register their
names in :data:`~edgessl.data.arrays.DATASETS` or their scheme in
:data:`~edgessl.data.schemes.SCHEMES` on import; :mod:`.arrays` below them holds only
what they share. Like them, it never imports torch, so ``edgessl eval --onnx`` reads
data with numpy alone.
"""

from __future__ import annotations

import os
from pathlib import Path

# Importing a reader registers its dataset names in DATASETS (the folder modules are imported below
# for their names).
import edgessl.data.cifar
import edgessl.data.huggingface
import edgessl.data.stl10
import edgessl.data.synthetic
import edgessl.data.webdataset_shards  # noqa: F401
from edgessl.data.arrays import DATASETS, NATIVE_SIZES, SplitArrays, check_image_size, check_split
from edgessl.data.decode import DEFAULT_IMAGE_SIZE
from edgessl.data.folder_layout import SPLITS as FOLDER_SPLITS
from edgessl.data.folder_layout import discover, resolved_folder
from edgessl.data.image_folder import read_image_folder
from edgessl.data.schemes import SCHEMES, parse_scheme_spec, scheme_of
from edgessl.errors import DataError


def is_folder_spec(spec: str) -> bool:
    """A spec names an image folder when it has no scheme, is not registered and looks like a path."""
    return (
        spec not in DATASETS
        and scheme_of(spec) is None
        and (os.sep in spec or "/" in spec or spec.startswith(("~", ".")) or Path(spec).exists())
    )


def native_image_size(spec: str) -> int:
    """The side ``spec`` is read at when no image size is asked, without reading a file: a registered
    dataset's own (CIFAR 32, STL-10 96), else the decode size of image files (96).

    A resolved run records it, so ``--print-config`` and ``config.yaml`` say the size trained at.
    """
    if scheme_of(spec) is not None or is_folder_spec(spec):
        return DEFAULT_IMAGE_SIZE
    DATASETS.get(spec)  # an unknown name fails here, with the closest valid one
    return NATIVE_SIZES[spec]


def read_split_arrays(
    spec: str, split: str, root: str | Path | None = None, image_size: int | None = None
) -> SplitArrays:
    """Read ``split`` of a scheme spec (``hf:``, ``wds:``), a registered dataset, or the image folder at
    path ``spec``.

    ``root`` locates a registered dataset's files (STL-10); it is ignored for a folder
    path, a scheme spec and ``shapes10``. ``image_size`` None keeps each dataset's
    native size (96 for decoded sources).
    """
    check_image_size(image_size)
    if scheme_of(spec) is not None:
        parsed = parse_scheme_spec(spec)
        return SCHEMES.get(parsed.scheme)(parsed, split, image_size)
    if is_folder_spec(spec):
        return read_image_folder(Path(spec).expanduser(), split, image_size)
    return DATASETS.get(spec)(split, Path(root).expanduser() if root is not None else None, image_size)


def read_labelled_splits(
    spec: str, root: str | Path | None = None, image_size: int | None = None, purpose: str = "evaluation"
) -> tuple[SplitArrays, SplitArrays]:
    """The labelled ``train`` (kNN bank, probe training data) and ``test`` splits every evaluator uses.

    A split without labels is a :class:`DataError` naming ``purpose`` (what needed them).
    """
    train, test = (read_split_arrays(spec, split, root, image_size) for split in ("train", "test"))
    for split in (train, test):
        if split.labels is None:
            raise DataError(
                f"dataset '{spec}' split '{split.split}' has no labels; "
                f"{purpose} needs labelled train and test splits"
            )
    return train, test


def split_source(spec: str, split: str, root: str | Path | None = None) -> str:
    """Where ``split``'s images come from, in words (what ``edgessl eval`` states); reads no image.

    For an image folder it names the folder and the file count (e.g. that ``val/`` serves
    as the test split); a registered dataset's splits are its own, named as such.
    """
    if scheme_of(spec) is not None:
        parse_scheme_spec(spec)
        return f"the {split} split of {spec}"
    if is_folder_spec(spec):
        check_split("image-folder", split, FOLDER_SPLITS)
        return f"the {split} split: {discover(resolved_folder(Path(spec).expanduser())).sources[split]}"
    DATASETS.get(spec)
    return f"{spec}'s {split} split"
