"""The cache's row file ``images.u8`` and what proves its rows intact: the format number and sampled
checksums.

Shared by the build, which writes rows and records checksums of a sample of them, and by
the opening, which recomputes those checksums before any row is read as an image.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass

import numpy as np

from edgessl.errors import DataError

CACHE_FORMAT = 1  # bump when the layout of a cache folder changes
SAMPLED_ROWS = 64  # rows whose checksum every load verifies


@dataclass(frozen=True)
class RowFile:
    """``images.u8`` read and written a block of rows at a time with ``pread``/``pwrite``.

    Building never maps the file: pages a process maps count towards its RSS, and a
    builder that mapped a 35 GB file would look (and, under memory pressure, act) 35 GB large.
    """

    descriptor: int
    row_shape: tuple[int, ...]

    @property
    def row_bytes(self) -> int:
        return int(np.prod(self.row_shape))

    def read(self, start: int, stop: int) -> np.ndarray:
        wanted = (stop - start) * self.row_bytes
        data = os.pread(self.descriptor, wanted, start * self.row_bytes)
        if len(data) != wanted:
            raise DataError(f"the image cache file ended early: read {len(data):,} of {wanted:,} bytes")
        return np.frombuffer(data, dtype=np.uint8).reshape(stop - start, *self.row_shape)

    def write(self, start: int, block: np.ndarray) -> None:
        view, offset = memoryview(np.ascontiguousarray(block)).cast("B"), start * self.row_bytes
        while view:  # pwrite may write less than asked
            written = os.pwrite(self.descriptor, view, offset)
            view, offset = view[written:], offset + written


def row_checksum(images: np.ndarray, row: int) -> int:
    return zlib.crc32(np.ascontiguousarray(images[row]).data)


def sampled_rows(count: int) -> list[int]:
    """Rows spread evenly over the file, first and last included (a truncation or a zeroed region shows)."""
    return sorted({int(row) for row in np.linspace(0, count - 1, min(count, SAMPLED_ROWS))})
