"""Files that are whole or absent: atomic writes, and output folders checked before the work that fills them.

Every file edgessl writes for later (checkpoints, evaluation records, study cells, exports,
decoded image caches) goes through :func:`atomic_output`: a temporary file beside the
target, renamed over it only when the writing succeeded. A crash, a full disk or Ctrl-C
leaves the previous file intact and no half-written one under the final name; the
temporary file is removed, and one left by a process killed outright is found by
:func:`stale_temporaries`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TEMP_MARK = ".tmp"


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix, so readers recognise it); rename it to
    ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f"{TEMP_MARK}{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; outputs are ordinary files
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: str | Path, value: Any) -> None:
    """``value`` as indented JSON, written atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")


def stale_temporaries(folder: Path) -> list[Path]:
    """Temporary files :func:`atomic_output` left in ``folder`` when its process was killed mid-write."""
    return sorted(folder.glob(f".*{TEMP_MARK}*")) if folder.is_dir() else []


from edgessl.errors import EdgesslError


@contextmanager
def output_folder(folder: str | Path, option: str = "--out") -> Iterator[Path]:
    """The folder one command fills, checked writable before the work; if the command then fails (an
    error, a full disk, Ctrl-C), every folder this call created is removed again, so no empty or
    partial output folder is left behind. A folder that existed before is kept as it was found,
    apart from complete files the command renamed into it (each file is atomic)."""
    path = Path(folder).absolute()
    created = path
    while not created.parent.exists() and created.parent != created:
        created = created.parent
    fresh = not path.exists()
    ensure_writable_dir(path, option)
    try:
        yield path
    except BaseException:
        if fresh:
            shutil.rmtree(created, ignore_errors=True)
        raise


def ensure_writable_dir(folder: str | Path, option: str = "--out") -> Path:
    """Create ``folder`` if needed and prove a file can be written there, before any costly work.

    Without this, ``explain --out /proc/x`` fails only after every picture is computed.
    """
    path = Path(folder)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise EdgesslError(
            f"cannot write to {path}: {exc.strerror or exc}; choose another {option} or fix its permissions"
        ) from None
    return path
