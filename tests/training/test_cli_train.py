"""``edgessl train`` end to end: flags, YAML, --set, --print-config, Ctrl-C exit 130, --resume."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from tiny_runs import TINY_FLAGS

from edgessl.checkpoints import load_checkpoint
from edgessl.cli import main
from edgessl.runs import CHECKPOINT_DIR, LAST
from edgessl.training.run_log import METRICS_FILE, read_metrics

TINY = [*TINY_FLAGS, "--no-progress"]


def test_print_config_precedence_flags_over_yaml_over_defaults(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "run.yaml"
    file.write_text(
        yaml.safe_dump({"method": "tiny", "epochs": 7, "batch_size": 48, "method_overrides": {"noise": 0.5}})
    )
    code = main(
        ["train", "--config", str(file), "--epochs", "9", "--set", "optimizer.name=adam", "--print-config"]
    )
    assert code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    # flag, file, method default
    assert (printed["epochs"], printed["batch_size"], printed["lr"]) == (9, 48, 0.05)
    assert (
        printed["method_overrides"]["noise"] == 0.5
        and printed["method_overrides"]["optimizer"]["name"] == "adam"
    )
    assert printed["out"] == "runs/tiny-shufflenetv2"


def test_bad_options_exit_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", *TINY, "--set", "temprature=0.1", "--print-config"]) == 2
    assert "unknown TinyConfig option 'temprature'" in capsys.readouterr().err
    assert main(["train", *TINY, "--set", "novalue", "--print-config"]) == 2
    assert main(["train", *TINY, "--method", "simclrr", "--print-config"]) == 2


def test_train_max_steps_then_ctrl_c_then_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny_faults
) -> None:
    run = tmp_path / "run"
    assert (
        main(["train", *TINY, "--epochs", "2", "--batch-size", "50", "--max-steps", "5", "--out", str(run)])
        == 0
    )
    done = re.search(r"done: 0 full epoch\(s\) \+ 5/(\d+) steps of epoch 1, 5 steps", capsys.readouterr().out)
    assert done and int(done.group(1)) > 5  # stopped inside epoch 1, as the progress bar said
    assert load_checkpoint(run / CHECKPOINT_DIR / LAST)["metadata"]["step"] == 5
    # --resume alone picks the run's config.yaml; a Ctrl-C during step 8 saves step 8 and exits 130
    tiny_faults(ctrl_c_at_call=3)
    assert main(["train", "--resume", "--out", str(run), "--no-progress"]) == 130
    err = capsys.readouterr().err
    assert "interrupted at step 8" in err and "--resume" in err
    tiny_faults(ctrl_c_at_call=0)
    assert main(["train", "--resume", "--out", str(run), "--no-progress"]) == 0
    state = load_checkpoint(run / CHECKPOINT_DIR / LAST)
    assert (state["metadata"]["epoch"], state["metadata"]["step"]) == (2, 40)
    assert [r["step"] for r in read_metrics(run / METRICS_FILE)] == list(range(1, 41))
    assert main(["train", *TINY, "--epochs", "2", "--out", str(run)]) == 2  # an existing run needs --resume


def test_the_train_docstring_names_every_field_a_resume_may_change() -> None:
    from edgessl.cli import train as train_command
    from edgessl.training.config import RESUMABLE

    doc = train_command.__doc__
    assert [field for field in RESUMABLE if field not in doc and field.replace("_", "-") not in doc] == []
