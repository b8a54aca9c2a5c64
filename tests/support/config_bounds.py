"""Values just outside the ranges config fields declare (``Annotated`` bounds), for tests that walk every
field."""

from __future__ import annotations

import math

from annotated_types import Ge, Gt, Le, Lt


def bound_violations(annotation: object) -> list[object]:
    """Values just outside each bound an ``Annotated`` type declares (inf for a finite-only float)."""
    bad: list[object] = []
    for bound in getattr(annotation, "__metadata__", ()):
        if isinstance(bound, Gt):
            bad.append(bound.gt)
        elif isinstance(bound, Ge):
            bad.append(bound.ge - 1)
        elif isinstance(bound, Lt):
            bad.append(math.inf if math.isinf(bound.lt) else bound.lt)
        elif isinstance(bound, Le):
            bad.append(bound.le + 1)
    return bad
