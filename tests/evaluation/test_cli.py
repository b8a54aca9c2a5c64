"""``edgessl eval`` and ``edgessl sweep`` end to end (checkpoints load as tiny representations)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from edgessl.cli import main


def test_eval_json_lists_every_checkpoint_by_epoch_and_saves_results(
    tmp_path: Path, counters, write_run, capsys
) -> None:
    write_run(tmp_path, epochs=(10, 5))
    assert (
        main(
            [
                "eval",
                str(tmp_path),
                "--data",
                "shapes10",
                "--protocol",
                "knn",
                "--k",
                "7",
                "--metric",
                "cosine",
                "--device",
                "cpu",
                "--json",
            ]
        )
        == 0
    )
    records = json.loads(capsys.readouterr().out)
    assert [(r["epoch"], r["protocol"], r["details"]["k"], r["details"]["metric"]) for r in records] == [
        (5, "knn", 7, "cosine"),
        (10, "knn", 7, "cosine"),
    ]
    assert sorted(p.name for p in (tmp_path / "eval").glob("*.json")) == [
        "knn_epoch_0005.json",
        "knn_epoch_0010.json",
    ]


def test_sweep_command_writes_csv_and_png_per_protocol(tmp_path: Path, counters, write_run, capsys) -> None:
    write_run(tmp_path, epochs=(5, 10))
    counters.tiny_data()
    assert (
        main(
            [
                "sweep",
                str(tmp_path),
                "--protocol",
                "knn,linear",
                "--k",
                "5",
                "--epochs",
                "2",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    for protocol in ("knn", "linear"):
        assert (tmp_path / "eval" / f"sweep_{protocol}.csv").read_text().count("\n") == 3  # header + 2 epochs
        assert (tmp_path / "eval" / f"sweep_{protocol}.png").stat().st_size > 1000
        assert f"sweep_{protocol}.png" in out
    assert counters.runs == [
        ("knn", "epoch_0005.pt"),
        ("linear", "epoch_0005.pt"),
        ("knn", "epoch_0010.pt"),
        ("linear", "epoch_0010.pt"),
    ]


def test_bad_protocol_option_and_target_are_one_line_errors(tmp_path: Path, write_run, capsys) -> None:
    write_run(tmp_path, epochs=(5,))
    assert main(["eval", str(tmp_path), "--protocol", "knnn"]) == 2
    assert "Did you mean 'knn'" in capsys.readouterr().err
    assert main(["eval", str(tmp_path), "--protocol", "knn", "--epochs", "3"]) == 2
    assert "epochs" in capsys.readouterr().err
    assert main(["eval"]) == 2
    assert main(["eval", str(tmp_path), "--onnx", "model.onnx"]) == 2


def test_onnx_path_never_imports_torch(tmp_path: Path) -> None:
    script = (
        "import sys\nfrom edgessl.cli import main\n"
        f"code = main(['eval', '--onnx', {str(tmp_path / 'missing.onnx')!r}, '--data', 'shapes10'])\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\nsys.exit(code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1, done.stderr
    assert "ONNX model not found" in done.stderr and "Traceback" not in done.stderr
