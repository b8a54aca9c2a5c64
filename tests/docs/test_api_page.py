"""docs/API.md runs as written: its Python block trains, evaluates, explains and exports."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[2] / "docs" / "API.md"


def test_the_api_page_code_runs_and_makes_what_it_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    (code,) = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.DOTALL)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(PAGE), "exec"), {})  # noqa: S102 (our own documentation page)
    accuracy, *_ = capsys.readouterr().out.strip().splitlines()[-1].split()
    assert 0.1 < float(accuracy) <= 1.0
    run = tmp_path / "runs" / "notebook"
    assert (run / "checkpoints" / "epoch_0002.pt").is_file() and (run / "plots" / "loss.png").is_file()
    assert list((run / "explain").rglob("retrieval.png"))
    assert sorted(p.suffix for p in (tmp_path / "exported").iterdir()) == [".onnx", ".onnx"]
