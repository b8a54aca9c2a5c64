"""What a resume continues and what it may change: the run folder's newest checkpoint, checked against
the resolved run.

A resume continues the run its checkpoint describes. It may change only what leaves the
trained state meaningful (:data:`~edgessl.training.config.RESUMABLE`): more epochs (the
rest of the schedule is stretched), the per-call limits, how often epoch checkpoints are
kept, where the data lives, kernel determinism and how the run is watched. Any other
difference is refused with the list of what differs, because the checkpoint's optimiser,
schedule and sampler would silently keep the old values (a new ``lr`` would be recorded
but not applied). A resume also rebuilds frozen modules (a teacher) from their source and
refuses one whose weights changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgessl.checkpoints import load_checkpoint
from edgessl.config import config_to_dict
from edgessl.errors import CheckpointError, ConfigError
from edgessl.methods import Method
from edgessl.runs import RunFolder
from edgessl.training.config import PER_CALL_LIMITS, RESUMABLE, TrainConfig
from edgessl.training.resolve import resolve_run
from edgessl.training.run_folder import being_written, live_writer


@dataclass(frozen=True)
class ResumePoint:
    """The checkpoint a resume continues, and what the resume changes (``{field: (old, new)}``)."""

    path: Path
    checkpoint: dict[str, Any]
    changes: dict[str, tuple[Any, Any]]


def resume_point(run_dir: Path, resume: bool, config: TrainConfig) -> ResumePoint | None:
    """The run folder's newest complete checkpoint, after checking that ``config`` can continue it."""
    newest = RunFolder(run_dir).newest()
    if newest is None:
        if resume:
            raise ConfigError(
                f"nothing to resume: {run_dir} holds no checkpoint; drop --resume to start a new run"
            )
        return None
    if not resume:
        writer = live_writer(run_dir)
        if writer is not None:
            raise being_written(run_dir, writer)
        raise ConfigError(
            f"{run_dir} already holds a run; pass --resume to continue it or choose another --out"
        )
    previous = load_checkpoint(newest)
    meta = previous["metadata"]
    if (meta.get("method"), meta.get("backbone")) != (config.method, config.backbone):
        raise CheckpointError(
            f"{newest} is a {meta.get('method')} run on {meta.get('backbone')}, not {config.method} on "
            f"{config.backbone}; choose another --out to start a new run"
        )
    if "optimizer" not in previous or "position" not in previous:
        raise CheckpointError(
            f"{newest} holds no training state to resume from; start a new run in another --out"
        )
    changes = resume_changes(meta.get("train_config", {}), config, int(previous["position"]["epoch"]), newest)
    return ResumePoint(newest, previous, changes)


def check_frozen_unchanged(method: Method, resume: ResumePoint | None) -> None:
    """A resume rebuilds the frozen modules (a teacher) from their source: refuse one whose weights
    changed."""
    if resume is None:
        return
    recorded = resume.checkpoint["metadata"].get("frozen", {})
    for name, now in method.frozen_provenance().items():
        before = recorded.get(name, {})
        if before.get("sha256") != now.get("sha256"):
            raise CheckpointError(
                f"the {name} of {resume.path} changed since the run started: {now.get('source')} "
                "now hashes to "
                f"{str(now.get('sha256'))[:12]}, the run was trained with {str(before.get('sha256'))[:12]}; "
                f"restore that {name}, or start a new run in another --out"
            )


def resume_changes(
    saved: dict[str, Any], resolved: TrainConfig, epochs_done: int, source: Path
) -> dict[str, tuple[Any, Any]]:
    """The allowed changes a resume makes to the checkpoint's ``train_config``, as ``{field: (old, new)}``.

    Raises :class:`ConfigError` naming every other difference, and when ``epochs`` would
    end the run before the epochs it has already trained.
    """
    differences = config_differences(saved, resolved)
    refused = {key: pair for key, pair in differences.items() if key not in RESUMABLE}
    if refused:
        listed = "; ".join(
            f"{key}: {was!r} in the checkpoint, {asked!r} asked" for key, (was, asked) in refused.items()
        )
        raise ConfigError(
            f"--resume cannot change {', '.join(refused)} of the run in {source} ({listed}); "
            f"a resume may change only {', '.join(RESUMABLE)}. "
            "Drop those options, or start a new run in another --out"
        )
    if resolved.epochs < epochs_done:
        raise ConfigError(
            f"--epochs {resolved.epochs} is fewer than the {epochs_done} epoch(s) {source} "
            "has already trained"
        )
    return {key: pair for key, pair in differences.items() if key not in PER_CALL_LIMITS}


def config_differences(saved: dict[str, Any], resolved: TrainConfig) -> dict[str, tuple[Any, Any]]:
    """``{dotted field: (saved, resolved)}`` for every field in which a run's saved ``train_config`` differs.

    A field the run's edgessl did not have yet counts as its default (so old runs stay
    comparable); ``out`` is not compared.
    """
    fresh = TrainConfig(method=resolved.method, backbone=resolved.backbone, data=resolved.data)
    defaults = _flatten(config_to_dict(resolve_run(fresh).train))
    old, new = {**defaults, **_flatten(saved)}, _flatten(config_to_dict(resolved))
    return {
        key: (old.get(key), value) for key, value in new.items() if key != "out" and old.get(key) != value
    }


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"method_overrides": {"optimizer": {"lr": 1}}}`` -> ``{"method_overrides.optimizer.lr": 1}``
    (lists as tuples)."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = tuple(value) if isinstance(value, list) else value
    return flat
