"""Method registry: ``build_method(name, backbone, image_size, mean, std, config)``.

Adding a method is one module with a :class:`Method` subclass registered here.
"""

from __future__ import annotations

import copy
from typing import Any

from edgessl.backbones.base import check_input_side
from edgessl.config import config_from_dict
from edgessl.methods.base import (
    Method,
    MethodConfig,
    OptimizerConfig,
    ParamGroup,
    Representation,
    StepOutput,
    TrainingProgress,
)
from edgessl.registry import Registry

METHODS: Registry[type[Method]] = Registry("method")


def _register_methods() -> None:
    from edgessl.methods import (  # noqa: F401
        barlowtwins,
        byol,
        dino,
        mocov2,
        rotnet,
        seed,
        simclr,
        splitbrain,
        vicreg,
    )


def method_class(name: str) -> type[Method]:
    _register_methods()
    return METHODS.get(name)


def method_names() -> list[str]:
    _register_methods()
    return METHODS.names()


def run_level_removed(method_config: dict[str, Any]) -> dict[str, Any]:
    """A method config's fields without the two a run holds at its top level (``batch_size``, ``lr``).

    A run's file form (``RUN/config.yaml``, a checkpoint's ``train_config``) keeps the batch
    size and learning rate once, as the train options users set, and every other method
    field under ``method_overrides``.
    """
    fields = {key: value for key, value in method_config.items() if key != "batch_size"}
    fields["optimizer"] = {key: value for key, value in fields["optimizer"].items() if key != "lr"}
    return fields


def method_config_of_run(train: dict[str, Any]) -> MethodConfig:
    """The typed method config of a resolved run's file form (the inverse of :func:`run_level_removed`)."""
    values = copy.deepcopy(train.get("method_overrides", {}))
    values["batch_size"] = train["batch_size"]
    values["optimizer"] = {**values.get("optimizer", {}), "lr": train["lr"]}
    return config_from_dict(method_class(train["method"]).Config, values, "the run's method config")


def build_method(
    name: str,
    backbone: str,
    image_size: int,
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
    config: MethodConfig | None = None,
) -> Method:
    cls = method_class(name)
    method = cls(backbone, config if config is not None else cls.Config(), image_size, mean, std)
    # before any step: one line, not a traceback
    check_input_side(method.representation(), image_size, backbone)
    # the contract: frozen modules get no gradients and stay in eval mode, whatever built them
    for module in method.frozen_modules().values():
        module.requires_grad_(False).eval()
    return method


__all__ = [
    "METHODS",
    "Method",
    "MethodConfig",
    "OptimizerConfig",
    "ParamGroup",
    "Representation",
    "StepOutput",
    "TrainingProgress",
    "build_method",
    "method_class",
    "method_config_of_run",
    "method_names",
    "run_level_removed",
]
