"""A cell's pretraining as its own, possibly multi-process, job: ``LAUNCHER -m edgessl train``.

The worker writes the cell's TrainConfig into its run folder (``study_train.yaml``), runs the
launcher on it and waits, so that it holds the cell's claim for as long as the job trains.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgessl.errors import ConfigError, EdgesslError
from edgessl.files import atomic_output
from edgessl.study.folder import LAUNCH_CONFIG


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


def launch_pretrain(run: Any, resume: bool, launch: list[str], say: Callable[[str], None]) -> None:
    """One cell's resolved run (:class:`~edgessl.training.resolve.ResolvedRun`) as its own (possibly
    multi-process) job: ``LAUNCHER -m edgessl train --config`` its file form."""
    run_dir = Path(run.train.out)
    with atomic_output(run_dir / LAUNCH_CONFIG) as tmp:
        tmp.write_text(run.yaml())
    command = [*launch, "-m", "edgessl", "train", "--config", str(run_dir / LAUNCH_CONFIG), "--no-progress"]
    if resume:
        command.append("--resume")
    say(f"  {shlex.join(command)}")
    sys.stdout.flush()
    code = subprocess.run(command, check=False).returncode
    if code != 0:
        raise EdgesslError(
            f"pretraining {run_dir.name} failed: '{shlex.join(command)}' exited with code {code} "
            "(its output is above); fix it and run the study again to resume"
        )
