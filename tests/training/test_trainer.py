"""The trainer: exact resumes (stop, Ctrl-C), NaN handling, checkpoint contents, output checks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny_runs import tiny_config as tiny_run

from edgessl.checkpoints import load_checkpoint, load_representation, recorded_method_config, save_checkpoint
from edgessl.errors import ConfigError, DiskFullError, EdgesslError, TrainingDiverged
from edgessl.runs import CHECKPOINT_DIR, LAST, list_checkpoints
from edgessl.training.config import TrainConfig
from edgessl.training.resolve import resolve_run
from edgessl.training.run_log import METRICS_FILE, read_metrics
from edgessl.training.trainer import TrainingInterrupted, train


def tiny_config(out: Path, **changes) -> TrainConfig:
    return tiny_run(out, **{"epochs": 3, "save_every": 2, "seed": 3, "deterministic": True, **changes})


def final_state(run: Path) -> tuple[dict[str, torch.Tensor], list[float]]:
    state = load_checkpoint(run / CHECKPOINT_DIR / LAST)
    return state["model"], [record["loss"] for record in read_metrics(run / METRICS_FILE)]


def assert_same_run(straight: Path, resumed: Path) -> None:
    weights_a, losses_a = final_state(straight)
    weights_b, losses_b = final_state(resumed)
    assert len(losses_a) == len(losses_b) == 45  # 3 epochs x 15 steps, no step repeated or skipped
    assert losses_b == pytest.approx(losses_a, rel=1e-5, abs=1e-6)
    assert weights_a.keys() == weights_b.keys()
    for name in weights_a:
        torch.testing.assert_close(weights_b[name], weights_a[name], rtol=1e-5, atol=1e-6, msg=name)
    # the queue was saved, not just the weights
    assert not torch.equal(weights_a["queue"], torch.zeros_like(weights_a["queue"]))


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("straight")
    result = train(tiny_config(run), progress=False)
    assert (result.epochs_done, result.steps) == (3, 45)
    return run


def test_stopped_mid_epoch_and_resumed_matches_straight_run(tmp_path: Path, straight_run: Path) -> None:
    first = train(tiny_config(tmp_path, max_steps=22), progress=False)  # stops inside epoch 2
    assert (first.epochs_done, first.steps) == (1, 22)
    assert load_checkpoint(first.last_checkpoint)["position"]["step"] == 22
    second = train(tiny_config(tmp_path), resume=True, progress=False)
    assert (second.epochs_done, second.steps) == (3, 45)
    assert second.train_seconds > first.train_seconds
    assert_same_run(straight_run, tmp_path)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["epoch_0002.pt", "epoch_0003.pt"]


def test_ctrl_c_saves_the_step_and_resume_matches_straight_run(
    tmp_path: Path, straight_run: Path, tiny_faults
) -> None:
    tiny_faults(ctrl_c_at_call=9)
    with pytest.raises(TrainingInterrupted) as stopped:
        train(tiny_config(tmp_path), progress=False)
    assert stopped.value.step == 9  # the step in flight finished, then it stopped
    assert load_checkpoint(tmp_path / CHECKPOINT_DIR / LAST)["metadata"]["step"] == 9
    tiny_faults(ctrl_c_at_call=0)
    train(tiny_config(tmp_path), resume=True, progress=False)
    assert_same_run(straight_run, tmp_path)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path: Path, tiny_faults) -> None:
    tiny_faults(nan_at_call=20)
    config = tiny_config(tmp_path, save_every=1)
    with pytest.raises(TrainingDiverged, match=r"step 20.*--lr"):
        train(config, progress=False)
    state = load_checkpoint(tmp_path / CHECKPOINT_DIR / LAST)
    # the epoch-1 checkpoint, not NaN weights
    assert state["metadata"]["step"] == 15 and state["metadata"]["epoch"] == 1
    assert all(torch.isfinite(t).all() for t in state["model"].values() if t.is_floating_point())
    assert (
        load_representation(tmp_path / CHECKPOINT_DIR / LAST).model(torch.rand(2, 3, 16, 16)).isfinite().all()
    )
    # every loss up to the bad step is kept, the bad one as null
    records = read_metrics(tmp_path / METRICS_FILE)
    assert [r["step"] for r in records] == list(range(1, 21))
    assert all(r["loss"] is not None for r in records[:19]) and records[19]["loss"] is None


def test_checkpoint_loads_weights_only_with_every_key(straight_run: Path) -> None:
    path = straight_run / CHECKPOINT_DIR / "epoch_0002.pt"
    state = torch.load(path, weights_only=True)
    assert {
        "format",
        "format_version",
        "metadata",
        "model",
        "optimizer",
        "scheduler",
        "position",
        "rng",
    } <= state.keys()
    meta = state["metadata"]
    expected = {
        "method",
        "backbone",
        "train_config",
        "dataset",
        "image_size",
        "mean",
        "std",
        "epoch",
        "step",
        "train_seconds",
        "energy",
        "edgessl_version",
    }
    assert expected <= meta.keys()
    assert (meta["epoch"], meta["step"], meta["image_size"]) == (2, 30, 16)
    assert "method_config" not in meta  # the resolved run is stored once, as train_config
    assert (
        meta["train_config"]["batch_size"] == 64
        and "lr" not in meta["train_config"]["method_overrides"]["optimizer"]
    )
    assert recorded_method_config(meta).optimizer.name == "sgd"
    assert meta["energy"]["seconds"] > 0 and meta["energy"]["energy_kwh"] > 0
    assert {"torch", "numpy", "python"} <= state["rng"][0].keys()
    assert {"queue", "target.0.weight", "encoder.1.running_mean"} <= state["model"].keys()
    assert state["scheduler"]["last_epoch"] == 30
    last = torch.load(straight_run / CHECKPOINT_DIR / LAST, weights_only=True)["metadata"]
    assert (
        last["train_seconds"] > meta["train_seconds"]
        and last["energy"]["seconds"] > meta["energy"]["seconds"]
    )


def test_metrics_and_config_written(straight_run: Path) -> None:
    records = read_metrics(straight_run / METRICS_FILE)
    assert [r["step"] for r in records] == list(range(1, 46))
    assert {r["epoch"] for r in records} == {1, 2, 3}
    assert records[0]["lr"] == pytest.approx(0.05 * 64 / 32 / 15)  # first warm-up step, linear scaling
    assert all(r["images_per_s"] > 0 for r in records)
    import yaml

    written = yaml.safe_load((straight_run / "config.yaml").read_text())
    assert (
        written["batch_size"] == 64
        and written["image_size"] == 16
        and written["method_overrides"]["noise"] == 0.1
    )
    assert TrainConfig(**written).run_dir == str(straight_run)  # loadable as a --config file


def test_atomic_write_keeps_old_file_when_write_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "last.pt"
    save_checkpoint({"metadata": {"step": 1}}, path)

    def broken_save(obj, handle, *args, **kwargs):
        handle.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(DiskFullError, match="no space left to write .*last.pt.*--resume"):
        save_checkpoint({"metadata": {"step": 2}}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["metadata"]["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind


def test_existing_run_needs_resume_and_unwritable_output_fails_early(
    tmp_path: Path, straight_run: Path
) -> None:
    with pytest.raises(ConfigError, match="--resume"):
        train(tiny_config(straight_run), progress=False)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(EdgesslError, match="cannot write"):
        train(tiny_config(blocker / "run"), progress=False)


def test_too_little_disk_is_reported_before_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    monkeypatch.setattr(
        shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000)
    )
    with pytest.raises(EdgesslError, match="GB free"):
        train(tiny_config(tmp_path / "run"), progress=False)
    assert list(tmp_path.iterdir()) == []  # no run folder, lock, checkpoints/ or metrics left behind


def test_config_precedence_and_validation() -> None:
    config = TrainConfig(
        method="tiny",
        batch_size=16,
        lr=0.5,
        method_overrides={"noise": 0.3, "optimizer.schedule": "constant", "batch_size": 8},
    )
    run = resolve_run(config)
    method_config = run.method
    assert (method_config.batch_size, method_config.optimizer.lr, method_config.noise) == (16, 0.5, 0.3)
    assert method_config.optimizer.schedule == "constant" and method_config.optimizer.name == "sgd"
    assert run.train.image_size == 32  # shapes10's native size, not None
    # lr and batch size have one home: the run's top level
    assert (
        "batch_size" not in run.train.method_overrides and "lr" not in run.train.method_overrides["optimizer"]
    )
    assert resolve_run(run.train) == run  # the written config reproduces itself
    with pytest.raises(ConfigError, match="unknown TinyConfig option"):
        resolve_run(TrainConfig(method="tiny", method_overrides={"temprature": 0.1}))
    with pytest.raises(ConfigError, match="precision"):
        TrainConfig(precision="fp8")


def test_global_batch_is_split_across_processes_and_accumulation_exactly_once() -> None:
    from edgessl.errors import DataError
    from edgessl.training.sampling import epoch_permutation, micro_batches, plan_batches

    order = epoch_permutation(100, seed=0, epoch=4)
    assert torch.equal(order, epoch_permutation(100, seed=0, epoch=4)) and not torch.equal(
        order, epoch_permutation(100, seed=0, epoch=5)
    )
    plans = [plan_batches(100, 24, num_processes=2, process_index=rank, grad_accum=3) for rank in (0, 1)]
    assert plans[0].steps_per_epoch == 4  # 100 // 24, the last partial batch dropped
    chunks = [chunk for plan in plans for chunk in micro_batches(order, plan, batch_in_epoch=1)]
    assert [len(chunk) for chunk in chunks] == [4] * 6
    assert torch.equal(torch.cat(chunks), order[24:48])  # every image of global batch 1 once, none of another
    with pytest.raises(ConfigError, match="multiple of 6"):
        plan_batches(100, 25, num_processes=2, process_index=0, grad_accum=3)
    with pytest.raises(DataError, match="lower --batch-size"):
        plan_batches(10, 24, num_processes=1, process_index=0, grad_accum=1)
