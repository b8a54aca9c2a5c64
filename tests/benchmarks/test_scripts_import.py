"""Every benchmark script still imports against today's package: a moved module breaks it here, not on
the next run."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
SCRIPTS = sorted(BENCHMARKS.glob("*.py"))
HELPERS = {"cifar_knn", "gpu_suite_report", "results_io", "timebox"}  # imported by other scripts, not run


def test_there_are_benchmarks_to_check() -> None:
    assert len(SCRIPTS) >= 10 and BENCHMARKS / "shapes10_knn.py" in SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.stem)
def test_benchmark_imports_and_has_an_entry_point(script: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # the scripts import their shared helpers by module name
    spec = importlib.util.spec_from_file_location(f"benchmark_{script.stem}", script)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up while defined
    spec.loader.exec_module(module)  # top level only: each script runs under `if __name__ == "__main__"`
    assert callable(getattr(module, "main", None)) or script.stem in HELPERS, f"{script.name} has no main()"
