"""Run a study: pretrain and evaluate every (method, backbone) cell with every seed, then render
Table 1 (with intervals over seeds), Figures 1-2 and ``study.json``.

Layout of a study folder::

    STUDY/study.yaml                           the resolved config of the latest call
    STUDY/runs/<method>-<backbone>-seed<S>/    an ordinary training run folder per unit
        checkpoints/epoch_NNNN.pt ...          one every ``save_every`` epochs
        study_cell.json                        written last: its presence marks the unit finished
    STUDY/table1.md, table1.csv, figure1_by_method.png, figure2_by_backbone.png
    STUDY/study.json                           every unit's per-seed values and the table's statistics

A *unit* is one cell trained with one seed (:class:`~edgessl.study.config.Unit`). Resuming
is per unit and per stage: a finished unit is skipped; a unit whose training stopped
part-way resumes from its ``last.pt``; a unit whose training finished but whose
evaluation did not only evaluates (evaluation results are themselves cached per
checkpoint in the run folder). Raising ``seeds`` later keeps every finished seed and
trains only the new ones.

Across machines (:class:`Shard`, ``edgessl study PRESET --shard I/N``): N workers, e.g. a
SLURM array job, share one study folder. Worker I takes units I, I + N, I + 2N, ... of
:meth:`StudyConfig.units` (numbered from 1), so the shares are disjoint and fixed. A worker
claims a unit by holding ``RUN/.study-claim`` (an ``flock``, :func:`run_folder.locked`,
released by the kernel however the worker dies) for as long as it trains and evaluates
it, and checks again under the claim that the unit is unfinished: a unit is never
trained twice, even by a duplicate worker or one started without ``--shard``, which
skips a claimed unit. Every worker then renders Table 1 and the figures from whatever is
finished, under ``STUDY/.render.lock`` so that the last one to finish writes the most
complete table. Each cell's pretraining can itself be a multi-process job (``launcher``,
e.g. ``accelerate launch --multi_gpu --num_processes 4``): the worker runs
``LAUNCHER -m edgessl train --config RUN/study_train.yaml`` and waits for it.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from edgessl.errors import CheckpointError, ConfigError, EdgesslError
from edgessl.files import atomic_output, write_json
from edgessl.study.config import StudyConfig, Unit, cell_name, dump_study
from edgessl.study.figures import figure_by_backbone, figure_by_method, save_figure
from edgessl.study.results import STUDY_JSON, CellResult, read_cell, write_cell
from edgessl.study.table import StudyTable, build_table

STUDY_FILE = "study.yaml"
RUNS_DIR = "runs"
TABLE_MD, TABLE_CSV = "table1.md", "table1.csv"
FIGURE_1, FIGURE_2 = "figure1_by_method.png", "figure2_by_backbone.png"
CLAIM_FILE, RENDER_LOCK = ".study-claim", ".render.lock"
LAUNCH_CONFIG = "study_train.yaml"  # a launched cell's TrainConfig, in its run folder


@dataclass(frozen=True)
class Shard:
    """Worker ``index`` of ``count`` (from 1, as SLURM array ids ``--array=1-N``); its share of the grid."""

    index: int = 1
    count: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.index <= self.count:
            raise ConfigError(
                f"--shard {self.index}/{self.count}: expected I/N with 1 <= I <= N, e.g. --shard 1/4"
            )

    @classmethod
    def parse(cls, text: str) -> Shard:
        index, sep, count = text.partition("/")
        if not (sep and index.strip().isdigit() and count.strip().isdigit()):
            raise ConfigError(f"--shard expects I/N (worker I of N, from 1), got '{text}'")
        return cls(int(index), int(count))

    def share(self, units: list[Unit]) -> list[Unit]:
        """Units ``index, index + count, ...`` (1-based): disjoint shares covering every unit."""
        return units[self.index - 1 :: self.count]


@dataclass
class StudyOutcome:
    """What a call of :func:`run_study` did and where its outputs are."""

    config: StudyConfig
    root: Path
    cells: list[CellResult]  # every finished unit (cell and seed), in unit order
    processed: list[str] = field(default_factory=list)  # units trained and/or evaluated by this call
    skipped: list[str] = field(default_factory=list)  # units already finished before this call
    busy: list[str] = field(default_factory=list)  # units another worker held (left to it)
    outputs: dict[str, Path] = field(default_factory=dict)
    table: StudyTable | None = None

    @property
    def complete(self) -> bool:
        return len(self.cells) == len(self.config.units())


def run_study(
    config: StudyConfig,
    console: Any = None,
    progress: bool = True,
    max_cells: int | None = None,
    shard: Shard = Shard(),
    launcher: str | None = None,
) -> StudyOutcome:
    """Bring every unit of ``shard``'s share of ``config`` to finished (at most ``max_cells``
    unfinished ones in this call), then write Table 1, Figures 1-2 and ``study.json`` for
    every unit finished so far, by any worker.

    ``console`` is a rich console for progress lines (None: silent); ``progress`` is passed
    to the trainer's progress bar; ``launcher`` runs each cell's pretraining as
    ``LAUNCHER -m edgessl train ...`` (see the module docstring).
    """
    validate_names(config)
    launch = launch_prefix(launcher)
    root = Path(config.out)
    # before study.yaml is rewritten: never skip a cell and overwrite its config
    refuse_changed_cells(config, root)
    refuse_unseeded_layout(config, root)
    created_root, new_study = not root.exists(), not (root / STUDY_FILE).exists()
    root.mkdir(parents=True, exist_ok=True)
    with atomic_output(root / STUDY_FILE) as tmp:  # every worker writes it: never a torn file
        tmp.write_text(dump_study(config))
    outcome = StudyOutcome(config, root, [])
    try:
        return _run_units(config, root, outcome, console, progress, max_cells, shard, launch)
    except EdgesslError:
        if new_study and not outcome.processed:  # refused before its first cell trained: leave nothing
            remove_unused_study(root, created_root)
        raise


def _run_units(
    config: StudyConfig,
    root: Path,
    outcome: StudyOutcome,
    console: Any,
    progress: bool,
    max_cells: int | None,
    shard: Shard,
    launch: list[str] | None,
) -> StudyOutcome:
    from edgessl.training.run_folder import RunFolderBusy, locked  # imported here: it pulls in torch

    say = _printer(console)
    units = config.units()
    for unit in shard.share(units):
        name = unit.name
        run_dir = root / RUNS_DIR / name
        if is_finished(read_cell(run_dir), config):
            outcome.skipped.append(name)
            continue
        if max_cells is not None and len(outcome.processed) >= max_cells:
            say(f"stopping after {max_cells} cell(s) (--max-cells); run the same command again to continue")
            break
        with ExitStack() as claim:
            try:
                claim.enter_context(locked(run_dir, CLAIM_FILE))
            except RunFolderBusy:
                say(f"{name}: claimed by another worker, left to it")
                outcome.busy.append(name)
                continue
            if is_finished(read_cell(run_dir), config):  # another worker finished it meanwhile
                outcome.skipped.append(name)
                continue
            say(f"[bold][{units.index(unit) + 1}/{len(units)}] {name}[/]")
            write_cell(run_cell(config, unit, run_dir, console, progress, launch), run_dir)
        outcome.processed.append(name)
    with locked(root, RENDER_LOCK, wait=True):  # the last worker to render sees the most
        outcome.cells = [
            result
            for result in (read_cell(root / RUNS_DIR / unit.name) for unit in units)
            if is_finished(result, config)
        ]
        outcome.table, outcome.outputs = render_outputs(outcome.cells, config, root)
    return outcome


def remove_unused_study(root: Path, created_root: bool) -> None:
    """A new study's folder as it was before it started: ``study.yaml`` and the empty folders go.

    Called only for a study that had no ``study.yaml`` and no cell finished in, when a cell
    refused to start (too little disk, say); anything with content is kept, and ``root``
    itself only goes when this call created it.
    """
    (root / STUDY_FILE).unlink(missing_ok=True)
    folders = sorted((path for path in root.rglob("*") if path.is_dir()), reverse=True)  # deepest first
    for folder in folders:
        if not any(folder.iterdir()):
            folder.rmdir()
    if created_root and not any(root.iterdir()):
        root.rmdir()


def launch_prefix(launcher: str | None) -> list[str] | None:
    """``launcher`` as an argument list, checked before any cell starts (None: train in this process)."""
    if launcher is None:
        return None
    words = shlex.split(launcher)
    if not words or shutil.which(words[0]) is None:
        raise ConfigError(
            f"--launcher '{launcher}': '{words[0] if words else ''}' is not a command on PATH; "
            "e.g. --launcher 'accelerate launch --multi_gpu --num_processes 4'"
        )
    return words


def _printer(console: Any) -> Callable[[str], None]:
    return console.print if console is not None else (lambda _message: None)


def is_finished(result: CellResult | None, config: StudyConfig) -> bool:
    """Trained as far as the study asks and evaluated with every protocol it names."""
    if result is None:
        return False
    if result.diverged is not None:  # its seed diverges again: kept as it is (delete the folder to retry)
        return True
    return training_done(result.epochs, result.steps, config) and all(
        protocol in result.curves for protocol in config.protocols
    )


def training_done(epoch: int, step: int, config: StudyConfig) -> bool:
    """The trainer stops at ``epochs`` or, for smoke runs, at ``max_steps``: either is done."""
    train = config.train
    return epoch >= train.epochs or (train.max_steps is not None and step >= train.max_steps)


def validate_names(config: StudyConfig) -> None:
    """Fail before any training when a method, its recipe, a backbone, protocol or protocol option is
    wrong."""
    from edgessl.backbones import BACKBONES, TIMM_PREFIX, backbone_names
    from edgessl.evaluation import PROTOCOLS
    from edgessl.methods import METHODS, method_names
    from edgessl.training.resolve import resolve_method_config

    method_names()  # imports the method modules, which fills the registry
    backbone_names()  # likewise for the backbone families
    for name in config.methods:
        METHODS.get(name)
        first = Unit(name, config.backbones[0], config.seed_values()[0])
        resolved = resolve_method_config(train_config(config, first, Path(config.out)))
        teacher = getattr(resolved, "teacher", None)
        if teacher is not None and not teacher.source:
            raise ConfigError(
                f"study: {name} distils from a teacher; name it under method_overrides, e.g. "
                f"'method_overrides: {{{name}: {{teacher: {{source: runs/simclr-resnet18}}}}}}' "
                "(a run folder or checkpoint, or a backbone with weights: FILE)"
            )
    for name in config.backbones:
        if not name.startswith(TIMM_PREFIX):
            BACKBONES.get(name)
    for name in config.protocols:
        PROTOCOLS.get(name).make_options(config.eval_options.get(name, {}))
    if config.device is not None:  # before the first cell trains, not when it is first evaluated (D10)
        from edgessl.devices import resolve_device

        resolve_device(config.device)


def run_cell(
    config: StudyConfig,
    unit: Unit,
    run_dir: Path,
    console: Any,
    progress: bool,
    launch: list[str] | None = None,
) -> CellResult:
    """Train the cell as far as the study asks (resuming), evaluate every checkpoint, measure costs."""
    say = _printer(console)
    state = training_state(run_dir)
    if state is None or not training_done(*state, config):
        where = f"from epoch {state[0]} (step {state[1]})" if state else "from scratch"
        say(f"  pretraining {where} to epoch {config.train.epochs}")
        cell_config = train_config(config, unit, run_dir)
        try:
            if launch is None:
                pretrain(cell_config, resume=state is not None, console=console, progress=progress)
            else:
                launch_pretrain(cell_config, state is not None, launch, console)
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


def pretrain(config: Any, resume: bool, console: Any, progress: bool) -> None:
    """One cell's pretext training (the trainer is imported here: it pulls in accelerate)."""
    from edgessl.training.trainer import train

    train(config, resume=resume, console=console, progress=progress)


def launch_pretrain(config: Any, resume: bool, launch: list[str], console: Any) -> None:
    """One cell's pretraining as its own (possibly multi-process) job: ``LAUNCHER -m edgessl train``."""
    from edgessl.training.resolve import config_yaml

    run_dir = Path(config.out)
    with atomic_output(run_dir / LAUNCH_CONFIG) as tmp:
        tmp.write_text(config_yaml(config))
    command = [*launch, "-m", "edgessl", "train", "--config", str(run_dir / LAUNCH_CONFIG), "--no-progress"]
    if resume:
        command.append("--resume")
    _printer(console)(f"  {shlex.join(command)}")
    sys.stdout.flush()
    code = subprocess.run(command, check=False).returncode
    if code != 0:
        raise EdgesslError(
            f"pretraining {run_dir.name} failed: '{shlex.join(command)}' exited with code {code} "
            "(its output is above); fix it and run the study again to resume"
        )


def refuse_changed_cells(config: StudyConfig, root: Path) -> None:
    """A ConfigError when a cell already trained in ``root`` was trained with other settings than
    ``config`` asks.

    Finished cells are skipped and unfinished ones resumed, so a changed setting (an
    image size, a learning rate, a method override) would otherwise keep the old
    results under the new ``study.yaml``. Only what a resume may change (more epochs,
    where the data is, how often to save) may differ.
    """
    from edgessl.checkpoints import load_checkpoint
    from edgessl.runs import RunFolder
    from edgessl.training.resolve import (
        RESUMABLE,
        config_differences,
        resolve_method_config,
        resolved_train_config,
    )

    for unit in config.units():
        run_dir = root / RUNS_DIR / unit.name
        last = RunFolder(run_dir).last
        if not last.is_file():
            continue
        saved = load_checkpoint(last, mmap=True)["metadata"].get("train_config")  # metadata only
        if saved is None:  # written without one (an edgessl before checkpoints held it): nothing to compare
            continue
        cell = train_config(config, unit, run_dir)
        size = cell.image_size or saved.get("image_size")  # None: the data's size, which the run recorded
        resolved = resolved_train_config(cell, resolve_method_config(cell), size)
        changed = {
            key: pair for key, pair in config_differences(saved, resolved).items() if key not in RESUMABLE
        }
        if changed:
            listed = "; ".join(f"{key} {was!r} then, {now!r} now" for key, (was, now) in changed.items())
            raise ConfigError(
                f"{unit.name} in {root} was trained with other settings ({listed}): "
                f"give the changed study another --out, or delete {run_dir} to train that cell again"
            )


def refuse_unseeded_layout(config: StudyConfig, root: Path) -> None:
    """A ConfigError for a study folder from before seeds were an axis (``runs/<method>-<backbone>/``).

    Its cells would otherwise be silently ignored and trained again under new names.
    """
    old = [root / RUNS_DIR / cell_name(m, b) for m, b in config.cells()]
    found = [path for path in old if path.is_dir()]
    if found:
        seed = config.seed_values()[0]
        raise ConfigError(
            f"{root} holds cells without a seed in their name ({found[0].name}, from an older edgessl); "
            f"rename each runs/<method>-<backbone> to runs/<method>-<backbone>-seed{seed} (it was trained "
            "with train.seed), or give this study another --out"
        )


def training_state(run_dir: Path) -> tuple[int, int] | None:
    """``(epoch, step)`` the cell's ``last.pt`` reached, or None before its first save."""
    from edgessl.checkpoints import load_checkpoint
    from edgessl.runs import RunFolder

    last = RunFolder(run_dir).last
    if not last.is_file():
        return None
    meta = load_checkpoint(last)["metadata"]
    return int(meta.get("epoch", 0)), int(meta.get("step", 0))


def train_config(config: StudyConfig, unit: Unit, run_dir: Path):  # -> TrainConfig
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


def protocol_options(config: StudyConfig, protocol: str, seed: int) -> dict[str, Any]:
    """The study's options for ``protocol``; a seeded protocol (a probe, fine-tuning) takes the unit's seed
    unless the study fixes one, so the spread over seeds covers evaluation too (Bouthillier et al., 2021)."""
    from edgessl.evaluation import PROTOCOLS

    options = dict(config.eval_options.get(protocol, {}))
    if "seed" in PROTOCOLS.get(protocol).option_names():
        options.setdefault("seed", seed)
    return options


def evaluate_run(
    config: StudyConfig, run_dir: Path, protocol: str, seed: int
) -> tuple[tuple[int, float], ...]:
    """``(epoch, accuracy)`` for every checkpoint of the run, by epoch (cached by the evaluator)."""
    from edgessl.evaluation import evaluate_checkpoints

    records = evaluate_checkpoints(
        run_dir,
        config.train.data,
        [protocol],
        data_root=config.train.data_root,
        image_size=config.train.image_size,
        device=config.device,
        **protocol_options(config, protocol, seed),
    )
    points = {
        int(record["epoch"]): float(record["accuracy"])
        for record in records
        if record["protocol"] == protocol
    }
    if not points:
        raise CheckpointError(
            f"{run_dir} has no checkpoint to evaluate; delete the folder to retrain the cell"
        )
    return tuple(sorted(points.items()))


def measure_cell(
    config: StudyConfig,
    unit: Unit,
    run_dir: Path,
    curves: dict[str, tuple[tuple[int, float], ...]],
) -> CellResult:
    """Costs of the final representation plus the trainer's time and energy records."""
    from edgessl.checkpoints import load_representation
    from edgessl.profiling.flops import count_macs
    from edgessl.runs import RunFolder

    loaded = load_representation(RunFolder(run_dir).last)
    meta = loaded.metadata
    image_size = int(meta.get("image_size") or config.train.image_size)
    energy = meta.get("energy") or {}
    return CellResult(
        method=unit.method,
        backbone=unit.backbone,
        seed=unit.seed,
        recipe=str(meta.get("recipe", "paper")),  # runs from before recipes trained the paper's
        epochs=loaded.epoch,
        steps=int(meta.get("step", 0)),
        curves=curves,
        train_seconds=float(meta.get("train_seconds", 0.0)),
        params=sum(p.numel() for p in loaded.model.parameters()),
        macs=count_macs(loaded.model, image_size),
        macs_224=count_macs(loaded.model, 224),
        image_size=image_size,
        energy_kwh=energy.get("energy_kwh"),
        co2_kg=energy.get("co2_kg"),
        teacher=(meta.get("frozen") or {}).get("teacher"),
    )


def render_outputs(
    cells: list[CellResult], config: StudyConfig, root: Path
) -> tuple[StudyTable, dict[str, Path]]:
    """Table 1 (Markdown, CSV), Figures 1-2 (PNG) and ``study.json`` of the finished units."""
    table = build_table(cells, config.protocol, config.methods, config.backbones)
    outputs = {"table_md": root / TABLE_MD, "table_csv": root / TABLE_CSV, "json": root / STUDY_JSON}
    write_json(outputs["json"], study_record(config, cells, table))
    for key, text in (("table_md", table.to_markdown()), ("table_csv", table.to_csv())):
        with atomic_output(outputs[key]) as tmp:  # a reader never sees a half-written table
            tmp.write_text(text)
    figures = {
        "figure1": (figure_by_method, root / FIGURE_1),
        "figure2": (figure_by_backbone, root / FIGURE_2),
    }
    for key, (draw, path) in figures.items():
        with atomic_output(path) as tmp:
            save_figure(draw(cells, config.protocol, config.methods, config.backbones), tmp)
        outputs[key] = path
    return table, outputs


def study_record(config: StudyConfig, cells: list[CellResult], table: StudyTable) -> dict[str, Any]:
    """What ``study.json`` holds: the config, every finished unit with its per-seed values (curves,
    costs), and Table 1's entries with their intervals, so any statistic can be recomputed."""
    from edgessl.study.config import study_to_dict

    return {
        "config": study_to_dict(config),
        "protocol": config.protocol,
        "seeds": list(config.seed_values()),
        "units": [cell.to_dict() for cell in cells],
        "table": table.to_dict(),
    }
