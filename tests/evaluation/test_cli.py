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


def test_eval_on_a_folder_states_bank_and_test_split(
    tmp_path: Path, counters, write_run, capsys, cifar10_small, monkeypatch
) -> None:
    """train/ + val/: the statement names train/ as the kNN bank and val/ as the test split, with counts."""
    import shutil

    monkeypatch.setenv("EDGESSL_CACHE", str(tmp_path / "cache"))  # not the user's cache
    folder = tmp_path / "folder"
    for split, files in (("train", slice(0, 6)), ("val", slice(6, 9))):
        for name in ("cat", "dog"):
            (folder / split / name).mkdir(parents=True)
            for path in sorted((cifar10_small / name).iterdir())[files]:
                shutil.copy(path, folder / split / name / path.name)
    write_run(tmp_path / "run", epochs=(5,))
    assert main(["eval", str(tmp_path / "run" / "checkpoints" / "epoch_0005.pt"), "--data", str(folder),
                 "--k", "3", "--device", "cpu"]) == 0  # fmt: skip
    out = " ".join(capsys.readouterr().out.split())  # under the table; rich may wrap the line
    assert f"kNN bank and probe training data: the train split: 12 files from {folder / 'train'}/" in out
    assert (
        f"accuracy measured on the test split: 6 files from {folder / 'val'}/ (val/ serves as the test split"
        in out
    )
    assert counters.runs == [("knn", "epoch_0005.pt")]
