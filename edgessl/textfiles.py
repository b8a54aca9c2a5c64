"""Text users hand over (configs, study files, a dataset's names file): strict UTF-8, and YAML with
bounded aliases.

Such a file comes from outside, so a byte that is not UTF-8 is one line naming the file
and where, never a traceback. YAML aliases (``*name``) let a file of 1 KB expand to a
billion values ("billion laughs"): PyYAML builds them as shared objects, so loading is
quick, and the first thing that walks the result (printing, validating, copying) hangs.
:func:`load_yaml` counts what the document would expand to before building it and
refuses more than :data:`MAX_YAML_VALUES`, and a document that contains itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from edgessl.errors import ConfigError, EdgesslError

MAX_YAML_VALUES = 100_000  # a study of every method x backbone x option is a few hundred


def read_text(path: Path, what: str, error: type[EdgesslError] = ConfigError) -> str:
    """The file as UTF-8 text; a byte that is not UTF-8 is an ``error`` naming the file and the offset."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(
            f"{what} {path} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}): "
            "save it as UTF-8"
        ) from None


def load_yaml(text: str, where: str) -> Any:
    """``yaml.safe_load(text)``, refusing a document whose aliases expand past :data:`MAX_YAML_VALUES` values.

    A syntax error stays a ``yaml.YAMLError`` (callers name the file and line).
    """
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if expanded_values(node, where) > MAX_YAML_VALUES:
            raise ConfigError(
                f"{where}: its YAML aliases (*name) expand to more than {MAX_YAML_VALUES:,} values; "
                "write the values out instead"
            )
        return loader.construct_document(node)
    except RecursionError:
        raise ConfigError(f"{where}: the YAML is nested too deeply to read") from None
    finally:
        loader.dispose()


def expanded_values(root: yaml.Node, where: str) -> int:
    """How many values the document under ``root`` holds once every alias is written out.

    Each node is counted once and its size reused wherever an alias repeats it, so this
    takes time in the size of the file, not of its expansion.
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise ConfigError(f"{where}: a YAML alias refers to the value that contains it")
        open_nodes.add(key)
        if isinstance(node, yaml.MappingNode):
            total = 1 + sum(size(name) + size(value) for name, value in node.value)
        elif isinstance(node, yaml.SequenceNode):
            total = 1 + sum(size(item) for item in node.value)
        else:
            total = 1
        open_nodes.discard(key)
        sizes[key] = total
        return total

    return size(root)
