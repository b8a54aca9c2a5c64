"""Run a study: pretrain and evaluate every (method, backbone) cell with every seed, then render
Table 1 (with intervals over seeds), Figures 1-2 and ``study.json`` (the folder's layout:
:mod:`edgessl.study.folder`).

A *unit* is one cell trained with one seed (:class:`~edgessl.study.config.Unit`,
:mod:`edgessl.study.cell`). Resuming is per unit and per stage: a finished unit is skipped;
a unit whose training stopped part-way resumes from its ``last.pt``; a unit whose training
finished but whose evaluation did not only evaluates (evaluation results are themselves
cached per checkpoint in the run folder). Raising ``seeds`` later keeps every finished seed
and trains only the new ones.

Across machines (:class:`~edgessl.study.shard.Shard`, ``edgessl study PRESET --shard I/N``):
N workers, e.g. a SLURM array job, share one study folder. Worker I takes units I, I + N,
I + 2N, ... of :meth:`StudyConfig.units` (numbered from 1), so the shares are disjoint and
fixed. A worker claims a unit by holding ``RUN/.study-claim`` (an ``flock``,
:func:`run_folder.locked`, released by the kernel however the worker dies) for as long as it
trains and evaluates it, and checks again under the claim that the unit is unfinished: a
unit is never trained twice, even by a duplicate worker or one started without ``--shard``,
which skips a claimed unit. Every worker then renders Table 1 and the figures from whatever
is finished, under ``STUDY/.render.lock`` so that the last one to finish writes the most
complete table. Each cell's pretraining can itself be a multi-process job (``launcher``,
e.g. ``accelerate launch --multi_gpu --num_processes 4``): the worker runs
``LAUNCHER -m edgessl train --config RUN/study_train.yaml`` and waits for it
(:mod:`edgessl.study.launch`).
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgessl.errors import EdgesslError
from edgessl.files import atomic_output
from edgessl.study.cell import is_finished, printer, run_cell
from edgessl.study.checks import refuse_changed_cells, refuse_unseeded_layout, validate_names
from edgessl.study.config import StudyConfig, dump_study
from edgessl.study.folder import CLAIM_FILE, RENDER_LOCK, RUNS_DIR, STUDY_FILE, remove_unused_study
from edgessl.study.launch import launch_prefix
from edgessl.study.render import render_outputs
from edgessl.study.results import CellResult, read_cell, write_cell
from edgessl.study.shard import EVERY_UNIT, Shard
from edgessl.study.table import StudyTable


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
    shard: Shard = EVERY_UNIT,
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
        return _run_units(
            config,
            root,
            outcome,
            console=console,
            progress=progress,
            max_cells=max_cells,
            shard=shard,
            launch=launch,
        )
    except EdgesslError:
        if new_study and not outcome.processed:  # refused before its first cell trained: leave nothing
            remove_unused_study(root, created_root)
        raise


def _run_units(
    config: StudyConfig,
    root: Path,
    outcome: StudyOutcome,
    *,
    console: Any,
    progress: bool,
    max_cells: int | None,
    shard: Shard,
    launch: list[str] | None,
) -> StudyOutcome:
    from edgessl.training.run_folder import RunFolderBusy, locked  # imported here: it pulls in torch

    say = printer(console)
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
