"""The command line: user errors are one line, exit code 2, no traceback."""

from __future__ import annotations

import subprocess
import sys


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgessl", *args], check=False, capture_output=True, text=True, timeout=300
    )


def test_unknown_backbone_is_one_line_with_exit_code_2() -> None:
    result = run_cli("backbones", "mobilenet_v2")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "unknown backbone 'mobilenet_v2'" in lines[0] and "Did you mean 'mobilenetv2'" in lines[0]


def test_backbones_table_lists_the_requested_encoder() -> None:
    result = run_cli("backbones", "shufflenetv2")
    assert result.returncode == 0, result.stderr
    assert "shufflenetv2" in result.stdout and "1024" in result.stdout


def test_unknown_command_exits_2() -> None:
    result = run_cli("pretrain")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
