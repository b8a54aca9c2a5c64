"""The third reliability round: each defect it found, as a case that failed on the main it was found on."""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
import typing
from pathlib import Path

import pytest
from config_bounds import bound_violations
from tiny_runs import TINY_FLAGS

from edgessl.cli import main
from edgessl.data import read_split_arrays
from edgessl.devices import resolve_device
from edgessl.errors import ConfigError, DataError
from edgessl.evaluation.protocols import PROTOCOLS, options_for
from edgessl.export.options import ExportOptions
from edgessl.training.plots import plot_run
from edgessl.training.run_folder import RunFolderBusy, locked
from edgessl.training.run_log import METRICS_FILE, MetricsLog, read_metrics

TINY = [*TINY_FLAGS, "--no-progress"]


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize(
    ("out", "expected"),
    [
        ("r/{x}", "names {x}"),
        ("r/{}", "names {}"),
        ("r/{method", "expected '}' before end of string"),
        ("r/{method!r}", "names {method!r}"),
    ],
)
def test_d4_out_templates_other_than_method_and_backbone_are_one_line(
    tmp_path: Path, out: str, expected: str, capsys, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["train", *TINY, "--out", out]) == 2
    assert expected in error_line(capsys)
    assert not any(tmp_path.iterdir())  # nothing created


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--lr", "inf"], "lr must be a positive finite number (got inf)"),
        (["--lr", "nan"], "lr must be a positive finite number (got nan)"),
        (["--time-budget", "-5"], "time_budget_s must be a positive number of seconds (got -5.0)"),
    ],
)
def test_values_accepted_silently_before_are_refused(tmp_path: Path, flags, expected, capsys) -> None:
    assert main(["train", *TINY, *flags, "--out", str(tmp_path / "run")]) == 2
    assert expected in error_line(capsys)
    assert not (tmp_path / "run").exists()


def test_d12_a_device_this_machine_lacks_is_one_line() -> None:
    with pytest.raises(ConfigError, match="no Apple MPS device; use --device cpu"):
        resolve_device("mps")


# Fields whose every value of their type is valid (a seed, a switch) or checked by a registry (a metric).
UNBOUNDED = {("knn", "metric"), ("linear", "standardize"), ("linear", "seed"), ("finetune", "augment")}
UNBOUNDED |= {("finetune", "seed")}


@pytest.mark.parametrize("protocol", PROTOCOLS.names())
def test_d16_every_protocol_option_declares_its_range_and_refuses_values_outside_it(protocol: str) -> None:
    entry = PROTOCOLS.get(protocol)
    hints = typing.get_type_hints(entry.options, include_extras=True)
    for field in dataclasses.fields(entry.options):
        bad = bound_violations(hints[field.name])
        assert bad or (protocol, field.name) in UNBOUNDED, f"{protocol}.{field.name} declares no range"
        for value in bad:
            with pytest.raises(ConfigError, match=f"{field.name}="):
                options_for([protocol], {field.name: value})
        entry.make_options({field.name: field.default})  # the default is inside the range


def test_d16_eval_linear_with_a_negative_lr_is_one_line_before_any_work(capsys) -> None:
    assert (
        main(
            ["eval", "--weights", "absent.safetensors", "--backbone", "resnet18", "--protocol", "linear"]
            + ["--lr", "-1"]
        )
        == 2
    )
    assert "lr=-1.0: expected greater than 0" in error_line(capsys)


@pytest.mark.parametrize("name", ["../../escape", "a/b", "..", ".hidden", "", "tab\there"])
def test_d18_export_names_cannot_leave_out(name: str) -> None:
    with pytest.raises(ConfigError, match="--name must be a plain file name stem"):
        ExportOptions(name=name)
    ExportOptions(name="simclr_resnet18-v2")


def test_d19_d3_metrics_lines_that_are_not_step_records_are_skipped_by_plot_and_resume(
    tmp_path: Path,
) -> None:
    good = [{"step": step, "epoch": 1, "loss": 5.0 - step, "lr": 0.1} for step in (1, 2, 3)]
    lines = [json.dumps(good[0]).encode(), b"[1, 2, 3]", json.dumps(good[1]).encode(), b'{"step": "x"}']
    lines += [b"\xff\xfe\x00 not utf-8", json.dumps(good[2]).encode(), b'{"step": 4, "lo']  # a torn tail
    (tmp_path / METRICS_FILE).write_bytes(b"\n".join(lines))
    assert read_metrics(tmp_path / METRICS_FILE) == good
    assert {path.name for path in plot_run(tmp_path)} == {"loss.png", "lr.png"}
    MetricsLog(tmp_path / METRICS_FILE).truncate_after(2)  # what a resume does first
    assert read_metrics(tmp_path / METRICS_FILE) == good[:2]


def test_d22_a_symlink_loop_as_data_is_one_line(tmp_path: Path, capsys) -> None:
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(DataError, match="cannot be opened"):
        read_split_arrays(str(tmp_path / "a"), "train")
    assert main(["train", "--data", str(tmp_path / "a"), "--out", str(tmp_path / "run")]) == 1
    assert "cannot be opened" in error_line(capsys)
    assert not (tmp_path / "run").exists()


BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + level)}: &{chr(98 + level)} [{', '.join(['*' + chr(97 + level)] * 9)}]\n"
    for level in range(8)
)


def test_d5_a_yaml_alias_bomb_is_refused_at_once(tmp_path: Path, capsys) -> None:
    file = tmp_path / "bomb.yaml"
    nested = "".join(f"      {line}\n" for line in BOMB.splitlines())
    file.write_text(f"method: tiny\nmethod_overrides:\n  optimizer:\n    kwargs:\n{nested}")
    assert len(file.read_bytes()) < 1024  # 1 KB that would expand to 9^9 values
    assert main(["train", "--config", str(file), "--print-config"]) == 2
    assert "YAML aliases (*name) expand to more than 100,000 values" in error_line(capsys)
    study = tmp_path / "study.yaml"
    study.write_text(BOMB)
    assert main(["study", str(study), "--out", str(tmp_path / "s")]) == 2
    assert "expand to more than" in error_line(capsys)
    assert not (tmp_path / "s").exists()


def test_d3_config_and_study_files_that_are_not_utf8_are_one_line(tmp_path: Path, capsys) -> None:
    file = tmp_path / "run.yaml"
    file.write_bytes(b"method: tiny\nepochs: 2 # caf\xe9\n")
    assert main(["train", "--config", str(file), "--print-config"]) == 2
    assert "is not UTF-8 text (byte 0xe9 at offset 28)" in error_line(capsys)
    study = tmp_path / "study.yaml"
    study.write_bytes(b"name: caf\xe9\n")
    assert main(["study", str(study)]) == 2
    assert "study config" in error_line(capsys)


def test_a_finished_run_keeps_no_lock_file(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "1", "--max-steps", "2", "--out", str(run)]) == 0
    assert (run / "config.yaml").is_file() and not (run / ".lock").exists()


def test_a_waiter_locks_the_file_at_the_path_not_the_one_its_holder_removed(tmp_path: Path) -> None:
    acquired, finish = threading.Event(), threading.Event()

    def waiter() -> None:
        with locked(tmp_path, wait=True):
            acquired.set()
            finish.wait(10)

    with locked(tmp_path):
        thread = threading.Thread(target=waiter)
        thread.start()
        time.sleep(0.3)  # the waiter has opened the lock file and blocks on it
        assert not acquired.is_set()
    assert acquired.wait(10)
    assert (tmp_path / ".lock").is_file()  # the waiter holds the file now at the path...
    with pytest.raises(RunFolderBusy), locked(tmp_path):  # ...so a third writer is refused
        pass
    finish.set()
    thread.join()
    assert not (tmp_path / ".lock").exists()


def test_a_skipped_image_is_one_warning_line_not_a_python_warning_twice(
    tmp_path: Path, cifar10_small, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("EDGESSL_CACHE", str(tmp_path / "cache"))
    for label in ("cat", "dog"):
        (tmp_path / "data" / label).mkdir(parents=True)
        for path in sorted((cifar10_small / label).iterdir())[:20]:
            (tmp_path / "data" / label / path.name).write_bytes(path.read_bytes())
    (tmp_path / "data" / "cat" / "broken.jpg").write_bytes(b"not a jpeg")
    flags = ["--data", str(tmp_path / "data"), "--split", "unlabeled", "--monitor-every", "1"]
    assert (
        main(
            ["train", *TINY, *flags, "--batch-size", "8", "--max-steps", "2", "--out", str(tmp_path / "run")]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert err.count("warning: skipped 1 unreadable image(s)") == 1 and "UserWarning" not in err, err


def test_d23_resume_with_another_method_says_it_cannot_change_it(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "1", "--max-steps", "2", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", "--out", str(run), "--method", "simclr", "--no-progress"]) == 2
    line = error_line(capsys)
    assert "--resume continues the tiny run" in line and "cannot change --method to simclr" in line


def test_d23_a_damaged_last_pt_falls_back_to_the_newest_epoch_file_and_says_so(
    tmp_path: Path, capsys
) -> None:
    run = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "2", "--save-every", "1", "--out", str(run)]) == 0
    (run / "checkpoints" / "last.pt").write_bytes(b"not a checkpoint")
    capsys.readouterr()
    assert main(["train", "--resume", "--epochs", "3", "--out", str(run), "--no-progress"]) == 0
    printed = capsys.readouterr()
    assert printed.err.count("last.pt is damaged") == 1 and "UserWarning" not in printed.err
    assert "done: 3 epoch(s)" in printed.out
    assert main(["train", "--resume", "--out", str(run), "--no-progress"]) == 0  # finished: no step to train
    done = capsys.readouterr().out
    assert "done: 3 epoch(s)" in done and "final loss nan" not in done


class Opaque:
    """Not a tensor: torch's weights-only loader refuses to unpickle it."""


def test_d23_a_pickle_as_weights_never_suggests_unsafe_loading(tmp_path: Path) -> None:
    import torch

    from edgessl.backbones.weights import read_state_dict
    from edgessl.errors import CheckpointError

    torch.save({"w": torch.zeros(1), "o": Opaque()}, tmp_path / "w.pth")
    with pytest.raises(CheckpointError) as caught:
        read_state_dict(tmp_path / "w.pth")
    message = str(caught.value)
    assert "never unpickles" in message and "weights_only" not in message and "Re-running" not in message


def test_d7_a_kill_while_the_final_last_pt_is_written_resumes_to_a_current_last_pt(
    tmp_path: Path, capsys
) -> None:
    from edgessl.checkpoints import load_checkpoint

    run = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "2", "--save-every", "1", "--out", str(run)]) == 0
    checkpoints = run / "checkpoints"
    final = load_checkpoint(checkpoints / "epoch_0002.pt")["metadata"]["step"]
    # The state a SIGKILL during the final save leaves: epoch_0002.pt complete, last.pt still at epoch 1.
    (checkpoints / "last.pt").write_bytes((checkpoints / "epoch_0001.pt").read_bytes())
    capsys.readouterr()
    assert main(["train", "--resume", "--out", str(run), "--no-progress"]) == 0
    done = capsys.readouterr().out
    assert f"done: 2 epoch(s), {final} steps" in done and "final loss nan" not in done
    assert load_checkpoint(checkpoints / "last.pt")["metadata"]["step"] == final


def test_d13_an_image_too_small_for_the_network_is_one_line_in_train_and_profile(
    tmp_path: Path, capsys
) -> None:
    flags = ["--backbone", "squeezenet", "--image-size", "8"]
    run = tmp_path / "run"
    assert main(["train", "--data", "shapes10", "--split", "test", *flags, "--out", str(run)]) == 2
    assert "squeezenet cannot take 8 px images" in error_line(capsys) and not run.exists()
    assert main(["profile", *flags]) == 2
    assert "use --image-size 17 or more" in error_line(capsys)


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--train-batch-size", "0"], "--train-batch-size must be at least 1 (got 0)"),
        (["--json", "{folder}"], "is a folder; give a file path"),
        (["--json", "/proc/nowhere/x.json"], "cannot write into /proc/nowhere"),
    ],
)
def test_d15_profile_options_are_checked_before_measuring(
    tmp_path: Path, flags, expected, capsys, monkeypatch
) -> None:
    import edgessl.profiling.report

    def measured(*args, **kwargs):
        raise AssertionError("measuring started before the options were checked")

    monkeypatch.setattr(edgessl.profiling.report, "profile_backbones", measured)
    flags = [flag.format(folder=tmp_path) for flag in flags]
    assert main(["profile", "--backbone", "squeezenet", *flags]) == 2
    assert expected in error_line(capsys)


@pytest.mark.parametrize("code", [28, 30])  # ENOSPC, EROFS
def test_d8_d11_a_full_or_read_only_disk_is_one_line_from_any_command(
    code: int, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    import os

    from edgessl.cli import study

    def full(args):
        raise OSError(code, os.strerror(code), "/data/studies/s/study.yaml")

    monkeypatch.setattr(study, "run", full)
    assert main(["study", "study-quick"]) == 1
    err = capsys.readouterr().err
    assert "/data/studies/s/study.yaml" in err and "--out" in err and len(err.strip().splitlines()) == 1


def test_an_os_error_that_is_not_the_disk_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    from edgessl.cli import study

    def broken(args):
        raise OSError(9, "Bad file descriptor")

    monkeypatch.setattr(study, "run", broken)
    with pytest.raises(OSError, match="Bad file descriptor"):
        main(["study", "study-quick"])


def test_profile_takes_omp_num_threads_and_its_help_is_plain_text(
    monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from edgessl.cli import profile

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert profile.default_threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "lots")
    assert profile.default_threads() == (os.cpu_count() or 1)
    for command in ("profile", "plot"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        assert "`" not in text and ":mod:" not in text and len(text.splitlines()) > 4


def test_d14_an_image_size_too_large_for_memory_is_one_line_and_leaves_no_run(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGESSL_CACHE", str(tmp_path / "cache"))
    run = tmp_path / "run"
    # 2,000 shapes10 images at 30,000 px would be 5.4 TB: the allocation itself fails, as a
    # large --image-size does under a memory limit
    flags = ["train", "--data", "shapes10", "--image-size", "30000", "--max-steps", "1", "--no-progress"]
    assert main([*flags, "--out", str(run)]) == 1
    assert "out of memory" in error_line(capsys) and not run.exists()


def test_an_error_that_is_not_memory_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    from edgessl.cli import profile

    def broken(args) -> int:
        raise RuntimeError("a bug, not the machine")

    monkeypatch.setattr(profile, "run", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["profile", "--backbone", "squeezenet"])
