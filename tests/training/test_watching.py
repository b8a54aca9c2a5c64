"""Watching a run: trackers that match metrics.jsonl, online monitoring, log lines, plots."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import torch
from tiny_runs import TINY_FLAGS, tiny_config

from edgessl.cli import main
from edgessl.errors import ConfigError
from edgessl.methods import METHODS
from edgessl.methods.byol import BYOL
from edgessl.training import tracking
from edgessl.training.config import TrainConfig
from edgessl.training.monitor import effective_rank, embedding_std
from edgessl.training.run_log import METRICS_FILE, read_metrics
from edgessl.training.trainer import train

TINY = TINY_FLAGS


def tiny(out: Path, **changes) -> TrainConfig:
    return tiny_config(out, **{"epochs": 2, "seed": 1, "plots": False, **changes})


def scalar_records(run: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if v is not None} for r in read_metrics(run / METRICS_FILE)]


def test_tensorboard_scalars_equal_metrics_jsonl(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(tiny(tmp_path, log_with="tensorboard"), progress=False)
    events = EventAccumulator(str(tmp_path / tracking.TRACKER_DIR / tmp_path.name)).Reload()
    records = scalar_records(tmp_path)
    expected = {key for r in records for key in r} - {"step"}
    assert {"loss", "lr", "images_per_s", "knn_accuracy", "embedding_std", "effective_rank"} <= expected
    assert expected <= set(events.Tags()["scalars"])
    for key in expected:
        logged = {event.step: event.value for event in events.Scalars(key)}
        written = {r["step"]: r[key] for r in records if key in r}
        assert logged.keys() == written.keys(), key
        assert [logged[s] for s in sorted(logged)] == pytest.approx(
            [written[s] for s in sorted(written)], rel=1e-6
        )


def test_wandb_offline_and_mlflow_file_store_receive_the_losses(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("wandb")
    pytest.importorskip("mlflow")
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    train(tiny(tmp_path, log_with="wandb,mlflow", epochs=1), progress=False)
    assert list((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))  # offline: nothing left the machine
    client = mlflow.MlflowClient((tmp_path / "mlruns").resolve().as_uri())
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    history = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "loss")}
    assert history == pytest.approx({r["step"]: r["loss"] for r in scalar_records(tmp_path)})


def test_a_missing_tracker_package_is_one_line_naming_the_extra(monkeypatch, tmp_path: Path, capsys) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        tracking.importlib.util, "find_spec", lambda name: None if name == "wandb" else real(name)
    )
    with pytest.raises(ConfigError, match=r"pip install 'edgessl\[wandb\]'"):
        tracking.tracker_names("tensorboard,wandb")
    assert main(["train", *TINY, "--log-with", "neptune", "--out", str(tmp_path / "run")]) == 2
    assert "unknown tracker neptune" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_plain_log_lines_when_output_is_not_a_terminal(tmp_path: Path, capsys) -> None:
    assert (
        main(
            [
                "train",
                *TINY,
                "--epochs",
                "2",
                "--batch-size",
                "64",
                "--log-every",
                "5",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch ")]
    steps = [int(re.search(r"step (\d+)/30", line).group(1)) for line in lines]
    assert steps == [10, 15, 25, 30]  # losses are read back every 10 steps and at epoch ends (15, 30)
    assert all(re.search(r"loss \d+\.\d{4} lr \S+ [\d,]+ img/s eta \d+:\d\d:\d\d", line) for line in lines)
    # step 15 ends epoch 1: monitored
    assert "knn " in lines[1] and "std " in lines[1] and "rank " in lines[1]


def test_plot_writes_the_run_curves(tmp_path: Path, capsys) -> None:
    train(tiny(tmp_path), progress=False)
    assert main(["plot", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    written = sorted(Path(line.removeprefix("wrote ")) for line in out if line.startswith("wrote "))
    assert [p.name for p in written] == ["loss.png", "lr.png", "monitor.png"]
    for path in written:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    assert main(["plot", str(tmp_path / "nowhere")]) == 1


def test_collapse_measures_against_a_second_computation() -> None:
    torch.manual_seed(0)
    spread = torch.randn(500, 64)
    collapsed = torch.ones(500, 64) + 1e-4 * torch.randn(500, 64)
    line = torch.randn(500, 1) * torch.randn(1, 64)  # rank one
    assert embedding_std(collapsed) < 1e-3 < embedding_std(spread)
    assert embedding_std(spread) == pytest.approx(64**-0.5, rel=0.05)  # spread over the sphere: 1/sqrt(D)
    unit = spread / spread.norm(dim=1, keepdim=True)
    assert embedding_std(spread) == pytest.approx(float(unit.std(0).mean()), rel=1e-6)
    singular = torch.linalg.svdvals(spread - spread.mean(0))
    p = singular / singular.sum()
    assert effective_rank(spread) == pytest.approx(float(torch.exp(-(p * p.log()).sum())), rel=1e-5)
    assert effective_rank(line) == pytest.approx(1.0, abs=1e-3) and effective_rank(spread) > 50


class CollapsingBYOL(BYOL):
    """BYOL without its predictor and without the stop-gradient: a constant output minimises its loss."""

    name = "byol-collapsing"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.predictor = torch.nn.Identity()

    def _target(self, view: torch.Tensor) -> torch.Tensor:
        return self.projector(self.encoder(self.normalize(view)))


def test_a_collapsing_run_shows_its_embedding_std_going_to_zero(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(METHODS._entries, CollapsingBYOL.name, CollapsingBYOL)
    heads = {"hidden_dim": 256, "out_dim": 64, "base_momentum": 0.0}
    optimizer = {"name": "sgd", "lr": 1.0, "warmup_epochs": 0, "weight_decay": 0.1}
    final = {}
    for name in ("byol-collapsing", "byol"):
        config = TrainConfig(
            method=name, backbone="shufflenetv2", data="shapes10", split="test", image_size=16, epochs=4,
            batch_size=32,
            max_steps=50, out=str(tmp_path / name), monitor_every=0, plots=False, seed=0,
            method_overrides={**heads, "optimizer": optimizer},
        )  # fmt: skip
        train(config, progress=False)
        records = read_metrics(tmp_path / name / METRICS_FILE)
        # spread at initialisation (1/sqrt(64) = 0.125 on the sphere)
        assert records[0]["prediction_std"] > 0.05
        final[name] = sum(r["prediction_std"] for r in records[-10:]) / 10
    # from ~0.1 at initialisation to a few thousandths, several times below BYOL's own at the same settings
    assert final["byol-collapsing"] < 0.01 and final["byol-collapsing"] < 0.25 * final["byol"]


def test_online_knn_rises_during_a_short_simclr_run(tmp_path: Path) -> None:
    from rich.console import Console

    from edgessl.data import load_dataset
    from edgessl.demo import SHORT_SCHEDULE_OVERRIDES
    from edgessl.methods import build_method
    from edgessl.training.monitor import OnlineMonitor
    from edgessl.training.resolve import resolve_run
    from edgessl.training.rng import seed_everything

    # the demo's run (its short-schedule recipe, 6-epoch schedule), stopped after its second epoch
    config = TrainConfig(
        method="simclr", backbone="shufflenetv2", data="shapes10", split="unlabeled", image_size=32, epochs=6,
        max_steps=156, batch_size=128, out=str(tmp_path), plots=False, seed=0,
        method_overrides=SHORT_SCHEDULE_OVERRIDES["simclr"],
    )  # fmt: skip
    pretext = load_dataset("shapes10", "unlabeled", image_size=32)
    seed_everything(config.seed)  # the trainer's initial weights, before its first step
    initial = build_method(
        "simclr", "shufflenetv2", 32, pretext.mean, pretext.std, resolve_run(config).method
    )
    monitor = OnlineMonitor.for_dataset(pretext, "shapes10", None, torch.device("cpu"), Console(quiet=True))
    at_start = monitor.measure(initial.representation())["knn_accuracy"]
    train(config, progress=False)
    knn = [r["knn_accuracy"] for r in read_metrics(tmp_path / METRICS_FILE) if "knn_accuracy" in r]
    assert len(knn) == 2
    assert knn[-1] > at_start + 0.10, (at_start, knn)


def test_online_knn_finds_the_labelled_splits_of_an_image_folder(cifar10_small: Path) -> None:
    """The run's ``data`` is a folder path; the monitor must read its train/test splits from that path."""
    from rich.console import Console

    from edgessl.data import load_dataset
    from edgessl.training.monitor import BANK_SIZE, OnlineMonitor

    pretext = load_dataset(str(cifar10_small), "train", image_size=16)
    monitor = OnlineMonitor.for_dataset(
        pretext, str(cifar10_small), None, torch.device("cpu"), Console(quiet=True)
    )
    assert monitor.data.bank is not None and len(monitor.data.bank) == min(BANK_SIZE, len(pretext))
    assert monitor.data.num_classes == 10
