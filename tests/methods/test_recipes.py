"""Recipes: every method has ``paper`` and ``short``, each resolves to a valid config, and resolution
order holds."""

from __future__ import annotations

import dataclasses

import pytest

from edgessl.config import config_to_dict
from edgessl.errors import ConfigError
from edgessl.methods import method_class
from edgessl.methods.recipes import PAPER, SHORT
from edgessl.training.config import TrainConfig
from edgessl.training.resolve import resolve_run


def _flatten(values: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict) and key != "kwargs":
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def test_every_method_has_the_paper_recipe_as_its_config_defaults(method_name: str) -> None:
    cls = method_class(method_name)
    assert {PAPER, SHORT} <= set(cls.recipes)
    assert cls.recipes[PAPER].overrides == {}
    assert resolve_run(TrainConfig(method=method_name, recipe=PAPER)).method == cls.Config()


def test_every_short_recipe_sets_exactly_its_overrides_and_cites_them(method_name: str) -> None:
    recipe = method_class(method_name).recipes[SHORT]
    assert recipe.sources and all(source.strip() for source in recipe.sources)
    paper = _flatten(config_to_dict(resolve_run(TrainConfig(method=method_name)).method))
    short = _flatten(config_to_dict(resolve_run(TrainConfig(method=method_name, recipe=SHORT)).method))
    wanted = _flatten(recipe.overrides)
    assert {key: short[key] for key in wanted} == wanted  # every override lands on a real field
    changed = {key for key in paper if paper[key] != short[key]}
    assert changed <= set(wanted)  # and nothing else moves


def test_set_and_flags_win_over_the_recipe() -> None:
    config = TrainConfig(
        method="byol", recipe=SHORT, lr=0.7, method_overrides={"base_momentum": 0.95}, batch_size=128
    )
    resolved = resolve_run(config).method
    assert (resolved.base_momentum, resolved.optimizer.lr, resolved.batch_size) == (0.95, 0.7, 128)
    assert resolved.optimizer.weight_decay == 1e-6  # the recipe's, where nothing overrides it


def test_byol_short_recipe_is_deepminds_100_epoch_preset() -> None:
    resolved = resolve_run(TrainConfig(method="byol", recipe=SHORT)).method
    assert (resolved.base_momentum, resolved.optimizer.lr, resolved.optimizer.weight_decay) == (
        0.99,
        0.45,
        1e-6,
    )


def test_an_unknown_recipe_names_the_ones_there_are() -> None:
    with pytest.raises(ConfigError, match="simclr has no recipe 'long'; choose one of paper, short"):
        resolve_run(TrainConfig(method="simclr", recipe="long"))


def test_checkpoint_metadata_records_the_recipe() -> None:
    from edgessl.training.state import Position, checkpoint_metadata

    class Accel:
        num_processes, mixed_precision = 1, "no"

    class Data:
        image_size, mean, std = 32, (0.5,) * 3, (0.2,) * 3

        def __len__(self) -> int:
            return 10

    config = TrainConfig(method="simclr", recipe=SHORT)
    meta = checkpoint_metadata(resolve_run(config).train, Data(), Accel(), Position())
    assert meta["recipe"] == SHORT and meta["train_config"]["recipe"] == SHORT
    assert dataclasses.asdict(config)["recipe"] == SHORT
