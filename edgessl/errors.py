"""User-facing errors.

Anything a user can fix (a wrong name, a missing file, a corrupt checkpoint) is raised
as an :class:`EdgesslError`; the CLI prints its message on one line and exits with its
``exit_code`` instead of showing a traceback. Bugs stay ordinary exceptions.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class EdgesslError(Exception):
    """An error the user can fix; its message says what went wrong and how to fix it."""

    exit_code = 1


class UnknownNameError(EdgesslError, KeyError):
    """A name (backbone, method, dataset, preset...) that is not registered."""

    exit_code = 2

    def __init__(
        self, kind: str, name: str, choices: Iterable[str], hint: str = "", listed: int | None = None
    ) -> None:
        """``listed`` caps the names shown to the closest few (for catalogues like timm's ~1,300 models)."""
        self.kind, self.name, self.choices = kind, name, sorted(choices)
        close = difflib.get_close_matches(name, self.choices, n=max(listed or 1, 1), cutoff=0.4)
        suggestion = f" Did you mean '{close[0]}'?" if close else ""
        if listed is None:
            message = f"unknown {kind} '{name}'.{suggestion} Choose from: {', '.join(self.choices)}."
        else:
            nearest = f" Closest: {', '.join(close)}." if close else ""
            message = f"unknown {kind} '{name}'.{nearest}"
        super().__init__(message + (f" {hint}" if hint else ""))

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])


class DataError(EdgesslError):
    """A dataset that is missing, truncated or malformed."""


class CheckpointError(EdgesslError):
    """A checkpoint that is missing, corrupt or not edgessl's."""


class ConfigError(EdgesslError):
    """An invalid combination of options or a malformed config file."""

    exit_code = 2


class DiskFullError(EdgesslError):
    """A write failed for lack of space (or quota); what was written before is intact."""


class TrainingDiverged(EdgesslError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""
