"""The ``edgessl`` command: parse, call the library, render with rich.

Each subcommand lives in ``edgessl/cli/<name>.py`` with ``add_parser(subparsers)`` that
registers its options and sets ``handler``. Command modules import only the standard
library at top level and import the library inside their handler, so ``edgessl eval
--onnx`` runs without torch and ``edgessl --help`` is instant.

User errors (:class:`edgessl.errors.EdgesslError`) print one line and exit with their
code; Ctrl-C exits with 130. Bugs keep their traceback.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
import typing
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import edgessl
from edgessl import __version__

PACKAGE_DIR = os.path.dirname(edgessl.__file__) + os.sep  # where edgessl's own warnings come from

COMMANDS = (
    "demo", "train", "plot", "eval", "sweep", "study", "compare", "report", "explain", "profile", "export",
    "backbones",
)  # fmt: skip


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="edgessl",
        description="Self-supervised pretraining, benchmarking and edge deployment of lightweight vision "
        "encoders.",
    )
    parser.add_argument("--version", action="version", version=f"edgessl {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        importlib.import_module(f"edgessl.cli.{name}").add_parser(subparsers)
    return parser


def print_error(message: str) -> None:
    from edgessl.cli.console import make_console

    make_console(stderr=True).print(f"[bold red]error:[/] {message}", markup=True, soft_wrap=True)


@contextmanager
def plain_warnings() -> Iterator[None]:
    """edgessl's own warnings (skipped images, a fallback cache folder) as one ``warning:`` line each.

    Python would print each as a ``UserWarning`` with a source line, and once per place
    it was raised from, so one skipped image read by training and by the kNN monitor
    showed twice. Other packages' warnings keep Python's form.
    """
    shown: set[str] = set()
    previous = warnings.showwarning

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: typing.TextIO | None = None,
        line: str | None = None,
    ) -> None:
        if not (issubclass(category, UserWarning) and filename.startswith(PACKAGE_DIR)):
            previous(message, category, filename, lineno, file, line)
        elif str(message) not in shown:
            shown.add(str(message))
            from edgessl.cli.console import make_console

            make_console(stderr=True).print(f"[yellow]warning:[/] {_escape(str(message))}", soft_wrap=True)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = previous


def main(argv: Sequence[str] | None = None) -> int:
    from edgessl.errors import EdgesslError

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        with plain_warnings():
            return int(args.handler(args) or 0)
    except EdgesslError as exc:
        print_error(_escape(str(exc)))
        return exc.exit_code
    except KeyboardInterrupt:
        print_error("interrupted")
        return 130
    except OSError as exc:
        if exc.errno not in DISK_ERRORS:
            raise  # anything else is a bug and keeps its traceback
        where = f" ({exc.filename})" if exc.filename else ""
        print_error(_escape(f"{exc.strerror or exc}{where}: {DISK_ERRORS[exc.errno]}"))
        return 1
    except (MemoryError, RuntimeError) as exc:
        if not is_out_of_memory(exc):
            raise
        print_error(OUT_OF_MEMORY)
        return 1


OUT_OF_MEMORY = (
    "out of memory: the images, batch or model do not fit in this machine's memory; "
    "lower --batch-size or --image-size (training: --grad-accum keeps the batch with less memory)"
)


def is_out_of_memory(exc: BaseException) -> bool:
    """An allocation that failed (D14): Python's and NumPy's MemoryError, PyTorch's CPU allocator
    refusing (a RuntimeError, under a memory limit), or a device running out (OutOfMemoryError)."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    return "can't allocate memory" in str(exc) or "out of memory" in str(exc).lower()


# A full or read-only disk while a command writes is the machine's state, not a bug: one line (D8, D11).
DISK_ERRORS = {
    errno.ENOSPC: "free some space, or write elsewhere with --out",
    errno.EDQUOT: "the disk quota is used up; free some space, or write elsewhere with --out",
    errno.EROFS: "the folder is on a read-only filesystem; write elsewhere with --out",
    errno.EACCES: "no permission to write there; write elsewhere with --out or fix its permissions",
}


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


if __name__ == "__main__":
    sys.exit(main())
