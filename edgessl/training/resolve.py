"""From what the user asked for to the one resolved value of a run, :class:`ResolvedRun`.

Precedence: command-line flags over a ``--config`` YAML file (or, on ``--resume``
without one, the run's own ``config.yaml``) over the method's paper defaults;
``--recipe NAME`` swaps the paper defaults for a named set (:mod:`edgessl.methods.recipes`)
and ``--set KEY=VALUE`` changes a field of the method's config on top of it. Everything is
typed and checked here, once, before any file is read or written (:mod:`edgessl.config`);
the trainer, ``--print-config``, resume checks and the study all take the resolved value
and none resolves it again. What a resume may change is :mod:`edgessl.training.resume`'s.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from edgessl.config import config_from_dict, config_to_dict, merge_config
from edgessl.errors import ConfigError
from edgessl.methods import MethodConfig, method_class, method_config_of_run, run_level_removed
from edgessl.runs import CONFIG_FILE
from edgessl.textfiles import load_yaml, read_text
from edgessl.training.config import PER_CALL_LIMITS, TrainConfig


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


def requested_run(
    flags: dict[str, Any],
    config_file: str | None = None,
    sets: list[str] = (),
    resume: bool = False,
    method_flags: dict[str, Any] | None = None,
) -> ResolvedRun:
    """Flags over ``config_file`` (or, when resuming, the run's config.yaml) over defaults, resolved.

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
    return resolve_run(config)


@dataclasses.dataclass(frozen=True)
class ResolvedRun:
    """One run with nothing left to a default, resolved once by :func:`resolve_run`.

    ``train`` is what ``RUN/config.yaml`` and the checkpoint record, loadable by ``--config``:
    its ``method_overrides`` hold every field of the method's config except the batch size
    and the learning rate, whose one home is ``train.batch_size`` and ``train.lr``.
    ``method`` is the same values typed as the method's Config, built from ``train`` by
    :func:`~edgessl.methods.method_config_of_run`, so the two cannot disagree.
    """

    train: TrainConfig
    method: MethodConfig

    def yaml(self) -> str:
        return yaml.safe_dump(config_to_dict(self.train), sort_keys=False)


def resolve_run(config: TrainConfig) -> ResolvedRun:
    """``config`` resolved: method (paper) defaults < the recipe < ``method_overrides`` < the run's
    ``batch_size`` and ``lr``; the image size is the data's native one unless asked.

    Resolving a resolved run's ``train`` again gives the same run, so a run folder's
    ``config.yaml`` reproduces it.
    """
    from edgessl.data import native_image_size

    cls = method_class(config.method)
    method = merge_config(
        cls.Config,
        cls.Config(),
        recipe_overrides(config.method, config.recipe),
        f"the {config.recipe} recipe",
    )
    method = merge_config(cls.Config, method, config.method_overrides, "--set / method_overrides")
    train = dataclasses.replace(
        config,
        out=config.run_dir,
        batch_size=config.batch_size or method.batch_size,
        lr=config.lr or method.optimizer.lr,
        image_size=config.image_size or native_image_size(config.data),
        method_overrides=run_level_removed(config_to_dict(method)),
    )
    return ResolvedRun(train, method_config_of_run(config_to_dict(train)))


def recipe_overrides(method: str, recipe: str) -> dict[str, Any]:
    """The overrides of ``method``'s recipe ``recipe``; a recipe the method lacks is a ConfigError."""
    recipes = method_class(method).recipes
    if recipe not in recipes:
        raise ConfigError(
            f"{method} has no recipe '{recipe}'; choose one of {', '.join(recipes)} "
            "(see 'edgessl train --help')"
        )
    return recipes[recipe].overrides
