"""Evaluation and export build a method's representation alone and load it by name (no heads, no teacher)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from edgessl.checkpoints import load_representation, save_checkpoint
from edgessl.config import config_to_dict
from edgessl.methods import Method, method_class


def normalisation(method: Method) -> tuple[tuple[float, ...], tuple[float, ...]]:
    return tuple(method.normalize.mean.flatten().tolist()), tuple(method.normalize.std.flatten().tolist())


def test_representation_weight_names_are_the_tensors_the_method_shares(
    method_name: str, small_method: Callable[..., Method]
) -> None:
    method = small_method(method_name)
    cls = method_class(method_name)
    shared = method.representation()
    by_identity = {id(t): name for name, t in method.state_dict(keep_vars=True).items()}
    expected = {own: by_identity[id(t)] for own, t in shared.state_dict(keep_vars=True).items()}
    assert cls.representation_weight_names(list(expected)) == expected
    mean, std = normalisation(method)
    alone = cls.build_representation(method.backbone_name, method.config, method.image_size, mean, std)
    assert {k: v.shape for k, v in alone.state_dict().items()} == {
        k: v.shape for k, v in shared.state_dict().items()
    }


def test_load_representation_gives_the_trained_features_without_building_the_method(
    method_name: str, small_method: Callable[..., Method], tmp_path: Path
) -> None:
    method = small_method(method_name)
    mean, std = normalisation(method)
    meta = {
        "method": method_name,
        "backbone": method.backbone_name,
        "image_size": method.image_size,
        "mean": list(mean),
        "std": list(std),
        "method_config": config_to_dict(method.config),
    }
    path = tmp_path / "checkpoint.pt"
    save_checkpoint({"metadata": meta, "model": method.state_dict()}, path)
    images = torch.rand(2, 3, method.image_size, method.image_size)
    with torch.no_grad():
        expected = method.representation().eval()(images)
        assert torch.equal(load_representation(path).model(images), expected)
