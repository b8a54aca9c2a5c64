"""From what the user asked for to the run's resolved configuration, and what a resume may change.

Precedence: command-line flags over a ``--config`` YAML file (or, on ``--resume``
without one, the run's own ``config.yaml``) over the method's paper defaults;
``--recipe NAME`` swaps the paper defaults for a named set (:mod:`edgessl.methods.recipes`)
and ``--set KEY=VALUE`` changes a field of the method's config on top of it. Everything is typed and
checked here, once, before any file is read or written (:mod:`edgessl.config`).

A resume continues the run its checkpoint describes. It may change only what leaves the
trained state meaningful (:data:`RESUMABLE`): more epochs (the rest of the schedule is
stretched), the per-call limits, how often epoch checkpoints are kept, where the data
lives and kernel determinism. Any other difference is refused with the list of what
differs, because the checkpoint's optimiser, schedule and sampler would silently keep
the old values (a new ``lr`` would be recorded but not applied).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from edgessl.config import config_from_dict, config_to_dict, merge_config
from edgessl.errors import ConfigError
from edgessl.methods import MethodConfig, method_class
from edgessl.runs import CONFIG_FILE
from edgessl.textfiles import load_yaml, read_text
from edgessl.training.config import TrainConfig

PER_CALL_LIMITS = ("max_steps", "time_budget_s")  # not taken from a run's config.yaml on --resume
WATCHING = ("monitor_every", "log_with", "log_every", "plots")  # how the run is watched, not what it trains
RESUMABLE = ("epochs", "save_every", "data_root", "deterministic", *WATCHING, *PER_CALL_LIMITS)
MIRRORED = ("method_overrides.optimizer.lr",)  # the same value as the top-level ``lr``; reported once


def parse_sets(items: list[str]) -> dict[str, Any]:
    """``["temperature=0.2", "optimizer.name=lars"]`` -> YAML scalars, typed later against the fields."""
    values: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE, got '{item}'")
        try:
            values[key.strip()] = load_yaml(text, f"--set {key.strip()}")
        except yaml.YAMLError:
            values[key.strip()] = text
    return values


def read_yaml(path: str | Path) -> dict[str, Any]:
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"config file not found: {file}")
    try:
        values = load_yaml(read_text(file, "config file"), str(file)) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{file} must hold a mapping of train options (method: simclr, epochs: 100, ...)")
    return values


def requested_config(
    flags: dict[str, Any],
    config_file: str | None = None,
    sets: list[str] = (),
    resume: bool = False,
    method_flags: dict[str, Any] | None = None,
) -> TrainConfig:
    """Flags over ``config_file`` (or, when resuming, the run's config.yaml) over defaults, typed.

    ``method_flags`` are method fields a flag sets (``--teacher`` is ``teacher.source``), over ``--set``.
    """
    given = {key: value for key, value in flags.items() if value is not None}
    values = read_yaml(config_file) if config_file else {}
    if resume and not config_file:
        saved = Path(config_from_dict(TrainConfig, given, "the flags").run_dir) / CONFIG_FILE
        values = read_yaml(saved) if saved.is_file() else {}
        for limit in PER_CALL_LIMITS:  # a smoke run's cap should not stop its continuation
            values.pop(limit, None)
        for identity in ("method", "backbone"):  # the run's own method config would not fit another
            if identity in given and identity in values and given[identity] != values[identity]:
                raise ConfigError(
                    f"--resume continues the {values[identity]} run in {saved.parent}; it cannot change "
                    f"--{identity} to {given[identity]}: drop --{identity}, "
                    "or start a new run in another --out"
                )
    values = {**values, **given}
    values["method_overrides"] = {
        **values.get("method_overrides", {}),
        **parse_sets(list(sets)),
        **(method_flags or {}),
    }
    config = config_from_dict(TrainConfig, values, config_file or "the flags")
    given_teacher = any(key.startswith("teacher.") for key in method_flags or {})
    if given_teacher and "teacher" not in {
        f.name for f in dataclasses.fields(method_class(config.method).Config)
    }:
        raise ConfigError(
            f"--teacher is for methods that distil from a teacher (seed); {config.method} has none: "
            "drop the --teacher options or choose --method seed"
        )
    resolve_method_config(config)  # method name and --set values are checked now, not at step 0
    return config


def recipe_overrides(method: str, recipe: str) -> dict[str, Any]:
    """The overrides of ``method``'s recipe ``recipe``; a recipe the method lacks is a ConfigError."""
    recipes = method_class(method).recipes
    if recipe not in recipes:
        raise ConfigError(
            f"{method} has no recipe '{recipe}'; choose one of {', '.join(recipes)} "
            "(see 'edgessl train --help')"
        )
    return recipes[recipe].overrides


def resolve_method_config(config: TrainConfig) -> MethodConfig:
    """Method (paper) defaults < the recipe < ``method_overrides`` < the run's ``batch_size`` and ``lr``."""
    cls = method_class(config.method)
    method_config = merge_config(
        cls.Config,
        cls.Config(),
        recipe_overrides(config.method, config.recipe),
        f"the {config.recipe} recipe",
    )
    method_config = merge_config(
        cls.Config, method_config, config.method_overrides, "--set / method_overrides"
    )
    if config.batch_size is not None:
        method_config = dataclasses.replace(method_config, batch_size=config.batch_size)
    if config.lr is not None:
        method_config = dataclasses.replace(
            method_config, optimizer=dataclasses.replace(method_config.optimizer, lr=config.lr)
        )
    return method_config


def resolved_train_config(
    config: TrainConfig, method_config: MethodConfig, image_size: int | None = None
) -> TrainConfig:
    """``config`` with every default filled in; written as ``RUN/config.yaml`` and loadable by
    ``--config``."""
    overrides = {k: v for k, v in config_to_dict(method_config).items() if k != "batch_size"}
    return dataclasses.replace(
        config,
        out=config.run_dir,
        batch_size=method_config.batch_size,
        lr=method_config.optimizer.lr,
        image_size=image_size if image_size is not None else config.image_size,
        method_overrides=overrides,
    )


def config_yaml(config: TrainConfig) -> str:
    return yaml.safe_dump(config_to_dict(config), sort_keys=False)


def resume_changes(
    saved: dict[str, Any], resolved: TrainConfig, epochs_done: int, source: Path
) -> dict[str, tuple[Any, Any]]:
    """The allowed changes a resume makes to the checkpoint's ``train_config``, as ``{field: (old, new)}``.

    Raises :class:`ConfigError` naming every other difference, and when ``epochs`` would
    end the run before the epochs it has already trained.
    """
    differences = config_differences(saved, resolved)
    refused = {key: pair for key, pair in differences.items() if key not in RESUMABLE}
    if refused:
        listed = "; ".join(
            f"{key}: {was!r} in the checkpoint, {asked!r} asked" for key, (was, asked) in refused.items()
        )
        raise ConfigError(
            f"--resume cannot change {', '.join(refused)} of the run in {source} ({listed}); "
            f"a resume may change only {', '.join(RESUMABLE)}. "
            "Drop those options, or start a new run in another --out"
        )
    if resolved.epochs < epochs_done:
        raise ConfigError(
            f"--epochs {resolved.epochs} is fewer than the {epochs_done} epoch(s) {source} "
            "has already trained"
        )
    return {key: pair for key, pair in differences.items() if key not in PER_CALL_LIMITS}


def config_differences(saved: dict[str, Any], resolved: TrainConfig) -> dict[str, tuple[Any, Any]]:
    """``{dotted field: (saved, resolved)}`` for every field in which a run's saved ``train_config`` differs.

    A field the run's edgessl did not have yet counts as its default (so old runs stay
    comparable); ``out`` and the mirrored ``lr`` are not compared.
    """
    fresh = TrainConfig(method=resolved.method, backbone=resolved.backbone)
    defaults = _flatten(config_to_dict(resolved_train_config(fresh, resolve_method_config(fresh))))
    old, new = {**defaults, **_flatten(saved)}, _flatten(config_to_dict(resolved))
    skipped = ("out", *MIRRORED)
    return {
        key: (old.get(key), value)
        for key, value in new.items()
        if key not in skipped and old.get(key) != value
    }


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"method_overrides": {"optimizer": {"lr": 1}}}`` -> ``{"method_overrides.optimizer.lr": 1}``
    (lists as tuples)."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = tuple(value) if isinstance(value, list) else value
    return flat
