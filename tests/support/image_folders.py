"""A tiny image folder cut from shapes10, for tests of code that reads folders (studies, the demo)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from edgessl.data import load_dataset


def write_tiny_folder(root: Path, counts: dict[str, int]) -> Path:
    """``root/{train,test}/<class>/*.png`` and ``root/unlabeled/*.png`` cut from shapes10."""
    source = load_dataset("shapes10", "test", image_size=32)
    offset = 0
    for split, count in counts.items():
        for index in range(offset, offset + count):
            label = source.class_names[int(source.labels[index])]
            folder = root / split if split == "unlabeled" else root / split / label
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(source.images[index].permute(1, 2, 0).numpy()).save(folder / f"{index}.png")
        offset += count
    return root
