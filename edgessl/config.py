"""Typed configuration: plain dataclasses, resolved from dicts (flags, YAML, ``--set``) once.

Every config in edgessl is a plain dataclass (``TrainConfig``, a method's ``Config``, a
study, a protocol's options). Values arrive as untyped dicts: YAML files, checkpoint
metadata, ``--set key=value``. :func:`config_from_dict` checks them against the field
types before anything runs, through pydantic's validation of standard dataclasses,
rather than a hand-written merge: pydantic knows ``float | None``, nested dataclasses and
tuples, parses ``"5e-4"`` (which YAML 1.1 reads as a string) and ``"inf"`` as numbers,
and reports the failing field by path. Unknown keys are checked here first so that a typo
gets a "did you mean". Every problem is one :class:`ConfigError` line (exit code 2).

It imports nothing from edgessl but its errors, so every package (training, study,
evaluation, export) uses it without importing another.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from typing import Annotated, Any, TypeVar

from annotated_types import Ge, Gt, Le, Lt

from edgessl.errors import ConfigError

C = TypeVar("C")

# A field's valid range, declared with the field (``lr: PositiveFloat = 1e-3``) and checked by
# pydantic in :func:`config_from_dict`: an out-of-range value is one ConfigError line before anything runs.
PositiveFloat = Annotated[float, Gt(0), Lt(math.inf)]  # finite and > 0 (nan fails both)
NonNegativeFloat = Annotated[float, Ge(0), Lt(math.inf)]
Fraction = Annotated[float, Ge(0), Le(1)]  # a probability or share, 0..1
PositiveFraction = Annotated[float, Gt(0), Le(1)]  # a share that cannot be empty (a crop's area)
PositiveInt = Annotated[int, Ge(1)]
NonNegativeInt = Annotated[int, Ge(0)]


def config_to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def config_from_dict(cls: type[C], values: dict[str, Any], what: str = "") -> C:
    """Build dataclass ``cls`` from ``values``, each value checked against its field's type.

    ``what`` names the source in error messages (e.g. ``"--set"`` or a file name).
    """
    if not isinstance(values, dict):
        raise ConfigError(
            f"{what or cls.__name__}: expected a mapping of {cls.__name__} options, got {values!r}"
        )
    _check_known_keys(cls, values, prefix="")
    from pydantic import TypeAdapter, ValidationError

    try:
        return TypeAdapter(cls).validate_python(values)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, cls, what)) from None


def _check_known_keys(cls: type, values: dict[str, Any], prefix: str) -> None:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    for key, value in values.items():
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1, cutoff=0.6)
            hint = f" Did you mean '{prefix}{close[0]}'?" if close else ""
            raise ConfigError(
                f"unknown {cls.__name__} option '{prefix}{key}'.{hint} Valid: {', '.join(names)}"
            )
        if dataclasses.is_dataclass(hints[key]) and isinstance(value, dict):
            _check_known_keys(hints[key], value, prefix=f"{prefix}{key}.")


def _describe(exc: Any, cls: type, what: str) -> str:
    """The first validation error as one line: field path, what was given, what is allowed."""
    problems = []
    for error in exc.errors(include_url=False):
        field = ".".join(str(part) for part in error["loc"])
        message = error["msg"].replace("Input should be", "expected")
        problems.append(f"{field}={error['input']!r}: {message}")
    source = f" in {what}" if what else ""
    return f"invalid {cls.__name__} value{source}: " + "; ".join(problems)


def nest_dotted(values: dict[str, Any]) -> dict[str, Any]:
    """``{"optimizer.lr": 0.1}`` -> ``{"optimizer": {"lr": 0.1}}``, so ``--set`` reaches nested fields."""
    nested: dict[str, Any] = {}
    for key, value in values.items():
        *parents, leaf = key.split(".")
        node = nested
        for parent in parents:
            child = node.setdefault(parent, {})
            if not isinstance(child, dict):
                raise ConfigError(
                    f"'{key}' sets a field inside '{parent}', which was also given a plain value"
                )
            node = child
        if isinstance(value, dict):
            node.setdefault(leaf, {}).update(nest_dotted(value))
        else:
            node[leaf] = value
    return nested


def deep_update(target: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``target`` with ``changes`` merged in, recursing into nested mappings (a new dict)."""
    merged = dict(target)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_update(merged[key], value)
        else:
            merged[key] = value
    return merged


def merge_config(cls: type[C], base: C, overrides: dict[str, Any], what: str = "") -> C:
    """``base`` with ``overrides`` (possibly dotted or nested) applied, typed and checked."""
    return config_from_dict(cls, deep_update(config_to_dict(base), nest_dotted(overrides)), what)
