"""Which files of an image folder are images, which folders are classes, and which files make each split.

Layouts:

* split folders: ``root/train/<class>/`` with ``root/test/<class>/``, ``root/val/<class>/``
  or both (ImageNet style). ``test/`` is the test split; ``val/`` serves as the test split
  when there is no ``test/`` (and is not read when there is). ``train/`` alone is split
  like the flat layout below. A split folder that holds no class folders, a ``val/`` or
  ``test/`` without ``train/``, or class folders beside split folders is a DataError;
  a split folder is never read as a class.
* otherwise ``root/<class>/``: a deterministic split, 20% of each class to ``test``
  (the files whose SHA-1 of the file name sorts first, so it never changes between runs
  or machines and adding a file moves no other).

``unlabeled`` (the pretext split) is ``root/unlabeled/`` (any images below it) when
present, else the train split's images without labels, so pretraining never sees a test
image; a folder with no class folders at all serves its loose images as ``unlabeled``.
``FolderLayout.sources`` says in words which files make each split.

Only names are read here, never pixels, so ``edgessl eval`` can say where a split comes
from without decoding it; :mod:`edgessl.data.image_folder` decodes the files a layout names.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from edgessl.errors import DataError

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp"})
TEST_FRACTION = 0.2
SPLITS = ("unlabeled", "train", "test")
UNLABELED_FOLDER = "unlabeled"
SPLIT_FOLDERS = ("train", "val", "test")
LAYOUT_HINT = (
    "expected root/<class>/*.png|jpg, or root/train/<class>/ with root/val/<class>/ or root/test/<class>/"
)


@dataclass(frozen=True)
class FolderLayout:
    """Which files (relative paths) make each split, the class of each labelled file, and where from."""

    class_names: tuple[str, ...]
    labelled: dict[str, list[tuple[str, int]]]  # "train"/"test" -> [(file, label)]
    unlabeled: list[str]
    sources: dict[str, str]  # split -> where its files come from, in words

    def files(self) -> list[str]:
        """Every file any split uses, once, in a stable order (what gets decoded and cached)."""
        names = {name for entries in self.labelled.values() for name, _ in entries} | set(self.unlabeled)
        return sorted(names)


def image_files(folder: Path) -> list[str]:
    """Image files anywhere below ``folder`` with a known extension (any case), as paths sorted part by part.

    ``os.scandir`` on strings rather than ``Path.rglob``: at 200,000 files pathlib's
    objects cost 5 s of every start. Like ``rglob``, symbolic links to files are
    followed and symbolic links to folders are not.
    """
    found, pending = [], [str(folder)]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                elif os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS and entry.is_file():
                    found.append(entry.path)
    return sorted(found, key=lambda path: path.split(os.sep))


def class_folders(folder: Path, skip: Collection[str] = ()) -> dict[str, list[str]]:
    """``{class name: files}`` for the sub-folders of ``folder`` (but ``skip``) that contain images."""
    classes = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if sub.name in skip or sub.name == UNLABELED_FOLDER:
            continue
        files = image_files(sub)
        if files:
            classes[sub.name] = files
    return classes


def name_hash(path: str) -> str:
    return hashlib.sha1(os.path.basename(path).encode()).hexdigest()


def hash_split(files: list[str]) -> tuple[list[str], list[str]]:
    """(train, test) of one class: the ``TEST_FRACTION`` of files with the smallest name hash go to test.

    At least one test image for any class with two or more images.
    """
    ordered = sorted(files, key=lambda path: (name_hash(path), os.path.basename(path)))
    n_test = max(1, round(len(files) * TEST_FRACTION)) if len(files) > 1 else 0
    test = set(ordered[:n_test])
    return [p for p in files if p not in test], [p for p in files if p in test]


# split -> {class: files}, and split -> where those files come from (completed with counts later)
SplitParts = tuple[dict[str, dict[str, list[str]]], dict[str, str]]


def hashed_parts(folder: Path) -> SplitParts:
    """The flat layout: each class folder of ``folder`` split 80/20 by file-name hash."""
    split_classes = {name: hash_split(files) for name, files in class_folders(folder).items()}
    parts = {
        split: {name: pair[index] for name, pair in split_classes.items()}
        for index, split in enumerate(("train", "test"))
    }
    share = round(100 * TEST_FRACTION)
    where = f"each class folder of {folder}/"
    return parts, {
        "train": f"{100 - share}% of {where} (by file-name hash)",
        "test": f"the other {share}% of {where} (by file-name hash)",
    }


def split_folder_parts(root: Path, found: list[str]) -> SplitParts:
    """The ``train/`` + ``val/`` and/or ``test/`` layout, checked so no split folder becomes a class."""
    classes = {name: class_folders(root / name) for name in found}
    for name in found:
        if not classes[name]:
            raise DataError(
                f"{root / name} holds no class folders: a split folder must hold one folder per class "
                f"({name}/<class>/*.jpg); {LAYOUT_HINT}"
            )
    if "train" not in found:
        raise DataError(f"{root} has {', '.join(f + '/' for f in found)} but no train/: {LAYOUT_HINT}")
    beside = sorted(class_folders(root, skip=SPLIT_FOLDERS))
    if beside:
        raise DataError(
            f"{root} holds split folders ({', '.join(f + '/' for f in found)}) and class folders beside them "
            f"({', '.join(f + '/' for f in beside[:5])}): move those into train/ (or the test split's folder)"
        )
    if found == ["train"]:
        return hashed_parts(root / "train")
    test = "test" if "test" in found else "val"
    note = " (val/ serves as the test split: there is no test/)" if test == "val" else ""
    unused = " (val/ is not read: test/ is the test split)" if "val" in found and test == "test" else ""
    return {"train": classes["train"], "test": classes[test]}, {
        "train": f"{root / 'train'}/{unused}",
        "test": f"{root / test}/{note}",
    }


def resolved_folder(root: Path) -> Path:
    """``root`` made absolute with its links followed; a symbolic-link loop is a DataError, not a
    traceback."""
    try:
        return root.resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a link loop (Python < 3.13), OSError after
        raise DataError(f"image folder {root} cannot be opened ({exc}): {LAYOUT_HINT}") from None


def discover(root: Path) -> FolderLayout:
    """The split layout of an image folder; a DataError when it has no images at all.

    A folder without class folders (only ``unlabeled/`` or loose images) still serves
    the ``unlabeled`` split; its labelled splits are empty.
    """
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist or is not a folder: {LAYOUT_HINT}")
    found = [name for name in SPLIT_FOLDERS if (root / name).is_dir()]
    parts, where = split_folder_parts(root, found) if found else hashed_parts(root)
    class_names = tuple(sorted(set(parts["train"]) | set(parts["test"])))
    label_of = {name: index for index, name in enumerate(class_names)}
    prefix = str(root) + os.sep
    labelled = {
        split: [
            (path[len(prefix) :], label_of[name]) for name, files in parts[split].items() for path in files
        ]
        for split in ("train", "test")
    }
    unlabeled, where["unlabeled"] = unlabeled_files(root, labelled["train"])
    sources = {
        split: f"{len(labelled[split]) if split in labelled else len(unlabeled):,} files from {text}"
        for split, text in where.items()
    }
    layout = FolderLayout(class_names, labelled, unlabeled, sources)
    if not layout.files():
        raise DataError(f"no images found under {root}: {LAYOUT_HINT}")
    return layout


def unlabeled_files(root: Path, train: list[tuple[str, int]]) -> tuple[list[str], str]:
    """The pretext files and where they come from: ``root/unlabeled/`` when it has images, else the
    train split's files (never a test file), else loose images in ``root``."""
    folder = root / UNLABELED_FOLDER
    files = image_files(folder) if folder.is_dir() else []
    if files:
        return [path[len(str(root) + os.sep) :] for path in files], f"{folder}/"
    if train:
        return [name for name, _ in train], "the train split, without labels (there is no unlabeled/)"
    loose = [
        path.name
        for path in sorted(root.iterdir())
        if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()
    ]
    return loose, f"the images directly in {root}/"
