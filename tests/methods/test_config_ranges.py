"""Every numeric field of every method's config declares its valid range, and a value outside it is
refused."""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path

import pytest
import yaml
from config_bounds import bound_violations

from edgessl.cli import main
from edgessl.config import merge_config
from edgessl.errors import ConfigError
from edgessl.methods import method_class, method_names

BUILT_IN = [name for name in method_names() if method_class(name).__module__.startswith("edgessl.")]


def violations(annotation: object, default: object) -> list[object] | None:
    """Out-of-range values for a field, or None when its type declares no range."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return bound_violations(annotation)
    if origin in (typing.Union, types.UnionType):
        found = [violations(arg, default) for arg in args if arg is not type(None)]
        return next((values for values in found if values), None)
    if origin is list:
        return [[value] for value in violations(args[0], None) or []] or None
    if origin is tuple:
        bad = []
        for position, arg in enumerate(args):
            for value in violations(arg, default[position]) or []:
                bad.append(tuple(value if i == position else item for i, item in enumerate(default)))
        return bad or None
    return None


def numeric(annotation: object) -> bool:
    """Whether a field holds numbers (int, float, or tuples / optionals of them), not a switch or a name."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return numeric(args[0])
    if args:
        return any(numeric(arg) for arg in args if arg is not type(None) and arg is not Ellipsis)
    return annotation in (int, float)


def fields_of(cls: type, prefix: str = "") -> typing.Iterator[tuple[str, object, object]]:
    """``(dotted path, annotation, default)`` of every field, nested configs included."""
    hints = typing.get_type_hints(cls, include_extras=True)
    instance = cls()
    for field in dataclasses.fields(cls):
        value = getattr(instance, field.name)
        if dataclasses.is_dataclass(value):
            yield from fields_of(type(value), f"{prefix}{field.name}.")
        else:
            yield f"{prefix}{field.name}", hints[field.name], value


@pytest.mark.parametrize("method", BUILT_IN)
def test_every_numeric_field_declares_a_range_that_holds_its_default_and_refuses_values_outside(
    method: str,
) -> None:
    config = method_class(method).Config
    checked = 0
    for path, annotation, default in fields_of(config):
        bad = violations(annotation, default)
        assert bad or not numeric(annotation), f"{method}: {path} ({annotation}) declares no valid range"
        for value in bad or []:
            with pytest.raises(ConfigError, match=path.rsplit(".", 1)[-1]):
                merge_config(config, config(), {path: value}, "--set")
            checked += 1
    assert checked >= 10  # the optimizer's fields alone give that many
    merge_config(config, config(), {}, "--set")  # every default is inside its range


@pytest.mark.parametrize(
    ("method", "setting"),
    [
        ("simclr", "temperature=0"),
        ("simclr", "out_dim=0"),
        ("mocov2", "queue_size=0"),
        ("splitbrain", "target_stride=0"),
        ("vicreg", "hidden_dim=-1"),
        ("byol", "base_momentum=-1"),
        ("mocov2", "momentum=5"),
        ("rotnet", "hflip_p=3"),
        ("simclr", "optimizer.warmup_epochs=-5"),
    ],
)
def test_d1_out_of_range_method_settings_are_one_line_and_create_nothing(
    tmp_path: Path, method: str, setting: str, capsys
) -> None:
    run = tmp_path / "run"
    flags = ["--method", method, "--data", "shapes10", "--split", "test", "--image-size", "16"]
    assert main(["train", *flags, "--set", setting, "--max-steps", "1", "--out", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert setting.split("=")[0].rsplit(".", 1)[-1] in err and not run.exists()


def test_d1_optimizer_arguments_torch_refuses_are_one_line(tmp_path: Path, capsys) -> None:
    kwargs = yaml.safe_dump({"betas": [0.5]}, default_flow_style=True).strip()
    flags = ["--method", "simclr", "--data", "shapes10", "--split", "test", "--image-size", "16"]
    flags += ["--set", "optimizer.name=adam", "--set", f"optimizer.kwargs={kwargs}"]
    assert main(["train", *flags, "--max-steps", "1", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert "optimizer.kwargs {'betas': [0.5]} do not fit adam" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()
