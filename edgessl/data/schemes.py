"""Dataset specs with a scheme, ``hf:PATH_OR_NAME`` and ``wds:PATTERN``, and the registry of their readers.

A spec is one string wherever it travels (a flag, a run's ``config.yaml``, a checkpoint,
``edgessl eval``), so the columns a source is read with belong to it:
``hf:/data/pets?image=photo&label=breed``. ``--image-column`` and ``--label-column`` on
the command line fold into the spec (:func:`with_columns`); for WebDataset shards they
name member extensions (``?image=png&label=cls``).

Readers register here (:data:`SCHEMES`) the way named datasets register in
:data:`~edgessl.data.arrays.DATASETS`; importing this module imports no optional
package: a reader imports ``datasets`` or ``webdataset`` when it first reads.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode

from edgessl.errors import ConfigError, DataError
from edgessl.registry import Registry

if TYPE_CHECKING:
    from edgessl.data.arrays import SplitArrays

OPTIONS = ("image", "label")  # what may follow "?" in a scheme spec
SCHEME_LIKE = re.compile(r"^([a-z][a-z0-9]+):(?!//)")  # "hf:..." (not a URL such as s3://, not C:\)


@dataclass(frozen=True)
class SchemeSpec:
    """``scheme:location?image=COLUMN&label=COLUMN``, parsed."""

    scheme: str
    location: str
    image: str | None = None
    label: str | None = None

    def __str__(self) -> str:
        options = {key: getattr(self, key) for key in OPTIONS if getattr(self, key) is not None}
        return f"{self.scheme}:{self.location}" + (f"?{urlencode(options)}" if options else "")


# (spec, split, image_size) -> SplitArrays; image_size None is the cache's default (96)
SchemeReader = Callable[[SchemeSpec, str, "int | None"], "SplitArrays"]

SCHEMES: Registry[SchemeReader] = Registry(
    "data scheme", hint="Prefix a Hugging Face dataset with hf: and WebDataset shards with wds:."
)


def scheme_of(spec: str) -> str | None:
    """The scheme a spec starts with (``"hf"`` of ``"hf:/data/x"``), None for a name or a plain path.

    An existing file or folder whose name happens to contain a colon stays a path.
    """
    found = SCHEME_LIKE.match(spec)
    if found is None or Path(spec).expanduser().exists():
        return None
    return found.group(1)


def parse_scheme_spec(spec: str) -> SchemeSpec:
    """``"hf:/data/x?image=img"`` -> ``SchemeSpec("hf", "/data/x", image="img")``; bad options are a
    DataError."""
    scheme = scheme_of(spec)
    if scheme is None:
        raise DataError(f"'{spec}' is not a scheme spec (hf:PATH_OR_NAME or wds:PATTERN)")
    SCHEMES.get(scheme)  # an unknown scheme names the close ones
    location, _, query = spec[len(scheme) + 1 :].partition("?")
    if not location:
        raise DataError(f"'{spec}' names no {scheme} dataset: write {scheme}:PATH")
    try:
        options = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)))
    except ValueError:
        raise DataError(f"'{spec}': the part after '?' must be image=COLUMN&label=COLUMN") from None
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown or any(not value for value in options.values()):
        raise DataError(
            f"'{spec}': the part after '?' may name image=COLUMN and label=COLUMN only, each non-empty"
        )
    return SchemeSpec(scheme, location, options.get("image"), options.get("label"))


def with_columns(spec: str, image: str | None, label: str | None) -> str:
    """``spec`` with ``--image-column``/``--label-column`` folded in (flags over the spec's own ``?...``)."""
    if image is None and label is None:
        return spec
    if scheme_of(spec) is None:
        raise ConfigError(
            f"--image-column and --label-column choose columns of hf: or wds: data, not of '{spec}'"
        )
    parsed = parse_scheme_spec(spec)
    return str(
        SchemeSpec(
            parsed.scheme,
            parsed.location,
            image if image is not None else parsed.image,
            label if label is not None else parsed.label,
        )
    )
