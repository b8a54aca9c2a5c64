"""A converter that refuses a model says so in one line, naming the operator it could not take."""

from __future__ import annotations

import io
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout

from edgessl.export.metadata import ExportError

# how the converters name the operator they stopped at, in their own messages
OPERATOR_PATTERNS = (
    re.compile(r"(aten[.:]+[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)?)"),
    re.compile(r"[Oo]p(?:erator)? ['\"`]?([A-Za-z0-9_.:]+)['\"`]? (?:is )?not (?:supported|implemented)"),
    re.compile(r"[Uu]nsupported op(?:erator)?s?:? ['\"`]?([A-Za-z0-9_.:]+)"),
)


def first_operator(message: str) -> str | None:
    """The first operator name a converter's error message mentions, or None."""
    for pattern in OPERATOR_PATTERNS:
        found = pattern.search(message)
        if found:
            return found.group(1)
    return None


def first_line(message: str) -> str:
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return lines[0][:300] if lines else "no message"


@contextmanager
def converter_failure(format_name: str, role: str) -> Iterator[None]:
    """Turn a converter's exception into one :class:`ExportError` line (nothing is published after it)."""
    try:
        yield
    except (ExportError, KeyboardInterrupt, MemoryError, OSError):
        raise
    except Exception as exc:  # noqa: BLE001 -- converters raise anything, AssertionError to their own types
        message = str(exc)
        operator = first_operator(message)
        where = f"the first operator it cannot take is {operator}" if operator else first_line(message)
        raise ExportError(
            f"{format_name} cannot convert this model ({role}): {where}; nothing was written. "
            "ONNX (--format onnx) takes every edgessl backbone."
        ) from None


@contextmanager
def quiet() -> Iterator[None]:
    """A converter's or runtime's progress bars and logs kept off the export's output.

    Python's streams are swapped, and file descriptor 2 too: the converters' C++ code
    (TFLite's flatbuffer exporter, absl, ExecuTorch's thread pool) and torch's log handler
    write there directly. Errors still raise, with their messages.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
                yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
