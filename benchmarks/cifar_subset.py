"""Copy a small CIFAR-10 subset into the repository, so real images travel with the code to a GPU machine.

The suite in ``benchmarks/gpu_suite.py`` reads real images, but ``../shared/data`` sits
beside the checkout and does not travel with it. This copies the first ``--train``
and the next ``--test`` JPEGs of every class (sorted by file name, so the subset is the
same on every machine) from ``../shared/data/cifar10/train.zip`` into an image folder
``benchmarks/data/cifar10-subset/{train,test}/<class>/``, which edgessl's image-folder
loader reads as its ``train`` and ``test`` splits. The default 400 + 100 per class is
5,000 images, about 5 MB (the GPU machine takes at most 64 MiB of working tree).
``benchmarks/data/`` is git-ignored: the images are test data and never committed.

Run: python benchmarks/cifar_subset.py [--train 400] [--test 100] [--dest DIR]
Only the standard library is used, so it runs in well under a second.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO.parent / "shared" / "data" / "cifar10" / "train.zip"
DEFAULT_DEST = REPO / "benchmarks" / "data" / "cifar10-subset"
DONE = ".complete"  # written last: a folder without it is an interrupted copy


def members_by_class(archive: zipfile.ZipFile) -> dict[str, list[str]]:
    """``{class: sorted JPEG member names}`` of the zip's ``train/<class>/NNNN.jpg`` layout."""
    classes: dict[str, list[str]] = {}
    for name in archive.namelist():
        parts = name.split("/")
        if len(parts) == 3 and parts[2].lower().endswith(".jpg"):
            classes.setdefault(parts[1], []).append(name)
    return {label: sorted(names) for label, names in sorted(classes.items())}


def prepare(source: Path, dest: Path, train: int, test: int) -> dict[str, int]:
    """Write the subset to ``dest`` (replacing an older one) and return the image count per split.

    The copy is made in a temporary folder beside ``dest`` and renamed into place, so
    ``dest`` is either a complete subset or absent.
    """
    if not source.is_file():
        raise SystemExit(
            f"error: {source} not found; the CIFAR-10 zip lives in ../shared/data beside the checkout"
        )
    with zipfile.ZipFile(source) as archive:
        classes = members_by_class(archive)
        short = {label: len(names) for label, names in classes.items() if len(names) < train + test}
        if not classes or short:
            raise SystemExit(
                f"error: {source} has too few images per class for {train} + {test}: {short or 'no classes'}"
            )
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
        try:
            for label, names in classes.items():
                for split, chosen in (("train", names[:train]), ("test", names[train : train + test])):
                    folder = staging / split / label
                    folder.mkdir(parents=True, exist_ok=True)
                    for name in chosen:
                        (folder / Path(name).name).write_bytes(archive.read(name))
            (staging / DONE).write_text(f"{source.name}: {train} train + {test} test images per class\n")
            if dest.exists():
                shutil.rmtree(dest)
            staging.rename(dest)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return {"train": train * len(classes), "test": test * len(classes)}


def is_complete(folder: Path) -> bool:
    return (folder / DONE).is_file()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=400, help="train images per class (default 400)")
    parser.add_argument("--test", type=int, default=100, help="test images per class (default 100)")
    parser.add_argument("--source", type=Path, default=SOURCE, help=f"the CIFAR-10 zip (default {SOURCE})")
    parser.add_argument(
        "--dest", type=Path, default=DEFAULT_DEST, help=f"where to write (default {DEFAULT_DEST})"
    )
    args = parser.parse_args(argv)
    if args.train < 1 or args.test < 1:
        parser.error(f"--train and --test must be at least 1 (got {args.train} and {args.test})")
    counts = prepare(args.source, args.dest, args.train, args.test)
    size = sum(path.stat().st_size for path in args.dest.rglob("*.jpg"))
    print(
        f"wrote {counts['train']} train + {counts['test']} test images ({size / 1e6:.1f} MB) to {args.dest}"
    )


if __name__ == "__main__":
    main()
