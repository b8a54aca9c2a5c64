"""One compressed image to uint8 pixels, the same way for every source (files, dataset rows, tar members).

EXIF-rotated, RGB, centre-cropped to a square and resized with PIL (bilinear,
antialiased). ``Image.draft`` lets libjpeg-turbo decode a large JPEG at a reduced scale
(1/2, 1/4, 1/8) no smaller than the target, which is most of the decode's cost for
photos far larger than the training size.
"""

from __future__ import annotations

from typing import BinaryIO

import numpy as np

DEFAULT_IMAGE_SIZE = 96  # what every decoded source is resized to unless told: STL-10's size

Decoded = np.ndarray | str  # a (3, size, size) uint8 image, or why the input could not be decoded


def decode_image(file: str | BinaryIO, size: int) -> np.ndarray:
    """One image (a path or an open binary file) as uint8 ``(3, size, size)``."""
    from PIL import Image, ImageOps

    with Image.open(file) as image:
        image.draft("RGB", (size, size))  # JPEG: decode at a reduced scale when much larger
        rgb = ImageOps.exif_transpose(image).convert("RGB")
        square = ImageOps.fit(rgb, (size, size), Image.Resampling.BILINEAR)
        return np.asarray(square, dtype=np.uint8).transpose(2, 0, 1)


def try_decode(file: str | BinaryIO, size: int, what: str) -> Decoded:
    """The decoded image, or ``"WHAT (why it could not be read)"``."""
    try:
        return decode_image(file, size)
    except Exception as exc:  # noqa: BLE001 - PIL's plugins raise many types for malformed files
        return f"{what} ({type(exc).__name__}: {exc})"
