"""Plain dataclass configs, converted to and from dicts (YAML files, checkpoints, CLI)."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, TypeVar

from edgessl.errors import ConfigError

C = TypeVar("C")


def config_to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def config_from_dict(cls: type[C], values: dict[str, Any]) -> C:
    """Build dataclass ``cls`` from ``values``, recursing into nested dataclasses.

    Unknown keys are an error naming the valid ones, so a typo in a YAML file is
    caught instead of silently ignored.
    """
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} option(s) {', '.join(unknown)}; valid: {', '.join(fields)}")
    kwargs: dict[str, Any] = {}
    for name, value in values.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            value = config_from_dict(hint, value)
        elif isinstance(value, list) and typing.get_origin(hint) is tuple:
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)
