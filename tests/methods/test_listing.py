"""Every shipped method reaches the user: ``edgessl train --help``, a study grid, the README, a real run."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml
from teachers import TEACHER_BACKBONE, teacher_flags, teacher_weights_file

from edgessl.checkpoints import load_representation, recorded_method_config
from edgessl.cli import main
from edgessl.config import config_to_dict
from edgessl.errors import UnknownNameError
from edgessl.methods import Method, method_class
from edgessl.runs import CHECKPOINT_DIR, LAST
from edgessl.study.checks import validate_names
from edgessl.study.presets import resolve_study
from edgessl.training.run_log import METRICS_FILE, read_metrics

README = Path(__file__).resolve().parents[2] / "README.md"


def test_train_help_lists_every_shipped_method(
    shipped_methods: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    method_help = re.search(r"--method METHOD\s+(.*?)\n  --", capsys.readouterr().out, re.DOTALL)
    assert method_help is not None
    listed = " ".join(method_help.group(1).split())
    assert all(re.search(rf"\b{name}\b", listed) for name in shipped_methods), listed


def test_a_study_grid_accepts_every_shipped_method(shipped_methods: list[str], tmp_path: Path) -> None:
    grid = tmp_path / "grid.yaml"
    teachers = {  # a distillation method's cell names its teacher
        name: {"teacher": {"source": TEACHER_BACKBONE, "weights": str(teacher_weights_file())}}
        for name in shipped_methods
        if teacher_flags(method_class(name).Config)
    }
    grid.write_text(
        yaml.safe_dump(
            {"methods": shipped_methods, "backbones": ["squeezenet"], "method_overrides": teachers}
        )
    )
    config = resolve_study(str(grid))
    assert list(config.methods) == shipped_methods
    validate_names(config)
    grid.write_text(yaml.safe_dump({"methods": ["barlowtwin"], "backbones": ["squeezenet"]}))
    with pytest.raises(UnknownNameError, match="barlowtwins"):
        validate_names(resolve_study(str(grid)))


def test_readme_method_list_names_every_shipped_method(shipped_methods: list[str]) -> None:
    paragraph = re.search(r"^Methods \((.*?)\) take", README.read_text(), re.MULTILINE | re.DOTALL)
    assert paragraph is not None, "the README's 'Methods (...) take their defaults' sentence moved"
    assert sorted(re.findall(r"`([a-z0-9]+)`", paragraph.group(1))) == sorted(shipped_methods)


def test_edgessl_train_runs_every_method_and_saves_a_usable_checkpoint(
    method_name: str,
    small_method: Callable[..., Method],
    small_fields: Callable[[str], dict[str, int]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = tmp_path / method_name
    args = [
        "train",
        "--method",
        method_name,
        "--backbone",
        "squeezenet",
        "--data",
        "shapes10",
        "--split",
        "test",
    ]
    args += [
        "--image-size",
        "32",
        "--batch-size",
        "16",
        "--max-steps",
        "3",
        "--out",
        str(run),
        "--no-progress",
    ]
    shrunk = small_fields(method_name)
    for key, value in shrunk.items():
        args += ["--set", f"{key}={value}"]
    args += teacher_flags(method_class(method_name).Config)
    assert main(args) == 0
    done = re.search(r"done: 0 full epoch\(s\) \+ 3/(\d+) steps of epoch 1, 3 steps", capsys.readouterr().out)
    assert done and int(done.group(1)) > 3  # stopped inside epoch 1, as the progress bar said
    records = read_metrics(run / METRICS_FILE)
    assert [r["step"] for r in records] == [1, 2, 3] and all(math.isfinite(r["loss"]) for r in records)
    diagnostics = small_method(method_name)(torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)).metrics
    assert all(math.isfinite(r[name]) for r in records for name in diagnostics)  # logged beside the loss
    loaded = load_representation(run / CHECKPOINT_DIR / LAST)
    assert loaded.metadata["method"] == method_name
    recorded = config_to_dict(recorded_method_config(loaded.metadata))
    assert {key: recorded[key] for key in shrunk} == shrunk
    features = loaded.model(torch.rand(2, 3, 32, 32))
    assert features.shape == (2, loaded.model.feature_dim) and torch.isfinite(features).all()
