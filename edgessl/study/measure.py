"""What a trained unit is worth and what it costs: every checkpoint evaluated with a protocol, then
the final representation's size and compute with the trainer's time and energy records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgessl.errors import CheckpointError
from edgessl.study.config import StudyConfig, Unit
from edgessl.study.results import CellResult


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
