"""Writing into a run folder (whose layout is :mod:`edgessl.runs`'): one writer at a time, enough room,
no debris.

``RUN/.lock`` is held with ``fcntl.flock`` for as long as a training process writes the
folder, and removed when it finishes. The kernel drops the lock when its process dies
however it dies (SIGKILL, power loss), so a killed run never blocks its own ``--resume``,
and the file records which process holds it so a refused second writer can name it. edgessl
keeps this small lock rather than the ``filelock`` package because the refused process must
read the holder's
pid from the lock file, which ``filelock`` empties when it tries to acquire.

Checkpoints are written atomically (a temporary file, then a rename), so a save killed
half-way leaves only a hidden ``.NAME.*.tmp<suffix>`` file; holding the lock, the trainer
removes those (:func:`prepare_for_writing`), and resumes from :meth:`edgessl.runs.RunFolder.newest`.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edgessl.errors import EdgesslError
from edgessl.files import atomic_output, ensure_writable_dir, stale_temporaries
from edgessl.runs import RunFolder

LOCK_FILE = ".lock"


class RunFolderBusy(EdgesslError):
    """Another process is training into the same run folder."""


@contextmanager
def locked(run_dir: Path, lock_file: str = LOCK_FILE, wait: bool = False) -> Iterator[None]:
    """Hold ``run_dir/lock_file`` for the block; refuse at once if another process holds it (or, with
    ``wait``, block until it is free).

    Other owners of a folder reuse it under their own lock file name (a study claims a cell
    with one while the trainer inside holds ``.lock``).
    """
    path = ensure_writable_dir(run_dir) / lock_file
    fd = lock_current_file(path, wait)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} ({' '.join(sys.argv)[:200]})".encode(), 0)
        try:
            yield
        finally:
            path.unlink(missing_ok=True)  # while still held: a finished run keeps no lock file
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def being_written(run_dir: Path, writer: str) -> RunFolderBusy:
    """The one refusal of a second writer, whether it met the lock or the live writer's record."""
    return RunFolderBusy(
        f"{run_dir} is being written by {writer}; wait for it to finish, stop it, or choose another --out"
    )


def live_writer(run_dir: Path, lock_file: str = LOCK_FILE) -> str | None:
    """Who ``run_dir``'s lock file says is writing it, when that process is alive on this machine.

    Read without taking the lock (a probe could make a real writer's own attempt fail). A
    killed writer's lock file stays with its pid, so a pid that no longer runs is no writer.
    """
    try:
        text = (run_dir / lock_file).read_text(errors="replace").strip()
    except OSError:
        return None
    words = text.split()
    if len(words) < 4 or words[0] != "pid" or not words[1].isdigit() or words[3] != socket.gethostname():
        return None
    try:
        os.kill(int(words[1]), 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # alive, another user's
        pass
    return text


def lock_current_file(path: Path, wait: bool) -> int:
    """A descriptor of ``path`` holding its ``flock``, the file that is at ``path`` once locked.

    A holder removes the lock file as it releases it, so a process that opened the file
    before that and then got the lock holds a file no longer at ``path``; it opens the
    path again rather than write beside a process that locked the new file.
    """
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise being_written(path.parent, holder) from None
        except OSError as exc:  # e.g. ENOLCK: a network filesystem mounted without lock support
            os.close(fd)
            raise EdgesslError(
                f"cannot lock {path}: {exc.strerror or exc}; use a filesystem with flock support "
                "(NFS with locking, Lustre mounted with -o flock) or a local folder"
            ) from None
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # locked a file its last holder removed: lock the one now at the path


def remove_stale_temp_files(run_dir: Path) -> list[Path]:
    """Delete the temporary files of saves that were killed half-way (call only while holding the lock)."""
    stale = stale_temporaries(RunFolder(run_dir).checkpoint_dir)
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def prepare_for_writing(run_dir: Path, resumes: Path | None, config_text: str, config_file: str) -> None:
    """Under the lock, before the first step: check that the newest checkpoint is still the one the
    run was built to resume (``resumes``; None for a new run), clear killed saves' debris, check the
    checkpoint folder is writable, write the resolved config."""
    folder = RunFolder(run_dir)
    if folder.newest() != resumes:
        raise RunFolderBusy(f"{run_dir} changed while this run started; run the command again")
    remove_stale_temp_files(run_dir)
    ensure_writable_dir(folder.checkpoint_dir)
    with atomic_output(run_dir / config_file) as tmp:
        tmp.write_text(config_text)


def check_free_space(run_dir: Path, bytes_needed: int) -> None:
    """Fail before anything is created when the disk cannot hold the run's checkpoints.

    Measured on the nearest folder that exists (the run folder itself when resuming), so
    a refused new run leaves no run folder behind.
    """
    folder = RunFolder(run_dir).checkpoint_dir
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    if free < bytes_needed:
        raise EdgesslError(
            f"{folder} has {free / 1e9:.2f} GB free but the run's checkpoints need about "
            f"{bytes_needed / 1e9:.2f} GB; "
            "free some space, choose another --out, or raise --save-every"
        )
