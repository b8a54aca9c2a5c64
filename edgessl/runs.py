"""A run folder's layout and which checkpoint to read: the one place that knows what ``edgessl train`` writes
where.

::

    RUN/config.yaml            the resolved configuration (loadable by --config)
    RUN/metrics.jsonl          one record per optimiser step (edgessl.training.run_log)
    RUN/checkpoints/           epoch_NNNN.pt every --save-every epochs, and last.pt
    RUN/eval/, RUN/explain/    what evaluation and explanation write about the run
    RUN/plots/, RUN/trackers/  training curves and tracker files

Every command that takes "a run folder or a checkpoint" resolves it through
:meth:`RunFolder.of`, and every choice of checkpoint ("all of them by epoch", "the last
epoch", "epoch N", "the newest complete one to resume") is a method here.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from edgessl.checkpoints import load_checkpoint
from edgessl.errors import CheckpointError

CHECKPOINT_DIR = "checkpoints"
LAST = "last.pt"
CONFIG_FILE = "config.yaml"
EVAL_DIR = "eval"
EXPLAIN_DIR = "explain"
_EPOCH_FILE = re.compile(r"^epoch_(\d+)\.pt$")


def epoch_checkpoint_name(epoch: int) -> str:
    return f"epoch_{epoch:04d}.pt"


def checkpoint_epoch(path: Path) -> int | None:
    match = _EPOCH_FILE.match(path.name)
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class RunFolder:
    """The folder of one training run (it need not exist yet: the trainer creates it)."""

    path: Path

    @classmethod
    def of(cls, target: str | Path) -> RunFolder:
        """The run a path belongs to: the run folder itself, its ``checkpoints/`` folder, or a checkpoint in
        it."""
        path = Path(target)
        folder = path.parent if path.is_file() or path.suffix == ".pt" else path
        return cls(folder.parent if folder.name == CHECKPOINT_DIR else folder)

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / CHECKPOINT_DIR

    @property
    def last(self) -> Path:
        return self.checkpoint_dir / LAST

    @property
    def config_file(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def eval_dir(self) -> Path:
        return self.path / EVAL_DIR

    @property
    def explain_dir(self) -> Path:
        return self.path / EXPLAIN_DIR

    def epoch_checkpoints(self) -> list[Path]:
        """``epoch_NNNN.pt`` files ordered by epoch (none when the folder does not exist)."""
        folder = self.checkpoint_dir
        if not folder.is_dir():
            return []
        return sorted((p for p in folder.iterdir() if checkpoint_epoch(p) is not None), key=checkpoint_epoch)

    def checkpoints(self) -> list[Path]:
        """Every epoch checkpoint by epoch; ``last.pt`` only when the run kept no epoch checkpoint."""
        epochs = self.epoch_checkpoints()
        if epochs:
            return epochs
        if self.last.is_file():
            return [self.last]
        if not self.path.is_dir():
            raise CheckpointError(f"no run folder or checkpoint at {self.path}")
        raise CheckpointError(
            f"{self.path} holds no checkpoints (expected {CHECKPOINT_DIR}/epoch_NNNN.pt or {LAST})"
        )

    def pick(self, epoch: int | None = None) -> Path:
        """The checkpoint of ``epoch``, or the last epoch's (what export and explain use by default)."""
        checkpoints = self.checkpoints()
        if epoch is None:
            return checkpoints[-1]
        matching = [path for path in checkpoints if checkpoint_epoch(path) == epoch]
        if not matching:
            epochs = [e for e in map(checkpoint_epoch, checkpoints) if e is not None]
            kept = f"epochs {', '.join(map(str, epochs))}" if epochs else f"only {checkpoints[0].name}"
            raise CheckpointError(
                f"{self.path} has no checkpoint of epoch {epoch} (it keeps {kept}); pick one of those"
            )
        return matching[0]

    def newest(self) -> Path | None:
        """The complete checkpoint furthest along, by step: ``last.pt`` or the newest epoch file (resume uses
        it).

        A kill between writing ``epoch_NNNN.pt`` and ``last.pt`` leaves the epoch file newer;
        ``last.pt`` wins a tie, being the one written last. A file that does not load (a
        damaged ``last.pt``) is passed over with a warning naming it, for the newest epoch
        file that does.
        """
        steps = {}
        for path in (self.last, *reversed(self.epoch_checkpoints())):
            if not path.is_file():
                continue
            try:
                steps[path] = saved_step(path)
            except CheckpointError:
                warnings.warn(
                    f"{path} is damaged (it does not load) and is passed over for the newest checkpoint "
                    "that does",
                    stacklevel=2,
                )
                continue
            if path != self.last:
                break  # older epoch files are further behind than this one
        return max(steps, key=lambda path: steps[path]) if steps else None


def saved_step(path: Path) -> int:
    """The optimiser step a checkpoint was saved at (its tensors are mapped, not read)."""
    return int(load_checkpoint(path, mmap=True)["metadata"].get("step", 0))


def list_checkpoints(target: str | Path) -> list[Path]:
    """The single checkpoint file given, or every checkpoint of a run folder by epoch."""
    path = Path(target)
    return [path] if path.is_file() else RunFolder.of(path).checkpoints()


def pick_checkpoint(target: str | Path, epoch: int | None = None) -> Path:
    """The checkpoint file given, or a run folder's checkpoint of ``epoch`` (default: its last epoch)."""
    path = Path(target)
    if path.is_file():
        if epoch is not None and checkpoint_epoch(path) not in (None, epoch):
            raise CheckpointError(f"{path} is the checkpoint of epoch {checkpoint_epoch(path)}, not {epoch}")
        return path
    return RunFolder.of(path).pick(epoch)
