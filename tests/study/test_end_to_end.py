"""The real trainer, kNN and renderer on a tiny image folder: interrupt a study, rerun it from the CLI."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from image_folders import write_tiny_folder

from edgessl.cli import main
from edgessl.study import cell, folder, runner
from edgessl.study.config import StudyConfig, dump_study
from edgessl.study.results import read_cell
from edgessl.training.config import TrainConfig


class Interrupted(Exception):
    pass


def test_quick_study_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("EDGESSL_CACHE", str(tmp_path / "cache"))
    data = write_tiny_folder(tmp_path / "tiny", {"unlabeled": 32, "train": 30, "test": 20})
    config = StudyConfig(
        name="tiny",
        methods=("rotnet", "simclr"),
        backbones=("squeezenet",),
        train=TrainConfig(data=str(data), image_size=32, epochs=2, save_every=1, batch_size=8),
        protocols=("knn",),
        eval_options={"knn": {"k": 5}},
        out=str(tmp_path / "study"),
    )
    real_pretrain, calls = cell.pretrain, []

    def spy(run, resume, console, progress):
        calls.append((run.train.method, resume))
        if len(calls) == 2:  # the study is "killed" as the second cell starts
            raise Interrupted
        return real_pretrain(run, resume, console, progress)

    monkeypatch.setattr(cell, "pretrain", spy)
    with pytest.raises(Interrupted):
        runner.run_study(config, progress=False)
    first = read_cell(tmp_path / "study" / "runs" / "rotnet-squeezenet-seed0")
    assert first is not None and first.epochs == 2 and [epoch for epoch, _ in first.curves["knn"]] == [1, 2]
    assert first.train_seconds > 0 and first.macs > 0 and first.params > 0

    config_file = tmp_path / "tiny.yaml"
    config_file.write_text(dump_study(config))
    assert main(["study", str(config_file), "--no-progress"]) == 0
    assert calls == [("rotnet", False), ("simclr", False), ("simclr", False)]  # rotnet was not retrained
    table = (tmp_path / "study" / folder.TABLE_CSV).read_text().splitlines()
    assert (
        table[0] == "row,column,estimate,ci_low,ci_high,n"
        and table[1].startswith("rotnet (paper recipe),squeezenet,0.")
        and table[1].endswith(",,,1")  # one seed: no interval
        and table[3].startswith("simclr (paper recipe),squeezenet,0.")
    )
    assert main(["study", str(config_file), "--no-progress"]) == 0
    assert len(calls) == 3
    # D24: a changed setting is refused, never "already finished" with the old table under a new study.yaml
    kept = (tmp_path / "study" / folder.STUDY_FILE).read_text()
    config_file.write_text(
        dump_study(dataclasses.replace(config, train=dataclasses.replace(config.train, image_size=24)))
    )
    assert main(["study", str(config_file), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert (
        "rotnet-squeezenet-seed0" in err
        and "image_size 32 then, 24 now" in err
        and len(err.strip().splitlines()) == 1
    )
    assert (tmp_path / "study" / folder.STUDY_FILE).read_text() == kept and len(calls) == 3


def test_wrong_names_and_options_fail_before_any_training(tmp_path: Path) -> None:
    from edgessl.errors import ConfigError, UnknownNameError

    base = {
        "methods": ("simclr",),
        "backbones": ("squeezenet",),
        "protocols": ("knn",),
        "out": str(tmp_path / "study"),
    }
    with pytest.raises(UnknownNameError, match="simclr"):
        runner.run_study(StudyConfig(**{**base, "methods": ("simclrr",)}))
    with pytest.raises(UnknownNameError, match="squeezenet"):
        runner.run_study(StudyConfig(**{**base, "backbones": ("squeezenet1",)}))
    with pytest.raises(ConfigError, match="kk"):
        runner.run_study(StudyConfig(**base, eval_options={"knn": {"kk": 3}}))
    if not torch.cuda.is_available():  # D10: refused before the first cell trains, not after it
        with pytest.raises(ConfigError, match="torch sees no CUDA device"):
            runner.run_study(StudyConfig(**base, device="cuda"))
    with pytest.raises(ConfigError, match="'seeds' is 0"):
        runner.run_study(StudyConfig(**base, seeds=0))
    assert not (tmp_path / "study").exists()


def test_a_distilled_cell_names_its_teacher_and_table_1_counts_its_cost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SEED cell taught by an earlier SimCLR run: its row names the teacher, and the cost rows show the
    teacher's pretraining time beside the student's and in the total."""
    from edgessl.checkpoints import load_checkpoint
    from edgessl.training import train

    monkeypatch.setenv("EDGESSL_CACHE", str(tmp_path / "cache"))
    data = write_tiny_folder(tmp_path / "tiny", {"unlabeled": 32, "train": 30, "test": 20})
    base = TrainConfig(data=str(data), image_size=32, epochs=1, save_every=1, batch_size=8, monitor_every=0)
    teacher = train(
        TrainConfig(**{**vars(base), "method": "simclr", "out": str(tmp_path / "teacher")}), progress=False
    )
    config = StudyConfig(
        name="distilled",
        methods=("seed",),
        backbones=("shufflenetv2",),
        train=base,
        method_overrides={"seed": {"teacher": {"source": str(tmp_path / "teacher")}, "queue_size": 16}},
        protocols=("knn",),
        eval_options={"knn": {"k": 5}},
        out=str(tmp_path / "study"),
    )
    outcome = runner.run_study(config, progress=False)
    teacher_seconds = load_checkpoint(teacher.last_checkpoint)["metadata"]["train_seconds"]
    cell = outcome.cells[0]
    assert cell.teacher["backbone"] == "shufflenetv2" and cell.teacher["method"] == "simclr"
    assert cell.teacher_seconds == pytest.approx(teacher_seconds)
    rows = {row.label: row.values for row in outcome.table.rows}
    assert "seed (paper recipe; teacher simclr shufflenetv2)" in rows
    assert rows["Avg. teacher training time (s)"] == (pytest.approx(teacher_seconds), None)
    total = rows["Avg. training time incl. teacher (s)"][0]
    assert total == pytest.approx(cell.train_seconds + teacher_seconds)


def test_a_distillation_method_without_a_teacher_fails_before_any_training(tmp_path: Path) -> None:
    from edgessl.errors import ConfigError

    config = StudyConfig(methods=("seed",), backbones=("shufflenetv2",), out=str(tmp_path / "study"))
    with pytest.raises(ConfigError, match="seed distils from a teacher; name it under method_overrides"):
        runner.run_study(config, progress=False)
    assert not (tmp_path / "study" / "runs").exists()
