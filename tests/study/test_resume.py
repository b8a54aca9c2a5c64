"""A stopped study continues where it stopped: finished cells are never retrained.

The control flow is tested with a fake trainer and evaluator (fast, exact call counts);
``test_quick_study_end_to_end`` runs the real trainer and kNN on a tiny grid.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edgessl.checkpoints import save_checkpoint
from edgessl.errors import EdgesslError
from edgessl.runs import CHECKPOINT_DIR, LAST
from edgessl.study import cell, folder, runner
from edgessl.study.config import StudyConfig
from edgessl.study.results import STUDY_JSON, CellResult
from edgessl.training.config import TrainConfig


class Interrupted(Exception):
    pass


class FakeStudy:
    """Stands in for the trainer and evaluator and counts what the runner asks of them."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.train_calls: list[tuple[str, bool, int]] = []  # (run folder name, resume, epochs)
        self.eval_calls: list[tuple[str, str]] = []
        self.fail_on: str | None = None  # cell name whose training raises
        self.stop_at_epoch: int | None = None  # training "dies" after this epoch
        monkeypatch.setattr(runner, "validate_names", lambda config: None)
        monkeypatch.setattr(cell, "pretrain", self.train)
        monkeypatch.setattr(
            cell,
            "resolve_cell",
            lambda config, unit, run_dir: (run_dir, config.train.epochs, config.train.max_steps),
        )
        monkeypatch.setattr(cell, "evaluate_run", self.evaluate)
        monkeypatch.setattr(cell, "measure_cell", self.measure)

    def train(self, config, resume: bool, console, progress: bool) -> None:
        run_dir, epochs, max_steps = config
        self.train_calls.append((run_dir.name, resume, epochs))
        if run_dir.name == self.fail_on:
            raise Interrupted(run_dir.name)
        # 10 steps per epoch
        step = min(10 * min(epochs, self.stop_at_epoch or epochs), max_steps or 10 * epochs)
        reached = step // 10
        save_checkpoint({"metadata": {"epoch": reached, "step": step}}, run_dir / CHECKPOINT_DIR / LAST)
        if reached < epochs and step != max_steps:
            raise Interrupted(f"{run_dir.name} killed at epoch {reached}")

    def evaluate(self, config: StudyConfig, run_dir: Path, protocol: str, seed: int):
        self.eval_calls.append((run_dir.name, protocol))
        return tuple((epoch, epoch / 10) for epoch in range(1, config.train.epochs + 1))

    def measure(self, config, unit, run_dir, curves) -> CellResult:
        epoch, step = cell.training_state(run_dir)
        return CellResult(
            unit.method, unit.backbone, epoch, step, curves, 1.0, 10, 100.0, 4900.0, 32, seed=unit.seed
        )


def config(tmp_path: Path, epochs: int = 2, max_steps: int | None = None) -> StudyConfig:
    return StudyConfig(
        methods=("simclr", "rotnet"),
        backbones=("squeezenet",),
        train=TrainConfig(epochs=epochs, max_steps=max_steps),
        protocols=("knn",),
        out=str(tmp_path / "study"),
    )


def test_interrupted_study_skips_finished_cells(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeStudy(monkeypatch)
    fake.fail_on = "rotnet-squeezenet-seed0"
    with pytest.raises(Interrupted):
        runner.run_study(config(tmp_path))
    assert fake.train_calls == [("simclr-squeezenet-seed0", False, 2), ("rotnet-squeezenet-seed0", False, 2)]
    fake.fail_on = None
    outcome = runner.run_study(config(tmp_path))
    assert fake.train_calls[2:] == [("rotnet-squeezenet-seed0", False, 2)]  # simclr is not trained again
    assert outcome.skipped == ["simclr-squeezenet-seed0"] and outcome.processed == ["rotnet-squeezenet-seed0"]
    assert outcome.complete and [c.method for c in outcome.cells] == ["simclr", "rotnet"]
    again = runner.run_study(config(tmp_path))
    assert len(fake.train_calls) == 3 and len(fake.eval_calls) == 2  # nothing left to do
    assert again.skipped == ["simclr-squeezenet-seed0", "rotnet-squeezenet-seed0"]
    table = (tmp_path / "study" / folder.TABLE_MD).read_text()
    assert (
        "| simclr (paper recipe) | 0.200 (1) |" in table and "| rotnet (paper recipe) | 0.200 (1) |" in table
    )
    for name in (folder.TABLE_CSV, folder.FIGURE_1, folder.FIGURE_2, folder.STUDY_FILE):
        assert (tmp_path / "study" / name).is_file()


def test_a_new_study_whose_first_cell_refuses_to_start_leaves_no_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeStudy(monkeypatch)

    def refuse(config, resume, console, progress) -> None:  # as the trainer's free-space check does
        fake.train_calls.append((config[0].name, resume, config[1]))
        raise EdgesslError(f"{config[0]} has 0.00 GB free but the run's checkpoints need about 1.00 GB")

    monkeypatch.setattr(cell, "pretrain", refuse)
    with pytest.raises(EdgesslError, match="GB free"):
        runner.run_study(config(tmp_path))
    # no study.yaml, claim or cell folder
    assert len(fake.train_calls) == 1 and list(tmp_path.iterdir()) == []
    kept = tmp_path / "study"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    with pytest.raises(EdgesslError, match="GB free"):
        runner.run_study(config(tmp_path))
    assert [path.name for path in kept.iterdir()] == ["notes.txt"]  # a folder it did not create stays


def test_half_trained_cell_resumes_and_trained_cell_is_only_evaluated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeStudy(monkeypatch)
    fake.stop_at_epoch = 1
    with pytest.raises(Interrupted):
        runner.run_study(config(tmp_path, epochs=3))
    fake.stop_at_epoch = None
    outcome = runner.run_study(config(tmp_path, epochs=3), max_cells=1)
    assert fake.train_calls == [("simclr-squeezenet-seed0", False, 3), ("simclr-squeezenet-seed0", True, 3)]
    assert outcome.processed == ["simclr-squeezenet-seed0"] and not outcome.complete
    # rotnet trained fully but its evaluation "crashed": the rerun evaluates without training.
    save_checkpoint(
        {"metadata": {"epoch": 3, "step": 30}},
        tmp_path / "study" / "runs" / "rotnet-squeezenet-seed0" / CHECKPOINT_DIR / LAST,
    )
    outcome = runner.run_study(config(tmp_path, epochs=3))
    assert len(fake.train_calls) == 2 and fake.eval_calls[-1] == ("rotnet-squeezenet-seed0", "knn")
    assert outcome.complete
    # Asking for more epochs later resumes every cell from where it ended.
    runner.run_study(config(tmp_path, epochs=4))
    assert fake.train_calls[2:] == [
        ("simclr-squeezenet-seed0", True, 4),
        ("rotnet-squeezenet-seed0", True, 4),
    ]


def test_cells_stopped_by_max_steps_count_as_trained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeStudy(monkeypatch)
    first = runner.run_study(config(tmp_path, epochs=5, max_steps=5))
    assert [cell.epochs for cell in first.cells] == [0, 0] and first.complete
    runner.run_study(config(tmp_path, epochs=5, max_steps=5))
    assert [resume for _, resume, _ in fake.train_calls] == [False, False]  # the rerun trains nothing


def test_more_seeds_train_only_the_new_seeds_and_study_json_keeps_each_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json
    from dataclasses import replace

    fake = FakeStudy(monkeypatch)
    one = config(tmp_path)
    runner.run_study(one)
    assert [name for name, _, _ in fake.train_calls] == ["simclr-squeezenet-seed0", "rotnet-squeezenet-seed0"]
    three = replace(one, seeds=3)
    outcome = runner.run_study(three, max_cells=2)  # stopped part-way: seed 1 of both cells
    assert outcome.skipped == ["simclr-squeezenet-seed0", "rotnet-squeezenet-seed0"]
    assert (
        outcome.processed == ["simclr-squeezenet-seed1", "rotnet-squeezenet-seed1"] and not outcome.complete
    )
    outcome = runner.run_study(three)
    assert outcome.processed == ["simclr-squeezenet-seed2", "rotnet-squeezenet-seed2"] and outcome.complete
    assert len(fake.train_calls) == 6  # every unit trained once
    record = json.loads((tmp_path / "study" / STUDY_JSON).read_text())
    assert record["seeds"] == [0, 1, 2] and record["config"]["seeds"] == 3
    assert sorted((u["method"], u["seed"]) for u in record["units"]) == [
        (m, s) for m in ("rotnet", "simclr") for s in range(3)
    ]
    simclr = next(row for row in record["table"]["rows"] if row["label"].startswith("simclr"))
    assert simclr["values"][0]["n"] == 3 and simclr["values"][0]["low"] is not None


def test_a_study_folder_from_before_seeds_is_refused_not_retrained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edgessl.errors import ConfigError

    fake = FakeStudy(monkeypatch)
    (tmp_path / "study" / folder.RUNS_DIR / "simclr-squeezenet" / CHECKPOINT_DIR).mkdir(parents=True)
    with pytest.raises(
        ConfigError, match="rename each runs/<method>-<backbone> to runs/<method>-<backbone>-seed0"
    ):
        runner.run_study(config(tmp_path))
    assert fake.train_calls == []


def test_a_diverged_run_is_kept_as_a_result_and_the_study_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edgessl.errors import TrainingDiverged
    from edgessl.study.results import read_cell

    fake = FakeStudy(monkeypatch)
    real_train = fake.train

    def train(config, resume, console, progress):
        if config[0].name == "rotnet-squeezenet-seed0":
            fake.train_calls.append((config[0].name, resume, config[1]))
            raise TrainingDiverged(
                "the loss became nan at step 5; training stopped and no checkpoint was written"
            )
        real_train(config, resume, console, progress)

    monkeypatch.setattr(cell, "pretrain", train)
    outcome = runner.run_study(config(tmp_path))
    assert outcome.complete and outcome.processed == ["simclr-squeezenet-seed0", "rotnet-squeezenet-seed0"]
    diverged = read_cell(tmp_path / "study" / folder.RUNS_DIR / "rotnet-squeezenet-seed0")
    assert diverged.diverged == "the loss became nan at step 5" and diverged.curves == {}
    rows = {row.label: row for row in outcome.table.rows}
    assert rows["rotnet (paper recipe)"].values == (None, None)  # no number from a diverged run
    assert rows["diverged runs (NaN loss; not in the numbers above)"].values == (
        "rotnet seed 0",
        "rotnet seed 0",
    )
    # simclr's alone: the diverged run costs nothing here
    assert rows["Avg. training time (s)"].values[0] == 1.0
    again = runner.run_study(config(tmp_path))
    assert again.skipped == ["simclr-squeezenet-seed0", "rotnet-squeezenet-seed0"]  # not retried
    assert [name for name, _, _ in fake.train_calls].count("rotnet-squeezenet-seed0") == 1
