"""A stopped study continues where it stopped: finished cells are never retrained.

The control flow is tested with a fake trainer and evaluator (fast, exact call counts);
``test_quick_study_end_to_end`` runs the real trainer and kNN on a tiny grid.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edgessl.checkpoints import save_checkpoint
from edgessl.runs import CHECKPOINT_DIR, LAST
from edgessl.study import runner
from edgessl.study.config import StudyConfig
from edgessl.study.results import CellResult
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
        monkeypatch.setattr(runner, "pretrain", self.train)
        monkeypatch.setattr(
            runner,
            "train_config",
            lambda config, method, backbone, run_dir: (run_dir, config.train.epochs, config.train.max_steps),
        )
        monkeypatch.setattr(runner, "evaluate_run", self.evaluate)
        monkeypatch.setattr(runner, "measure_cell", self.measure)

    def train(self, config, resume: bool, console, progress: bool) -> None:
        run_dir, epochs, max_steps = config
        self.train_calls.append((run_dir.name, resume, epochs))
        if run_dir.name == self.fail_on:
            raise Interrupted(run_dir.name)
        step = min(
            10 * min(epochs, self.stop_at_epoch or epochs), max_steps or 10 * epochs
        )  # 10 steps per epoch
        reached = step // 10
        save_checkpoint({"metadata": {"epoch": reached, "step": step}}, run_dir / CHECKPOINT_DIR / LAST)
        if reached < epochs and step != max_steps:
            raise Interrupted(f"{run_dir.name} killed at epoch {reached}")

    def evaluate(self, config: StudyConfig, run_dir: Path, protocol: str):
        self.eval_calls.append((run_dir.name, protocol))
        return tuple((epoch, epoch / 10) for epoch in range(1, config.train.epochs + 1))

    def measure(self, config, method, backbone, run_dir, curves) -> CellResult:
        epoch, step = runner.training_state(run_dir)
        return CellResult(method, backbone, epoch, step, curves, 1.0, 10, 100.0, 4900.0, 32)


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
    fake.fail_on = "rotnet-squeezenet"
    with pytest.raises(Interrupted):
        runner.run_study(config(tmp_path))
    assert fake.train_calls == [("simclr-squeezenet", False, 2), ("rotnet-squeezenet", False, 2)]
    fake.fail_on = None
    outcome = runner.run_study(config(tmp_path))
    assert fake.train_calls[2:] == [("rotnet-squeezenet", False, 2)]  # simclr is not trained again
    assert outcome.skipped == ["simclr-squeezenet"] and outcome.processed == ["rotnet-squeezenet"]
    assert outcome.complete and [c.method for c in outcome.cells] == ["simclr", "rotnet"]
    again = runner.run_study(config(tmp_path))
    assert len(fake.train_calls) == 3 and len(fake.eval_calls) == 2  # nothing left to do
    assert again.skipped == ["simclr-squeezenet", "rotnet-squeezenet"]
    table = (tmp_path / "study" / runner.TABLE_MD).read_text()
    assert "| simclr (paper recipe) | 0.200 |" in table and "| rotnet (paper recipe) | 0.200 |" in table
    for name in (runner.TABLE_CSV, runner.FIGURE_1, runner.FIGURE_2, runner.STUDY_FILE):
        assert (tmp_path / "study" / name).is_file()


def test_half_trained_cell_resumes_and_trained_cell_is_only_evaluated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeStudy(monkeypatch)
    fake.stop_at_epoch = 1
    with pytest.raises(Interrupted):
        runner.run_study(config(tmp_path, epochs=3))
    fake.stop_at_epoch = None
    outcome = runner.run_study(config(tmp_path, epochs=3), max_cells=1)
    assert fake.train_calls == [("simclr-squeezenet", False, 3), ("simclr-squeezenet", True, 3)]
    assert outcome.processed == ["simclr-squeezenet"] and not outcome.complete
    # rotnet trained fully but its evaluation "crashed": the rerun evaluates without training.
    save_checkpoint(
        {"metadata": {"epoch": 3, "step": 30}},
        tmp_path / "study" / "runs" / "rotnet-squeezenet" / CHECKPOINT_DIR / LAST,
    )
    outcome = runner.run_study(config(tmp_path, epochs=3))
    assert len(fake.train_calls) == 2 and fake.eval_calls[-1] == ("rotnet-squeezenet", "knn")
    assert outcome.complete
    # Asking for more epochs later resumes every cell from where it ended.
    runner.run_study(config(tmp_path, epochs=4))
    assert fake.train_calls[2:] == [("simclr-squeezenet", True, 4), ("rotnet-squeezenet", True, 4)]


def test_cells_stopped_by_max_steps_count_as_trained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeStudy(monkeypatch)
    first = runner.run_study(config(tmp_path, epochs=5, max_steps=5))
    assert [cell.epochs for cell in first.cells] == [0, 0] and first.complete
    runner.run_study(config(tmp_path, epochs=5, max_steps=5))
    assert [resume for _, resume, _ in fake.train_calls] == [False, False]  # the rerun trains nothing
