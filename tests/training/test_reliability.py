"""Faults and bad input around a run folder: one writer, honest resumes, full disks, debris, clear errors."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from rich.console import Console
from tiny_runs import TINY_FLAGS, tiny_config

from edgessl.checkpoints import load_checkpoint, load_representation, restore_method, save_checkpoint
from edgessl.cli import main
from edgessl.errors import CheckpointError, ConfigError
from edgessl.runs import CHECKPOINT_DIR, LAST
from edgessl.training import run_log
from edgessl.training.config import TrainConfig
from edgessl.training.resolve import resolve_run
from edgessl.training.run_folder import RunFolderBusy, locked
from edgessl.training.run_log import METRICS_FILE, read_metrics
from edgessl.training.trainer import Trainer, train

TINY = [*TINY_FLAGS, "--no-progress"]
REPO = Path(__file__).resolve().parents[2]


def tiny(out: Path, **changes) -> TrainConfig:
    return tiny_config(out, **{"epochs": 2, "save_every": 1, "seed": 3, "deterministic": True, **changes})


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


# ---------------------------------------------------------------- 1: one writer per run folder


def test_second_writer_is_refused_naming_the_holder_and_a_killed_holder_blocks_nothing(
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sys, time; from pathlib import Path; from edgessl.training.run_folder import locked\n"
                "with locked(Path(sys.argv[1])):\n print('held', flush=True); time.sleep(60)"
            ),
            str(run),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunFolderBusy, match=f"pid {holder.pid} on "):
            train(tiny(run), progress=False)
        assert not (run / CHECKPOINT_DIR / LAST).exists()
    finally:
        holder.kill()  # SIGKILL: the kernel drops the lock with the process
        holder.wait()
    result = train(tiny(run, max_steps=3), progress=False)
    assert result.steps == 3
    with locked(run), pytest.raises(RunFolderBusy, match=f"pid {os.getpid()}"):
        train(tiny(run), resume=True, progress=False)
    with locked(run), pytest.raises(RunFolderBusy, match=f"being written by pid {os.getpid()}"):
        train(tiny(run), progress=False)  # without --resume too: not "pass --resume" to a live run
    (run / ".lock").write_text(f"pid {holder.pid} on {socket.gethostname()} (killed)")
    with pytest.raises(ConfigError, match="pass --resume"):  # a dead writer's lock file names no one
        train(tiny(run), progress=False)


def test_a_run_folder_that_changes_between_building_and_training_is_refused(tmp_path: Path) -> None:
    """Another process may finish a run in the folder while this one builds: neither overwrites the other."""
    run = tmp_path / "run"
    starting = Trainer(resolve_run(tiny(run)), resume=False, console=Console(quiet=True), progress=False)
    train(tiny(run, max_steps=3), progress=False)  # the other writer, done before this one takes the lock
    written = (run / CHECKPOINT_DIR / LAST).read_bytes()
    with pytest.raises(RunFolderBusy, match="changed while this run started; run the command again"):
        starting.run()
    assert (run / CHECKPOINT_DIR / LAST).read_bytes() == written


# ---------------------------------------------------------------- 2 and 6: what a resume may change


def test_resume_refuses_settings_it_cannot_apply_and_states_the_ones_it_can(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    assert (
        main(["train", *TINY, "--epochs", "2", "--batch-size", "64", "--save-every", "1", "--out", str(run)])
        == 0
    )
    config_before = (run / "config.yaml").read_text()
    capsys.readouterr()
    refused = [
        "train",
        "--resume",
        "--out",
        str(run),
        "--no-progress",
        "--lr",
        "1e9",
        "--epochs",
        "3",
        "--set",
        "optimizer.name=adam",
    ]
    assert main(refused) == 2
    err = error_line(capsys)
    assert "--resume cannot change" in err and "lr: 0.05 in the checkpoint, 1000000000.0 asked" in err
    assert "method_overrides.optimizer.name: 'sgd' in the checkpoint, 'adam' asked" in err
    assert (run / "config.yaml").read_text() == config_before
    assert load_checkpoint(run / CHECKPOINT_DIR / LAST)["metadata"]["step"] == 30

    assert main(["train", "--resume", "--out", str(run), "--no-progress", "--epochs", "3"]) == 0
    assert "resuming from step 30 (epochs 2 -> 3)" in capsys.readouterr().out
    meta = load_checkpoint(run / CHECKPOINT_DIR / LAST)["metadata"]
    assert meta["step"] == 45 and meta["train_config"]["epochs"] == 3
    assert meta["resumes"] == [{"step": 30, "changes": {"epochs": [2, 3]}}]
    assert yaml.safe_load((run / "config.yaml").read_text())["epochs"] == 3

    assert main(["train", "--resume", "--out", str(run), "--no-progress", "--epochs", "1"]) == 2
    assert "fewer than the 3 epoch(s)" in error_line(capsys)


def test_resume_with_nothing_to_resume_fails_and_creates_nothing(tmp_path: Path, capsys) -> None:
    run = tmp_path / "never"
    assert main(["train", *TINY, "--resume", "--out", str(run)]) == 2
    assert "nothing to resume" in error_line(capsys)
    assert not run.exists()


# ---------------------------------------------------------------- 3: a full disk


def test_full_disk_while_logging_is_one_line_and_leaves_the_log_whole(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    run = tmp_path / "run"
    real_write, calls = os.write, []

    def filling_disk(fd: int, data) -> int:
        calls.append(fd)
        if len(calls) < 3:
            return real_write(fd, data)
        real_write(fd, bytes(data[:17]))  # a torn line, as a disk that fills mid-write leaves
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(run_log.os, "write", filling_disk)
    # 15 steps per epoch: the log is written at steps 10 and 15, last.pt at 15, and the write at step 25 fails
    assert (
        main(["train", *TINY, "--epochs", "2", "--batch-size", "64", "--save-every", "1", "--out", str(run)])
        == 1
    )
    err = error_line(capsys)
    assert "no space left to write" in err and METRICS_FILE in err and "--resume" in err
    assert (run / METRICS_FILE).read_text().endswith("\n")
    assert [r["step"] for r in read_metrics(run / METRICS_FILE)] == list(range(1, 16))
    assert load_checkpoint(run / CHECKPOINT_DIR / LAST)["metadata"]["step"] == 15


def test_full_disk_at_a_save_is_one_line_and_keeps_last_pt(tmp_path: Path, monkeypatch, capsys) -> None:
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                *TINY,
                "--epochs",
                "3",
                "--batch-size",
                "64",
                "--save-every",
                "1",
                "--max-steps",
                "15",
                "--out",
                str(run),
            ]
        )
        == 0
    )
    real_save = torch.save

    def full(obj, handle, *args, **kwargs):
        handle.write(b"partial")
        raise RuntimeError(
            "[enforce fail at inline_container.cc:664] . PytorchStreamWriter failed writing file data/0: "
            "file write failed"
        )

    monkeypatch.setattr(torch, "save", full)
    assert main(["train", "--resume", "--out", str(run), "--no-progress"]) == 1
    assert "no space left to write" in error_line(capsys)
    monkeypatch.setattr(torch, "save", real_save)
    assert load_checkpoint(run / CHECKPOINT_DIR / LAST)["metadata"]["step"] == 15
    assert not list((run / CHECKPOINT_DIR).glob(".*.tmp"))
    assert [r["step"] for r in read_metrics(run / METRICS_FILE)] == list(range(1, 31))


# ---------------------------------------------------------------- 4: debris of killed saves


def test_resume_removes_temp_files_and_uses_the_newest_complete_checkpoint(tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(tiny(run, max_steps=15), progress=False)  # epoch_0001.pt and last.pt at step 15
    folder = run / CHECKPOINT_DIR
    (folder / LAST).unlink()  # killed after epoch_0001.pt was written, before last.pt was
    debris = [folder / ".last.pt.k3j2.tmp", folder / ".epoch_0002.pt.x81q.tmp"]
    for path in debris:
        path.write_bytes(b"\0" * 1000)
    result = train(tiny(run), resume=True, progress=False)
    assert (result.steps, result.epochs_done) == (30, 2)
    assert not any(path.exists() for path in debris)
    assert [r["step"] for r in read_metrics(run / METRICS_FILE)] == list(range(1, 31))  # no step redone


# ---------------------------------------------------------------- 5 and 7: bad input


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--set", "temperature=abc"], "temperature='abc': expected a valid number"),
        (["--set", "optimizer=5"], "optimizer=5: expected a dictionary"),
        (["--epochs", "0"], "epochs must be at least 1"),
    ],
)
def test_wrong_types_are_one_line_exit_2(extra: list[str], expected: str, capsys) -> None:
    assert main(["train", "--method", "simclr", *extra, "--print-config"]) == 2
    assert expected in error_line(capsys)


def test_numbers_as_users_type_them(tmp_path: Path, capsys) -> None:
    sets = ["--set", "optimizer.weight_decay=5e-4", "--set", "optimizer.lr=1e-3", "--set", "temperature=2e-1"]
    assert main(["train", "--method", "simclr", *sets, "--print-config"]) == 0
    run = yaml.safe_load(capsys.readouterr().out)
    printed = run["method_overrides"]
    assert printed["optimizer"]["weight_decay"] == 5e-4 and printed["temperature"] == 0.2
    assert run["lr"] == 1e-3 and "lr" not in printed["optimizer"]  # the learning rate's one home
    assert run["image_size"] == 32  # shapes10's own size, not null
    # "inf" is read as the number (and then refused by the field's range), not as a word
    assert main(["train", "--method", "simclr", "--set", "temperature=inf", "--print-config"]) == 2
    assert "temperature='inf': expected less than inf" in error_line(capsys)
    file = tmp_path / "bad.yaml"
    file.write_text("epochs: three\n")
    assert main(["train", "--config", str(file), "--print-config"]) == 2
    assert "epochs='three': expected a valid integer" in error_line(capsys)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--backbone", "resnet1"], "unknown backbone"),
        (["--data", "cifar-1000"], "cifar-1000"),
        (["--split", "validation"], "validation"),
        (["--data", "stl10", "--data-root", "/nowhere"], "not found"),
        (["--batch-size", "5000"], "fewer than one batch"),
    ],
)
def test_rejected_input_creates_no_run_folder(
    tmp_path: Path, extra: list[str], expected: str, capsys
) -> None:
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--method",
                "simclr",
                "--data",
                "shapes10",
                "--split",
                "test",
                "--image-size",
                "16",
                "--out",
                str(run),
                *extra,
            ]
        )
        != 0
    )
    assert expected in error_line(capsys)
    assert not run.exists()


def test_unknown_device_and_unwritable_output_fail_before_the_work(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    train(tiny(run, max_steps=2), progress=False)
    assert main(["eval", str(run), "--data", "shapes10", "--device", "tpu"]) == 2
    assert "unknown device 'tpu'" in error_line(capsys)
    assert main(["explain", str(run), "--data", "shapes10", "--out", "/proc/x"]) == 1
    assert "cannot write to /proc/x" in error_line(capsys)


# ---------------------------------------------------------------- 8: checkpoint errors that say what is wrong


class Payload:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_foreign_and_malicious_files_never_suggest_unsafe_loading(tmp_path: Path) -> None:
    noise = tmp_path / "noise.pt"
    noise.write_bytes(os.urandom(4096))
    evil = tmp_path / "evil.pt"
    torch.save({"format": "edgessl-checkpoint", "x": Payload()}, evil)
    for path in (noise, evil):
        with pytest.raises(CheckpointError) as caught:
            load_checkpoint(path)
        message = str(caught.value)
        assert "not a loadable edgessl checkpoint" in message
        assert "weights_only" not in message and "Re-running" not in message
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()


def test_marker_without_metadata_and_weight_mismatch_name_the_problem(tmp_path: Path) -> None:
    empty = tmp_path / "empty.pt"
    save_checkpoint({"model": {}}, empty)
    with pytest.raises(CheckpointError, match="cannot be used: no metadata"):
        restore_method(load_checkpoint(empty), str(empty))
    run = tmp_path / "run"
    train(tiny(run, max_steps=2), progress=False)
    state = load_checkpoint(run / CHECKPOINT_DIR / LAST)
    state["model"].pop("queue")
    state["model"]["encoder.0.weight"] = torch.zeros(4, 3, 3, 3)
    state["model"]["head.weight"] = torch.zeros(2)
    with pytest.raises(CheckpointError) as caught:
        restore_method(state)
    message = str(caught.value)
    assert "missing: queue" in message and "unexpected: head.weight" in message
    assert "encoder.0.weight (4, 3, 3, 3) vs (8, 3, 3, 3)" in message


def test_a_run_whose_pretext_head_changed_since_still_evaluates_but_a_broken_encoder_does_not(
    tmp_path: Path,
) -> None:
    """A SimCLR checkpoint from before the projector's output BatchNorm: its config has no such key."""
    from edgessl.methods import build_method, method_class

    size, mean, std = 32, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    torch.manual_seed(0)
    old = build_method(
        "simclr", "shufflenetv2", size, mean, std, method_class("simclr").Config(output_batch_norm=False)
    )
    metadata = {
        "method": "simclr", "backbone": "shufflenetv2", "method_config": {}, "train_config": {},
        "dataset": "shapes10", "image_size": size, "mean": list(mean), "std": list(std), "epoch": 1,
        "step": 1,
    }  # fmt: skip
    path = tmp_path / "old.pt"
    save_checkpoint({"metadata": metadata, "model": old.state_dict()}, path)
    # the whole method no longer does
    with pytest.raises(CheckpointError, match="does not fit SimCLR: missing: projector"):
        restore_method(load_checkpoint(path))
    images = torch.rand(3, 3, size, size)
    loaded = load_representation(path)
    with torch.no_grad():
        assert torch.equal(loaded.model(images), old.eval().representation()(images))
    broken = old.state_dict()
    broken.pop(next(key for key in broken if key.startswith("encoder.")))
    save_checkpoint({"metadata": metadata, "model": broken}, path)
    with pytest.raises(CheckpointError, match="does not fit Representation: missing: encoder"):
        load_representation(path)


def test_unknown_timm_model_lists_only_the_closest_few() -> None:
    from edgessl.backbones import build_backbone
    from edgessl.errors import UnknownNameError

    with pytest.raises(UnknownNameError) as caught:
        build_backbone("timm:resnet_foo")
    closest = str(caught.value).split("Closest: ")[1].split(".")[0].split(", ")
    assert 1 <= len(closest) <= 5 and all("resnet" in name for name in closest)


def test_train_starts_from_outside_weights_and_records_them(tmp_path: Path) -> None:
    from safetensors.torch import save_file
    from torchvision.models import shufflenet_v2_x0_5

    torch.manual_seed(5)
    outside = shufflenet_v2_x0_5().state_dict()  # torchvision's own key names
    path = tmp_path / "encoder.safetensors"
    save_file({k: v.contiguous() for k, v in outside.items()}, path)
    config = TrainConfig(
        method="byol", backbone="shufflenetv2", data="shapes10", split="test", image_size=16, epochs=1,
        batch_size=32,
        max_steps=1, out=str(tmp_path / "run"), weights=str(path), monitor_every=0, plots=False,
        method_overrides={"hidden_dim": 32, "out_dim": 16,
                          "optimizer": {"name": "sgd", "lr": 1e-12, "warmup_epochs": 0}},
    )  # fmt: skip
    train(config, progress=False)
    state = load_checkpoint(tmp_path / "run" / CHECKPOINT_DIR / LAST)
    assert state["metadata"]["train_config"]["weights"] == str(path)
    conv = outside["conv1.0.weight"]
    # the EMA target starts as the same weights (edgessl's key names)
    for prefix in ("encoder", "target_encoder"):
        torch.testing.assert_close(state["model"][f"{prefix}.features.0.0.weight"], conv, atol=1e-6, rtol=0)
    with pytest.raises(CheckpointError):
        train(
            TrainConfig(**{**config.__dict__, "out": str(tmp_path / "other"), "backbone": "resnet18"}),
            progress=False,
        )
    assert not (tmp_path / "other").exists()


def test_a_run_saved_before_a_config_field_existed_still_resumes(tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(tiny(run, max_steps=15), progress=False)
    last = run / CHECKPOINT_DIR / LAST
    state = load_checkpoint(last)
    for key in ("monitor_every", "weights"):  # as an older edgessl wrote it
        del state["metadata"]["train_config"][key]
    del state["metadata"]["train_config"]["method_overrides"]["optimizer"]["final_lr_scale"]
    save_checkpoint({k: v for k, v in state.items() if k not in ("format", "format_version")}, last)
    assert train(tiny(run), resume=True, progress=False).steps == 30
