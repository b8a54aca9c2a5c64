"""One unit (a cell with one seed) of a study: its run, resolved; trained as far as the study asks,
resuming; then evaluated and measured, or recorded as diverged."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgessl.errors import EdgesslError
from edgessl.study.config import StudyConfig, Unit
from edgessl.study.launch import launch_pretrain
from edgessl.study.measure import evaluate_run, measure_cell
from edgessl.study.results import CellResult
from edgessl.training.config import TrainConfig

if TYPE_CHECKING:
    from edgessl.training.resolve import ResolvedRun


def printer(console: Any) -> Callable[[str], None]:
    """Where progress lines go: the rich ``console``, or nowhere when there is none."""
    return console.print if console is not None else (lambda _message: None)


def train_config(config: StudyConfig, unit: Unit, run_dir: Path) -> TrainConfig:
    """The study's ``train`` run for one unit: its method, backbone, seed, folder, batch size and
    overrides."""
    train = config.train
    return replace(
        train,
        method=unit.method,
        backbone=unit.backbone,
        seed=unit.seed,
        out=str(run_dir),
        batch_size=config.batch_size_for(unit.method, unit.backbone),
        method_overrides={**train.method_overrides, **config.method_overrides.get(unit.method, {})},
    )


def resolve_cell(config: StudyConfig, unit: Unit, run_dir: Path) -> ResolvedRun:
    """The unit's run, resolved once: what the study checks before training, compares with a
    trained cell's checkpoint, and hands to the trainer (or writes for a launched job)."""
    from edgessl.training.resolve import resolve_run

    return resolve_run(train_config(config, unit, run_dir))


def training_state(run_dir: Path) -> tuple[int, int] | None:
    """``(epoch, step)`` the cell's ``last.pt`` reached, or None before its first save."""
    from edgessl.checkpoints import load_checkpoint
    from edgessl.runs import RunFolder

    last = RunFolder(run_dir).last
    if not last.is_file():
        return None
    meta = load_checkpoint(last)["metadata"]
    return int(meta.get("epoch", 0)), int(meta.get("step", 0))


def training_done(epoch: int, step: int, config: StudyConfig) -> bool:
    """The trainer stops at ``epochs`` or, for smoke runs, at ``max_steps``: either is done."""
    train = config.train
    return epoch >= train.epochs or (train.max_steps is not None and step >= train.max_steps)


def is_finished(result: CellResult | None, config: StudyConfig) -> bool:
    """Trained as far as the study asks and evaluated with every protocol it names."""
    if result is None:
        return False
    if result.diverged is not None:  # its seed diverges again: kept as it is (delete the folder to retry)
        return True
    return training_done(result.epochs, result.steps, config) and all(
        protocol in result.curves for protocol in config.protocols
    )


def run_cell(
    config: StudyConfig,
    unit: Unit,
    run_dir: Path,
    console: Any,
    progress: bool,
    launch: list[str] | None = None,
) -> CellResult:
    """Train the cell as far as the study asks (resuming), evaluate every checkpoint, measure costs."""
    say = printer(console)
    state = training_state(run_dir)
    if state is None or not training_done(*state, config):
        where = f"from epoch {state[0]} (step {state[1]})" if state else "from scratch"
        say(f"  pretraining {where} to epoch {config.train.epochs}")
        run = resolve_cell(config, unit, run_dir)
        try:
            if launch is None:
                pretrain(run, resume=state is not None, console=console, progress=progress)
            else:
                launch_pretrain(run, state is not None, launch, say)
        except EdgesslError as exc:
            reason = divergence(run_dir, exc)
            if reason is None:
                raise
            say(
                f"  [yellow]diverged[/]: {reason}; kept as a diverged run "
                f"(delete {run_dir} to train it again)"
            )
            return diverged_cell(config, unit, run_dir, reason)
    curves = {}
    for protocol in config.protocols:
        say(f"  evaluating every checkpoint: {protocol}")
        curves[protocol] = evaluate_run(config, run_dir, protocol, unit.seed)
    return measure_cell(config, unit, run_dir, curves)


def pretrain(run: ResolvedRun, resume: bool, console: Any, progress: bool) -> None:
    """One cell's pretext training (the trainer is imported here: it pulls in accelerate)."""
    from edgessl.training.trainer import train

    train(run, resume=resume, console=console, progress=progress)


def divergence(run_dir: Path, error: EdgesslError) -> str | None:
    """Why a unit's pretraining stopped on a non-finite loss (in this process, or in a launched job,
    whose metrics.jsonl says so), or None for any other failure."""
    from edgessl.errors import TrainingDiverged
    from edgessl.training.run_log import METRICS_FILE, read_metrics

    if isinstance(error, TrainingDiverged):
        return str(error).split(";")[0]
    records = read_metrics(run_dir / METRICS_FILE) if (run_dir / METRICS_FILE).is_file() else []
    if records and "nonfinite_loss" in records[-1]:
        return f"the loss became {records[-1]['nonfinite_loss']} at step {records[-1]['step']}"
    return None


def diverged_cell(config: StudyConfig, unit: Unit, run_dir: Path, reason: str) -> CellResult:
    """The record of a diverged unit: which, when and why; no accuracy and no cost."""
    state = training_state(run_dir) or (0, 0)
    return CellResult(
        method=unit.method,
        backbone=unit.backbone,
        epochs=state[0],
        steps=state[1],
        curves={},
        train_seconds=0.0,
        params=0,
        macs=0.0,
        macs_224=0.0,
        image_size=config.train.image_size or 0,
        recipe=config.train.recipe,
        seed=unit.seed,
        diverged=reason,
    )
