"""Output folders checked before the work that fills them."""

from __future__ import annotations

import tempfile
from pathlib import Path

from edgessl.errors import EdgesslError


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
