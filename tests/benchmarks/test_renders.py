"""Every benchmark's ``--render`` still turns its committed JSON into its committed markdown, byte for byte.

A committed result cost hours to measure and is not measured again to reword a report, so
the renderer must keep reading the keys the committed record has: a renamed machine fact
or a reworded line fails here, not in a stale report.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
RESULTS = BENCHMARKS / "results"
sys.path.insert(0, str(BENCHMARKS))  # the benchmark scripts import each other by module name

# script -> the markdown lines its --render writes, from its module and its committed record
RENDERS: dict[str, Callable[[ModuleType, dict[str, Any]], list[str]]] = {
    "export_formats": lambda m, saved: m.markdown(saved["rows"], saved["machine"], m.Setting()),
    "method_parity": lambda m, saved: m.report_lines(saved),
    "recipes": lambda m, saved: m.report_lines(saved),
}


def test_every_script_with_a_render_mode_is_checked() -> None:
    rendering = {path.stem for path in BENCHMARKS.glob("*.py") if '"--render"' in path.read_text()}
    assert rendering == set(RENDERS)


@pytest.mark.parametrize("script", sorted(RENDERS))
def test_render_reproduces_the_committed_markdown(script: str) -> None:
    saved = json.loads((RESULTS / f"{script}.json").read_text())
    lines = RENDERS[script](importlib.import_module(script), saved)
    assert "\n".join(lines) + "\n" == (RESULTS / f"{script}.md").read_text()
