"""A study spread over workers: disjoint shares, cells claimed by a lock, one table from whatever is
finished."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgessl.checkpoints import load_checkpoint
from edgessl.errors import ConfigError
from edgessl.runs import CHECKPOINT_DIR, LAST
from edgessl.study import folder, runner
from edgessl.study.config import StudyConfig, dump_study
from edgessl.study.results import read_cell
from edgessl.study.shard import Shard
from edgessl.training.config import TrainConfig
from edgessl.training.run_folder import locked
from edgessl.training.run_log import METRICS_FILE, read_metrics

REPO = Path(__file__).resolve().parents[2]


def test_shards_are_disjoint_cover_the_grid_and_parse_from_one() -> None:
    units = StudyConfig(tuple("abc"), tuple("xyz"), seeds=2).units()
    shares = [Shard(i, 4).share(units) for i in range(1, 5)]
    assert sorted(u.name for share in shares for u in share) == sorted(u.name for u in units)
    assert len(units) == 18 and len({u.name for u in units}) == 18
    # units 1, 5, 9, 13, 17 of seed 0 then seed 1
    assert [u.name for u in shares[0]] == ["a-x-seed0", "b-y-seed0", "c-z-seed0", "b-x-seed1", "c-y-seed1"]
    assert Shard.parse("2/4") == Shard(2, 4)
    for bad in ("0/4", "5/4", "2", "a/b"):
        with pytest.raises(ConfigError, match="--shard"):
            Shard.parse(bad)


def test_a_claimed_cell_is_left_to_its_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edgessl.study.results import CellResult

    trained: list[str] = []

    def fake_run_cell(config, unit, run_dir, *rest) -> CellResult:
        trained.append(run_dir.name)
        return CellResult(unit.method, unit.backbone, 1, 1, {"knn": ((1, 0.5),)}, 1.0, 1, 1, 1, 16)

    monkeypatch.setattr(runner, "run_cell", fake_run_cell)
    config = StudyConfig(
        ("simclr", "rotnet"),
        ("squeezenet",),
        train=TrainConfig(epochs=1),
        protocols=("knn",),
        out=str(tmp_path),
    )
    claim = tmp_path / folder.RUNS_DIR / "simclr-squeezenet-seed0"
    with locked(claim, folder.CLAIM_FILE):  # another worker holds this cell
        outcome = runner.run_study(config)
    assert trained == ["rotnet-squeezenet-seed0"] and outcome.busy == ["simclr-squeezenet-seed0"]
    assert [cell.method for cell in outcome.cells] == ["rotnet"]  # the table shows what is finished
    assert (
        runner.run_study(config).processed == ["simclr-squeezenet-seed0"]
        and trained[-1] == "simclr-squeezenet-seed0"
    )


def test_two_shards_at_once_finish_every_cell_exactly_once(tmp_path: Path) -> None:
    config = StudyConfig(
        name="sharded",
        methods=("rotnet", "simclr", "byol"),
        backbones=("shufflenetv2",),
        train=TrainConfig(data="shapes10", image_size=16, split="test", epochs=1, max_steps=2, batch_size=16),
        method_overrides={name: {"hidden_dim": 32, "out_dim": 16} for name in ("simclr", "byol")},
        protocols=("knn",),
        eval_options={"knn": {"k": 5}},
        out=str(tmp_path / "study"),
    )
    file = tmp_path / "sharded.yaml"
    file.write_text(dump_study(config))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "COLUMNS": "200",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO),
                                                       os.environ.get("PYTHONPATH")]))}  # fmt: skip
    study = [sys.executable, "-m", "edgessl", "study", str(file), "--no-progress"]
    # shard 2 runs its cells' pretraining as separate jobs, as a cluster would with accelerate launch
    workers = [
        subprocess.Popen([*study, "--shard", "1/2"], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True),
        subprocess.Popen([*study, "--shard", "2/2", "--launcher", sys.executable], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True),
    ]  # fmt: skip
    outputs = [worker.communicate(timeout=300)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], "\n".join(outputs)[-4000:]

    started = [[cell for cell in runner_cells(config) if f"] {cell}" in output] for output in outputs]
    # cells 1, 3 | 2
    assert started == [
        ["rotnet-shufflenetv2-seed0", "byol-shufflenetv2-seed0"],
        ["simclr-shufflenetv2-seed0"],
    ]
    assert "-m edgessl train --config" in outputs[1] and "-m edgessl train --config" not in outputs[0]
    root = Path(config.out)
    for cell in runner_cells(config):
        run = root / folder.RUNS_DIR / cell
        assert read_cell(run) is not None
        assert [record["step"] for record in read_metrics(run / METRICS_FILE)] == [1, 2]  # trained once
        assert load_checkpoint(run / CHECKPOINT_DIR / LAST)["metadata"]["resumes"] == []
    with open(root / folder.TABLE_CSV) as handle:
        rows = {(row["row"], row["column"]): row for row in csv.DictReader(handle)}
    for method in config.methods:  # the last worker to render saw every cell
        assert 0 <= float(rows[f"{method} (paper recipe)", "shufflenetv2"]["estimate"]) <= 1


def runner_cells(config: StudyConfig) -> list[str]:
    return [unit.name for unit in config.units()]
