"""``--image-column`` / ``--label-column``: which columns of ``hf:`` or ``wds:`` data hold the images
and labels.

They fold into the data spec itself (``hf:PATH?image=COLUMN&label=COLUMN``), so a run's
``config.yaml`` and its checkpoints name the columns, and that one string given to
``--data`` anywhere (eval, export, explain) reads the same ones.
"""

from __future__ import annotations

import argparse

COLUMNS_HELP = "the {what} column of hf: data (for wds: shards, the member extension, e.g. {example})"


def add_column_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--image-column", metavar="NAME", help=COLUMNS_HELP.format(what="image", example="png")
    )
    parser.add_argument(
        "--label-column", metavar="NAME", help=COLUMNS_HELP.format(what="label", example="cls")
    )


def data_with_columns(data: str | None, args: argparse.Namespace) -> str | None:
    """``--data`` with the column flags folded in; the flags without ``--data`` are a ConfigError."""
    from edgessl.data.schemes import with_columns
    from edgessl.errors import ConfigError

    if data is None:
        if args.image_column is not None or args.label_column is not None:
            raise ConfigError("--image-column and --label-column need --data hf:PATH or --data wds:PATTERN")
        return None
    return with_columns(data, args.image_column, args.label_column)
