"""The demo end to end on a smaller budget: every step runs and every promised file exists."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from rich.console import Console

from edgessl.demo import STEPS, DemoOptions, DemoStepFailed, run_demo, summary_rows
from edgessl.explain.report import default_out
from edgessl.runs import pick_checkpoint


def test_demo_runs_every_step_and_writes_what_it_reports(tmp_path: Path) -> None:
    options = DemoOptions(
        minutes=0.1, epochs=1, batch_size=64, out=tmp_path / "runs", export_dir=tmp_path / "exported"
    )
    console = Console(file=open(tmp_path / "log.txt", "w"), width=140)  # noqa: SIM115 - closed with the test's tmp dir
    state = run_demo(options, console)

    rows = dict(summary_rows(state))
    for what in (
        "pretraining",
        "knn accuracy",
        "linear accuracy",
        "profile",
        "ONNX parity (fp32)",
        "int8 vs fp32",
        "kNN on ONNX Runtime alone",
    ):
        assert what in rows, f"summary lacks '{what}'"
    for protocol in ("knn", "linear"):
        assert all(
            what in rows[f"{protocol} accuracy"] for what in ("pretrained", "random init", "raw pixels")
        )
    assert rows["wall clock"].startswith(tuple("0123456789")) and all(
        name in rows["wall clock"] for name, *_ in STEPS
    )
    for what, path in state.paths.items():
        assert Path(path).exists(), f"{what}: {path} missing"
    assert state.checkpoint is not None and state.checkpoint.is_file()
    assert {p.suffix for p in (tmp_path / "exported").iterdir()} >= {".onnx"}
    pictures = [Path(path) for what, path in state.paths.items() if what.startswith("picture")]
    # the folder `edgessl explain RUN` writes, of the checkpoint `eval/export RUN` read by default
    assert pictures and all(
        path.parent == default_out(pick_checkpoint(state.checkpoint.parent.parent)) for path in pictures
    )
    log = (tmp_path / "log.txt").read_text()
    assert all(f"step {i}/{len(STEPS)}" in log for i in range(1, len(STEPS) + 1))


def test_a_failing_step_is_named_with_what_to_do(tmp_path: Path) -> None:
    options = DemoOptions(backbone="not_a_backbone", out=tmp_path / "runs", export_dir=tmp_path / "exported")
    with pytest.raises(
        DemoStepFailed, match=r"demo step 'pretrain' failed: unknown backbone 'not_a_backbone'.* — try"
    ):
        run_demo(options, Console(file=open(tmp_path / "log.txt", "w")))  # noqa: SIM115


def test_a_bug_in_a_step_keeps_its_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only user errors become one-line step failures; anything else is a bug and must show where it is."""
    from edgessl import demo

    def broken(state, console) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(demo, "STEPS", (("pretrain", broken, "hint"),))
    with pytest.raises(ZeroDivisionError, match="a bug"):
        run_demo(DemoOptions(out=tmp_path / "runs"), Console(file=open(tmp_path / "log.txt", "w")))  # noqa: SIM115


def test_demo_recipe_reaches_the_method(tmp_path: Path) -> None:
    """The demo's short-schedule settings arrive in the SimCLR it trains (views, head, optimiser)."""
    from edgessl.demo import pretrain_config
    from edgessl.methods import build_method
    from edgessl.training.resolve import resolve_run

    config = resolve_run(pretrain_config(DemoOptions(), str(tmp_path))).method
    method = build_method("simclr", "shufflenetv2", 32, (0.5,) * 3, (0.25,) * 3, config)
    view = method.augment_first  # SimCLR draws both views from one recipe
    assert view.crop_scale == (0.7, 1.0) and view.brightness == 0.4  # 0.8 x strength 0.5
    assert (config.hidden_dim, config.out_dim, config.optimizer.name, config.optimizer.weight_decay) == (
        256,
        64,
        "sgd",
        0.0,
    )
    assert method.projector(torch.zeros(2, method.encoder.feature_dim)).shape == (2, 64)


def test_the_demo_is_step_bound_same_numbers_under_a_concurrent_cpu_load(tmp_path: Path) -> None:
    """Two busy-looping processes take both cores: the demo's pretraining is slower, never shorter."""
    import subprocess
    import sys

    from image_folders import write_tiny_folder

    from edgessl.demo import pretrain_config
    from edgessl.training import train

    data = write_tiny_folder(tmp_path / "tiny", {"unlabeled": 96, "train": 20, "test": 20})
    options = DemoOptions(data=str(data), epochs=2, batch_size=16, out=tmp_path / "runs")
    idle = train(pretrain_config(options, str(tmp_path / "idle")), progress=False)
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        loaded = train(pretrain_config(options, str(tmp_path / "loaded")), progress=False)
    finally:
        for burner in burners:
            burner.kill()
    assert idle.steps == loaded.steps == 2 * (96 // 16) and loaded.epochs_done == 2
    assert loaded.final_loss == idle.final_loss  # bit-identical: the load changed the time, not the run


def test_a_safety_stop_says_the_numbers_are_not_the_demos() -> None:
    from edgessl.demo import safety_stop_message

    message = safety_stop_message(DemoOptions(minutes=0.5, epochs=6), 2)
    assert "--minutes 0.5 safety limit stopped pretraining after 2 of 6 epochs" in message
    assert "not the demo's" in message
