"""The benchmarks' gap statistics: a paired-by-seed interval, and 'within noise' exactly when it holds 0."""

from __future__ import annotations

import importlib
import math
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture
def cifar_knn(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # the benchmarks' shared helper module, by name
    return importlib.import_module("cifar_knn")


def test_the_gap_is_paired_by_seed_with_a_t_interval_by_hand(cifar_knn) -> None:
    gap_interval, gap_verdict, gap_cell = cifar_knn.gap_interval, cifar_knn.gap_verdict, cifar_knn.gap_cell
    gap = gap_interval([34.3, 35.6, 31.3], [32.1, 33.5, 35.0])  # SimCLR edgessl vs lightly-built
    differences = [2.2, 2.1, -3.7]
    mean = sum(differences) / 3
    sd = math.sqrt(sum((d - mean) ** 2 for d in differences) / 2)
    assert gap.estimate == pytest.approx(mean)
    assert gap.half_width == pytest.approx(4.302652729911275 * sd / math.sqrt(3))
    assert gap_verdict(gap, "edgessl better", "edgessl worse") == "within noise"
    assert gap_cell(gap) == f"{mean:+.1f} [{gap.low:+.1f}, {gap.high:+.1f}]"


def test_a_gap_whose_interval_excludes_zero_names_the_side(cifar_knn) -> None:
    gap_interval, gap_verdict, gap_cell = cifar_knn.gap_interval, cifar_knn.gap_verdict, cifar_knn.gap_cell
    assert gap_verdict(
        gap_interval([20.0, 21.0, 22.0], [10.0, 10.5, 11.5]), "short better", "paper better"
    ) == ("short better")
    assert gap_verdict(
        gap_interval([10.0, 10.5, 11.5], [20.0, 21.0, 22.0]), "short better", "paper better"
    ) == ("paper better")
    one_seed = gap_interval([21.8], [12.8])
    assert gap_verdict(one_seed, "a", "b").startswith("no interval (1 seed)") and gap_cell(one_seed) == "+9.0"
