"""Building a run before its first step: the Accelerator, outside start weights, room on disk, what to resume.

Everything here reads or checks; nothing writes a file, so :class:`~edgessl.training.trainer.Trainer`
can build a run completely and still leave no trace when the input is rejected.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from edgessl import distributed
from edgessl.checkpoints import load_checkpoint
from edgessl.errors import CheckpointError, ConfigError
from edgessl.methods import Method
from edgessl.runs import RunFolder
from edgessl.training import tracking
from edgessl.training.config import TrainConfig
from edgessl.training.resolve import resume_changes
from edgessl.training.run_folder import being_written, live_writer


def make_accelerator(config: TrainConfig, run_dir: Path):  # -> accelerate.Accelerator
    """The run's Accelerator: accelerate's own configuration (``accelerate config`` / ``accelerate launch``
    flags) unless ``config.precision`` overrides it, and exactly the processes the launcher started.

    Processes started without GPUs (``torchrun``, ``accelerate launch --multi_gpu``) are
    joined over gloo on the CPU; accelerate would otherwise give each its own world of one.
    """
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs

    distributed.check_launch()
    # torch >= 2.13 deprecates broadcast_buffers for forward_sync_buffers, which accelerate cannot pass yet;
    # False is what is meant (buffers start equal: every process builds the model from the same seed).
    warnings.filterwarnings("ignore", message="`broadcast_buffers` is deprecated", category=FutureWarning)
    try:
        accelerator = Accelerator(
            mixed_precision=config.precision,  # None: accelerate's configuration
            cpu=distributed.cpu_processes_launched(),
            gradient_accumulation_steps=config.grad_accum,
            log_with=tracking.tracker_names(config.log_with) or None,
            project_dir=run_dir / tracking.TRACKER_DIR,
            # BatchNorm statistics are kept equal by SyncBatchNorm or averaged at each save
            # (edgessl.distributed), MoCo's queue by the method; DDP's default would broadcast
            # rank 0's buffers (the 32 MB queue among them) every step.
            kwargs_handlers=[DistributedDataParallelKwargs(broadcast_buffers=False)],
        )
    except (ValueError, RuntimeError) as exc:
        precision = config.precision or os.environ.get("ACCELERATE_MIXED_PRECISION", "no")
        raise ConfigError(
            f"cannot train with precision '{precision}' here: {str(exc).splitlines()[0]}; try --precision no"
        ) from None
    distributed.check_process_count(accelerator.num_processes)
    return accelerator


def start_from_weights(method: Method, path: str) -> None:
    """Load outside encoder weights into ``method`` and copy them into its momentum targets (they start
    equal)."""
    from edgessl.backbones import load_backbone_weights

    load_backbone_weights(method.representation().encoder, path)
    with torch.no_grad():
        for online, target in method.momentum_pairs():
            target.load_state_dict(online.state_dict())


def checkpoint_bytes_to_write(method: Method, config: TrainConfig, start_epoch: int) -> int:
    """Rough disk need of the rest of the run: each checkpoint to come (the epoch files still due,
    ``last.pt``, one temporary file during a write) holds the stored state (not the frozen modules)
    plus up to two optimiser slots per trainable parameter."""
    stored = sum(t.numel() * t.element_size() for t in method.state_dict().values())
    one = stored + 2 * sum(p.numel() * p.element_size() for p in method.trainable_parameters())
    remaining = range(start_epoch + 1, config.epochs + 1)
    return one * (sum(1 for e in remaining if e % config.save_every == 0 or e == config.epochs) + 2)


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
