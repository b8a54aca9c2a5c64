"""Paired comparison of two sets of study runs: is A better than B, or within noise?

Two *arms* (a method of one study, or of two studies: two recipes, distilled vs plain)
are paired by (backbone, seed): the same backbone trained with the same seed by both.
The answer has two statistics, both over seeds and backbones (:mod:`edgessl.stats`):

- the paired difference A - B of Table 1's number, with a bootstrap interval stratified
  by backbone; A is better only when the whole interval is above 0;
- rliable's probability of improvement P(A > B), per backbone and averaged over them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edgessl.errors import EdgesslError, UnknownNameError
from edgessl.stats import Interval, mean_interval, paired_difference, probability_of_improvement
from edgessl.study.results import STUDY_JSON, CellResult
from edgessl.study.table import seed_scores


@dataclass(frozen=True)
class Arm:
    """One side of a comparison: a method's units in a study."""

    label: str  # e.g. "simclr" or "studyB:simclr"
    method: str
    cells: tuple[CellResult, ...]


@dataclass(frozen=True)
class BackbonePair:
    backbone: str
    a: Interval  # A's mean over its seeds
    b: Interval
    difference: Interval  # mean of paired A - B over the shared seeds


@dataclass(frozen=True)
class Comparison:
    a: str
    b: str
    protocol: str
    per_backbone: tuple[BackbonePair, ...]
    difference: Interval  # paired A - B over every shared (backbone, seed)
    probability: Interval  # P(A > B)

    @property
    def verdict(self) -> str:
        """``A better``, ``B better`` or ``within noise`` (the difference's interval contains 0)."""
        if not self.difference.known:
            return "within noise (too few seeds for an interval)"
        if self.difference.low > 0:
            return f"{self.a} better"
        if self.difference.high < 0:
            return f"{self.b} better"
        return "within noise"

    def to_dict(self) -> dict[str, object]:
        return {
            "a": self.a,
            "b": self.b,
            "protocol": self.protocol,
            "difference": self.difference.to_dict(),
            "probability_of_improvement": self.probability.to_dict(),
            "verdict": self.verdict,
            "per_backbone": [
                {
                    "backbone": pair.backbone,
                    "a": pair.a.to_dict(),
                    "b": pair.b.to_dict(),
                    "difference": pair.difference.to_dict(),
                }
                for pair in self.per_backbone
            ],
        }


def read_units(study: str | Path) -> tuple[dict[str, object], list[CellResult]]:
    """``study.json`` of a study folder: its record and every finished unit."""
    path = Path(study) / STUDY_JSON
    if not path.is_file():
        raise EdgesslError(
            f"{study} has no {STUDY_JSON}; run 'edgessl study' on it first (a rerun of a finished study "
            "only renders)"
        )
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        units = [CellResult.from_dict(values) for values in record["units"]]
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise EdgesslError(
            f"{path} is not a study record ({type(exc).__name__}); rerun 'edgessl study' to rewrite it"
        ) from None
    return record, units


def arm(units: Sequence[CellResult], method: str, label: str | None = None) -> Arm:
    cells = tuple(cell for cell in units if cell.method == method)
    if not cells:
        raise UnknownNameError(
            "method with finished runs in this study",
            method,
            {cell.method for cell in units},
        )
    return Arm(label or method, method, cells)


def by_backbone_and_seed(side: Arm, protocol: str) -> dict[str, dict[int, float]]:
    """Table 1's number of each of the arm's runs, by backbone then seed (diverged runs have none)."""
    scores: dict[str, dict[int, float]] = {}
    for cell in side.cells:
        if (value := cell.max_accuracy(protocol)) is not None:
            scores.setdefault(cell.backbone, {})[cell.seed] = value
    return scores


def compare(a: Arm, b: Arm, protocol: str) -> Comparison:
    """Pair ``a`` and ``b`` by (backbone, seed) and compare them; a backbone only one arm has is left out."""
    seeds_a, seeds_b = by_backbone_and_seed(a, protocol), by_backbone_and_seed(b, protocol)
    pairs, differences, scores_a, scores_b = [], [], [], []
    for backbone, by_seed_a in seeds_a.items():
        by_seed_b = seeds_b.get(backbone, {})
        shared = sorted(set(by_seed_a) & set(by_seed_b))
        if not shared:
            continue
        diff = [by_seed_a[s] - by_seed_b[s] for s in shared]
        column_a, column_b = list(by_seed_a.values()), list(by_seed_b.values())
        pairs.append(
            BackbonePair(backbone, mean_interval(column_a), mean_interval(column_b), mean_interval(diff))
        )
        differences.append(diff)
        scores_a.append(column_a)
        scores_b.append(column_b)
    if not pairs:
        raise EdgesslError(
            f"{a.label} and {b.label} share no (backbone, seed) with a '{protocol}' result; "
            "compare runs of the same backbones and seeds"
        )
    return Comparison(
        a.label,
        b.label,
        protocol,
        tuple(pairs),
        paired_difference(differences),
        probability_of_improvement(scores_a, scores_b),
    )


def all_pairs(units: Sequence[CellResult], methods: Sequence[str], protocol: str) -> list[Comparison]:
    """Every pair of methods (in the study's order) that shares a (backbone, seed) with a result."""
    scores = seed_scores(units, protocol)
    present = [m for m in methods if any(method == m for method, _ in scores)]
    comparisons = []
    for i, first in enumerate(present):
        for second in present[i + 1 :]:
            shared = {b for m, b in scores if m == first} & {b for m, b in scores if m == second}
            if shared:
                comparisons.append(compare(arm(units, first), arm(units, second), protocol))
    return comparisons
