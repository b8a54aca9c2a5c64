"""``edgessl export`` on bad input: one line on stderr, the right exit code, nothing written."""

from __future__ import annotations

from pathlib import Path

import torch

from edgessl.cli import main


def test_foreign_checkpoint_is_one_line_exit_1(tmp_path: Path, capsys) -> None:
    foreign = tmp_path / "resnet.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, foreign)
    out = tmp_path / "exported"
    assert main(["export", str(foreign), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "not an edgessl checkpoint" in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_unknown_head_and_bad_batch_exit_2_before_loading(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "missing.pt"  # never read: options are checked first
    assert main(["export", str(missing), "--head", "kmeans"]) == 2
    assert "Did you mean 'knn'" in capsys.readouterr().err
    assert main(["export", str(missing), "--fixed-batch", "0"]) == 2
    assert "--fixed-batch must be at least 1" in capsys.readouterr().err


def test_bad_mobile_options_exit_2_before_loading(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "missing.pt"  # never read: options are checked first
    assert main(["export", str(missing), "--input", "uint8-nchw"]) == 2
    assert "Did you mean 'uint8-nhwc'" in capsys.readouterr().err
    assert main(["export", str(missing), "--input", "uint8-nhwc", "--frame-size", "480by640"]) == 2
    assert "HEIGHTxWIDTH" in capsys.readouterr().err
    assert main(["export", str(missing), "--frame-size", "480x640"]) == 2
    assert "add --input uint8-nhwc" in capsys.readouterr().err
    assert main(["export", str(missing), "--weights", str(missing)]) == 2
    assert "exactly one" in capsys.readouterr().err
    assert not (tmp_path / "exported").exists()
