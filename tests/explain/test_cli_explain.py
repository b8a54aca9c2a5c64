"""``edgessl explain`` on a real (briefly trained) run folder and real STL-10 images (the mini subset)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from edgessl.cli import main


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory: pytest.TempPathFactory, stl10_mini_root: Path) -> Path:
    from edgessl.training.config import TrainConfig
    from edgessl.training.trainer import train

    run = tmp_path_factory.mktemp("explain") / "run"
    config = TrainConfig(
        method="rotnet",
        backbone="squeezenet",
        data="stl10",
        data_root=str(stl10_mini_root),
        image_size=32,
        epochs=1,
        batch_size=16,
        max_steps=2,
        out=str(run),
    )
    train(config, progress=False)
    return run


def stl10(run_folder: Path, root: Path, *options: str) -> int:
    return main(["explain", str(run_folder), "--data", "stl10", "--data-root", str(root), *options])


def test_explain_writes_every_picture(run_folder: Path, stl10_mini_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "pictures"
    assert stl10(run_folder, stl10_mini_root, "--per-class", "1", "--neighbours", "3", "--out", str(out)) == 0
    sizes = {path.name: struct.unpack(">II", path.read_bytes()[16:24]) for path in out.iterdir()}
    # STL-10's 10 classes: a row each in the saliency and retrieval grids.
    assert sizes == {"saliency.png": (640, 1640), "retrieval.png": (520, 1340), "confusion.png": (700, 700)}


def test_explain_reports_user_errors(
    run_folder: Path, stl10_mini_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert stl10(run_folder, stl10_mini_root, "--kind", "salience") == 2
    assert "Did you mean 'saliency'" in capsys.readouterr().err
    assert stl10(run_folder, stl10_mini_root, "--epoch", "7") == 1
    assert "no checkpoint of epoch 7 (it keeps only last.pt)" in capsys.readouterr().err
    assert stl10(run_folder, stl10_mini_root, "--neighbours", "0") == 2


def test_d20_too_many_neighbours_is_one_line_and_leaves_no_folder(
    run_folder: Path, stl10_mini_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "pictures"
    assert stl10(run_folder, stl10_mini_root, "--neighbours", "100000", "--out", str(out)) == 2
    assert "--neighbours must be between 1 and 32" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("fault", [KeyboardInterrupt, OSError(28, "No space left on device")])
def test_ctrl_c_or_a_full_disk_mid_explain_leaves_no_output_folder(
    run_folder: Path, stl10_mini_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault
) -> None:
    from edgessl.explain import report

    def failing(context, out: Path):
        raise fault

    monkeypatch.setitem(report.EXPLAINERS._entries, "confusion", failing)
    out = tmp_path / "new" / "pictures"
    with pytest.raises(fault if isinstance(fault, type) else OSError):
        report.explain(
            run_folder, "stl10", kinds=["saliency", "confusion"], out=out, data_root=stl10_mini_root
        )
    assert not (tmp_path / "new").exists()  # every folder this call created is gone
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "mine.txt").write_text("the user's")
    with pytest.raises(fault if isinstance(fault, type) else OSError):
        report.explain(
            run_folder, "stl10", kinds=["saliency", "confusion"], out=kept, data_root=stl10_mini_root
        )
    # the saliency picture drawn before the fault is removed again: the folder is as it was found
    assert [p.name for p in kept.iterdir()] == ["mine.txt"] and (
        kept / "mine.txt"
    ).read_text() == "the user's"
