"""Evaluate outside weights: a plain state dict loaded into a named backbone, with any protocol.

``edgessl eval --weights FILE --backbone NAME`` calls :func:`evaluate_weights`. There is no
run folder, so nothing is cached; ``finetune`` starts from the loaded weights, which is
how an outside encoder is fine-tuned.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from edgessl.data import load_labelled_splits
from edgessl.evaluation.features import FeatureCache, resolve_device
from edgessl.evaluation.protocols import evaluate_representation, options_for


def evaluate_weights(
    backbone: str,
    weights: str | Path,
    data: str,
    protocols: Sequence[str],
    *,
    data_root: str | Path | None = None,
    image_size: int | None = None,
    device: str | torch.device | None = None,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    **options: Any,
) -> list[dict[str, Any]]:
    """One record per protocol (the keys of ``edgessl eval`` records; ``epoch`` is 0).

    ``mean``/``std`` default to the training split's statistics; pass the normalisation
    the weights were trained with (ImageNet's for ImageNet weights).
    """
    from edgessl.backbones import weights_representation

    per_protocol = options_for(list(dict.fromkeys(protocols)), options)
    train, test = load_labelled_splits(data, data_root, image_size)
    model, loaded = weights_representation(backbone, weights, mean or train.mean, std or train.std)
    device = resolve_device(device)
    features = FeatureCache(model, device)
    records = []
    for name, values in per_protocol.items():
        started = time.perf_counter()
        result = evaluate_representation(model, train, test, name, device, features=features, **values)
        records.append(
            {
                "protocol": name,
                "epoch": 0,
                "accuracy": result.accuracy,
                "details": result.details,
                "method": "weights",
                "backbone": backbone,
                "checkpoint": str(weights),
                "checkpoint_file": Path(weights).name,
                "weights": loaded.summary(),
                "data": data,
                "eval_image_size": test.image_size,
                "device": str(device),
                "seconds": round(time.perf_counter() - started, 3),
            }
        )
    return records
