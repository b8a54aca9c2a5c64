"""docs/TRAINING_STEP.md cites code as `FILE:NAME`; every cited file must define every cited name."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PAGE = REPO / "docs" / "TRAINING_STEP.md"
CITATION = re.compile(r"`([\w/.]+\.py):([\w.]+)`")


def defined_names(path: Path) -> set[str]:
    """Top-level functions, classes and assignments of ``path``, and ``Class.method`` for each method."""
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names.add(node.name)
            names.update(
                f"{node.name}.{item.name}"
                for item in node.body
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))
            )
        elif isinstance(node, ast.Assign):
            names.update(target.id for target in node.targets if isinstance(target, ast.Name))
    return names


def test_every_name_the_page_cites_is_defined_where_it_says() -> None:
    citations = CITATION.findall(PAGE.read_text())
    assert len(citations) >= 30  # the page walks the whole step; a broken pattern would find none
    missing = [
        f"{file}:{name}"
        for file, name in citations
        if not (REPO / file).is_file() or name not in defined_names(REPO / file)
    ]
    assert missing == []


def test_the_checker_catches_a_name_that_is_not_there(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("class A:\n    def f(self):\n        pass\n\ndef g():\n    pass\n")
    assert defined_names(module) == {"A", "A.f", "g"}
