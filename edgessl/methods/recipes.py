"""Named recipes: a method's hyper-parameters for one training regime, each value with its source.

A method's ``Config`` defaults are its paper's main setting (the ``paper`` recipe), which
for SimCLR, BYOL and MoCo v2 means 1000 epochs at batch 4096, or 200 epochs at 256 on
ImageNet. People mostly run 100-300 epochs at batch 256 on 32-96 px images, where some of
those values are known to be wrong (BYOL's tau 0.996 hardly moves the target in 100 epochs,
SimCLR's linear lr rule over-shoots at small batches). A :class:`Recipe` is a set of
``--set``-style overrides on top of the paper defaults; ``--set`` and the run's own flags
still win over it. Every method has ``paper`` and ``short``; a method may add more.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PAPER = "paper"
SHORT = "short"
# The regime the ``short`` recipes are for: what people mostly run (see the module docstring).
SHORT_REGIME = "100-300 epochs at batch 256 on 32-96 px images"


@dataclass(frozen=True)
class Recipe:
    """Overrides of a method's paper defaults for one regime, and where they come from."""

    summary: str  # the regime, in a few words (shown by --help and the start line)
    overrides: dict[str, Any] = field(default_factory=dict)  # nested like method_overrides
    sources: tuple[str, ...] = ()  # one citation per value, or per group of values


PAPER_RECIPE = Recipe("the paper's main setting (the method's Config defaults, each cited there)")
