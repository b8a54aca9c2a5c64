"""Method registry: ``build_method(name, backbone, image_size, mean, std, config)``.

Adding a method is one module with a :class:`Method` subclass registered here.
"""

from __future__ import annotations

from edgessl.backbones.base import check_input_side
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
    "method_names",
]
