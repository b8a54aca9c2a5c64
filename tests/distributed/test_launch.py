"""``accelerate launch`` really starts 2 CPU processes, and a run resumes across process counts both ways."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from rich.console import Console

from edgessl.checkpoints import load_checkpoint, load_representation
from edgessl.cli import main
from edgessl.data import load_dataset
from edgessl.errors import ConfigError
from edgessl.runs import CHECKPOINT_DIR, LAST
from edgessl.training import setup
from edgessl.training.monitor import OnlineMonitor
from edgessl.training.run_log import METRICS_FILE, read_metrics

REPO = Path(__file__).resolve().parents[2]
# SimCLR: SyncBatchNorm and the gathered NT-Xent negatives are both on the path under 2 processes.
TRAIN = [
    "train",
    "--method",
    "simclr",
    "--backbone",
    "shufflenetv2",
    "--data",
    "shapes10",
    "--split",
    "test",
    "--image-size",
    "16",
    "--batch-size",
    "16",
    "--set",
    "hidden_dim=32",
    "--set",
    "out_dim=16",
    "--monitor-every",
    "0",
    "--no-plots",
    "--no-progress",
]


def accelerate_launch(*args: str) -> subprocess.CompletedProcess[str]:
    """``accelerate launch ARGS`` (its own module, so no PATH is assumed) importing this checkout."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    command = [sys.executable, "-m", "accelerate.commands.launch", *args]
    return subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=240)


def test_two_cpu_processes_train_and_resume_from_and_into_one_process(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert main([*TRAIN, "--out", str(run), "--max-steps", "2"]) == 0  # one process

    launched = accelerate_launch(  # accelerate's own precision flag: edgessl's --precision is not given
        "--multi_gpu", "--num_processes", "2", "--main_process_port", "0", "--mixed_precision", "bf16",
        "-m", "edgessl", *TRAIN, "--out", str(run), "--resume", "--max-steps", "4",
    )  # fmt: skip
    assert launched.returncode == 0, launched.stderr[-3000:]
    assert "resuming from step 2" in launched.stdout and "(2 process(es) x 1 accumulation)" in launched.stdout
    assert launched.stdout.count("done:") == 1  # every process trains, one reports
    two = load_checkpoint(run / CHECKPOINT_DIR / LAST)
    meta = two["metadata"]
    assert meta["num_processes"] == 2 and meta["step"] == 4
    assert meta["mixed_precision"] == "bf16" and meta["train_config"]["precision"] is None
    assert meta["train_config"]["method_overrides"]["sync_batchnorm"] is True
    assert len(two["rng"]) == 2  # each process's random streams, for an exact resume on 2
    load_representation(run / CHECKPOINT_DIR / LAST)  # SyncBatchNorm weights load into plain BatchNorm

    assert main([*TRAIN, "--out", str(run), "--resume", "--max-steps", "6"]) == 0  # back on one process
    one = load_checkpoint(run / CHECKPOINT_DIR / LAST)["metadata"]
    assert one["num_processes"] == 1 and one["step"] == 6
    assert one["mixed_precision"] == "no"  # no launcher here, and no --precision
    assert [resume["step"] for resume in one["resumes"]] == [2, 4]
    steps = [record["step"] for record in read_metrics(run / METRICS_FILE)]
    assert steps == [1, 2, 3, 4, 5, 6]  # each step once, whichever process count wrote it


def test_a_launch_that_got_fewer_processes_than_asked_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WORLD_SIZE", *setup.WORLD_SIZE_VARIABLES, "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ACCELERATE_DYNAMO_BACKEND", "no")  # set by every accelerate launch
    setup.check_launch()  # `accelerate launch` of one process: fine
    monkeypatch.setenv("MASTER_PORT", "29500")  # what `accelerate launch --cpu --num_processes 2` leaves
    with pytest.raises(ConfigError, match="started 1 process although several were asked for"):
        setup.check_launch()
    monkeypatch.setenv("WORLD_SIZE", "2")  # torchrun's two processes...
    setup.check_launch()
    with pytest.raises(ConfigError, match="started 2 processes but accelerate set up 1"):
        setup.check_process_count(1)  # ...that accelerate did not join into one group
    setup.check_process_count(2)


def test_online_knn_under_two_processes_measures_the_checkpoint_it_saves(tmp_path: Path) -> None:
    """RotNet keeps per-process BatchNorm: the monitor must see the averaged statistics the epoch file
    holds."""
    run = tmp_path / "run"
    launched = accelerate_launch(
        "--multi_gpu", "--num_processes", "2", "--main_process_port", "0", "-m", "edgessl", "train",
        "--method", "rotnet", "--backbone", "shufflenetv2", "--data", "shapes10", "--split", "test",
        "--image-size", "16", "--batch-size", "128", "--epochs", "1", "--monitor-every", "1",
        "--no-plots", "--no-progress", "--out", str(run),
    )  # fmt: skip
    assert launched.returncode == 0, launched.stderr[-3000:]
    assert (
        load_checkpoint(run / CHECKPOINT_DIR / LAST)["metadata"]["train_config"]["method_overrides"][
            "sync_batchnorm"
        ]
        is False
    )
    online = read_metrics(run / METRICS_FILE)[-1]
    monitor = OnlineMonitor.for_dataset(
        load_dataset("shapes10", "test", image_size=16),
        "shapes10",
        None,
        torch.device("cpu"),
        Console(quiet=True),
    )
    offline = monitor.measure(load_representation(run / CHECKPOINT_DIR / "epoch_0001.pt").model)
    assert online["knn_accuracy"] == offline["knn_accuracy"]
    assert online["embedding_std"] == pytest.approx(offline["embedding_std"], rel=1e-6, abs=0)
    assert online["effective_rank"] == pytest.approx(offline["effective_rank"], rel=1e-5, abs=0)
