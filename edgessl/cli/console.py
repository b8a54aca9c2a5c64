"""The rich console every command renders with."""

from __future__ import annotations

import os
import shutil

from rich.console import Console

PIPE_WIDTH = 140  # rich falls back to 80 columns when piped, which folds every table


def make_console(stderr: bool = False) -> Console:
    """A console that keeps tables readable when output goes to a file or a pipe."""
    width = None if os.isatty(2 if stderr else 1) else int(os.environ.get("COLUMNS", PIPE_WIDTH))
    if width is None:
        width = shutil.get_terminal_size().columns
    return Console(stderr=stderr, width=width, highlight=False)
