"""Building a run before its first step: the launch, the Accelerator, outside start weights, room on disk.

Everything here reads or checks; nothing writes a file, so :class:`~edgessl.training.trainer.Trainer`
can build a run completely and still leave no trace when the input is rejected. What a
resume continues is :mod:`.resume`'s.

The launch checks make "N processes" mean N processes on CPU-only machines too:
``torchrun`` (and ``accelerate launch --multi_gpu``, which runs torchrun) start N
processes, but accelerate joins them into one gloo group only when told to use the CPU;
otherwise each process trains alone on the same run folder.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch

from edgessl.errors import ConfigError
from edgessl.methods import Method
from edgessl.training import tracking
from edgessl.training.config import TrainConfig

# Environment variables a launcher sets to the number of processes (torchrun, Intel MPI / MPICH,
# Open MPI, MVAPICH).
WORLD_SIZE_VARIABLES = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")


def make_accelerator(config: TrainConfig, run_dir: Path):  # -> accelerate.Accelerator
    """The run's Accelerator: accelerate's own configuration (``accelerate config`` / ``accelerate launch``
    flags) unless ``config.precision`` overrides it, and exactly the processes the launcher started.

    Processes started without GPUs (``torchrun``, ``accelerate launch --multi_gpu``) are
    joined over gloo on the CPU; accelerate would otherwise give each its own world of one.
    """
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs

    check_launch()
    # torch >= 2.13 deprecates broadcast_buffers for forward_sync_buffers, which accelerate cannot pass yet;
    # False is what is meant (buffers start equal: every process builds the model from the same seed).
    warnings.filterwarnings("ignore", message="`broadcast_buffers` is deprecated", category=FutureWarning)
    try:
        accelerator = Accelerator(
            mixed_precision=config.precision,  # None: accelerate's configuration
            cpu=cpu_processes_launched(),
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
    check_process_count(accelerator.num_processes)
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


def launcher_world_size() -> int:
    """How many processes the launcher started (1 when none did), from its environment variables."""
    for name in WORLD_SIZE_VARIABLES:
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 1


def _accelerator_device_available() -> bool:
    accelerator = getattr(torch, "accelerator", None)  # torch >= 2.6: CUDA, XPU, MPS, ... in one call
    if accelerator is not None:
        return accelerator.is_available()
    return torch.cuda.is_available()


def cpu_processes_launched() -> bool:
    """Several processes and no accelerator device: accelerate must be told to join them with gloo."""
    return launcher_world_size() > 1 and not _accelerator_device_available()


def check_launch() -> None:
    """Refuse ``accelerate launch --num_processes N`` that started one process (before any setup).

    Without GPUs (or with ``--cpu``) and without MPI, accelerate's launcher runs the
    script once, whatever ``--num_processes`` says; it then still sets ``MASTER_PORT``,
    which a launcher of one local process does not.
    """
    launched_by_accelerate = "ACCELERATE_DYNAMO_BACKEND" in os.environ
    if launched_by_accelerate and "MASTER_PORT" in os.environ and launcher_world_size() == 1:
        raise ConfigError(
            "accelerate launch started 1 process although several were asked for: without GPUs, or with "
            "--cpu, "
            "it starts one unless MPI is configured. For N processes on CPUs run "
            "'accelerate launch --multi_gpu --num_processes N -m edgessl train ...' (gloo; edgessl uses the "
            "CPU "
            "when there is no GPU) or 'torchrun --nproc-per-node N -m edgessl train ...'; for one process, "
            "drop --num_processes (or unset MASTER_PORT)"
        )


def check_process_count(num_processes: int) -> None:
    """Refuse to train when accelerate joined fewer processes than the launcher started."""
    launched = launcher_world_size()
    if launched != num_processes:
        raise ConfigError(
            f"the launcher started {launched} processes but accelerate set up {num_processes}: "
            "each would train "
            "alone into the same run folder. Launch with 'accelerate launch --multi_gpu --num_processes N "
            "-m edgessl train ...' or 'torchrun --nproc-per-node N -m edgessl train ...'"
        )
