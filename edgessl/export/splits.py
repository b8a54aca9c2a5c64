"""The real images an export checks, calibrates and fits its heads on: the training split of the
checkpoint's dataset (or ``--data``), its test split where accuracy is reported."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgessl.errors import ConfigError
from edgessl.export.quantize import calibration_subset


@dataclass(frozen=True)
class Splits:
    train: Any  # edgessl.data.arrays.SplitArrays
    test: Any | None
    verify: np.ndarray  # uint8 images for parity checks


def read_splits(
    spec: str | None, root: str | None, image_size: int, verify_images: int, need_labels: bool
) -> Splits:
    from edgessl.data.reading import read_labelled_splits, read_split_arrays

    if not spec:
        raise ConfigError(
            "the checkpoint records no dataset; pass --data "
            "(e.g. --data shapes10 or --data stl10 --data-root DIR)"
        )
    if need_labels:
        train, test = read_labelled_splits(spec, root, image_size, purpose="int8 accuracy and in-graph heads")
    else:
        train, test = read_split_arrays(spec, "train", root, image_size), None
    return Splits(train, test, calibration_subset(train.images, verify_images, seed=1))


def dataset_spec(metadata: dict[str, Any]) -> tuple[str | None, str | None]:
    """(dataset name or folder, data root) a checkpoint was trained on, as the trainer records them."""
    return metadata.get("dataset"), (metadata.get("train_config") or {}).get("data_root")
