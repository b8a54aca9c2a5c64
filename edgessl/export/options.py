"""The options of ``edgessl export``, checked when they are made: a bad option fails in one line before
any slow work (loading a checkpoint, reading images, exporting)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgessl.errors import ConfigError
from edgessl.export.formats import FORMATS, require_installed
from edgessl.export.heads import HEADS
from edgessl.export.inputs import FLOAT_NCHW, INPUTS

DEFAULT_OUT = Path("exported")


@dataclass(frozen=True)
class ExportOptions:
    """Options of ``edgessl export`` (see the CLI help for each)."""

    out_dir: Path = DEFAULT_OUT
    int8: bool = False
    ort: bool = False
    head: str = "none"  # one of edgessl.export.heads.HEADS
    fixed_batch: int | None = None
    input: str = FLOAT_NCHW  # one of edgessl.export.inputs.INPUTS
    frame_size: tuple[int, int] | None = (
        None  # (H, W) camera frames for --input uint8-nhwc (default: the model's size)
    )
    name: str | None = None  # file name stem (default METHOD_BACKBONE_eEPOCH)
    data: str | None = None  # default: the checkpoint's dataset
    data_root: str | None = None
    k: int = 200  # kNN head and the int8 kNN report
    verify_images: int = 64
    calibration_images: int = 256
    linear_epochs: int = 100
    formats: tuple[str, ...] = ("onnx",)  # edgessl.export.formats.FORMATS names

    def __post_init__(self) -> None:
        """Fail on bad options before any slow work (loading, exporting)."""
        for name in self.formats:
            FORMATS.get(name)
        if not self.formats:
            raise ConfigError("--format needs at least one format, e.g. --format onnx")
        if self.ort and "onnx" not in self.formats:
            raise ConfigError(
                "--ort converts the ONNX files to ORT format; add onnx to --format or drop --ort"
            )
        for name in self.formats:
            require_installed(name)
        HEADS.get(self.head)
        INPUTS.get(self.input)
        if self.fixed_batch is not None and self.fixed_batch < 1:
            raise ConfigError(f"--fixed-batch must be at least 1, got {self.fixed_batch}")
        if self.k < 1:
            raise ConfigError(f"--k must be at least 1, got {self.k}")
        if self.name is not None and not is_plain_file_stem(self.name):
            raise ConfigError(
                f"--name must be a plain file name stem (no folders, no leading dot), got '{self.name}': "
                "choose the folder with --out"
            )
        if self.frame_size is not None and self.input == FLOAT_NCHW:
            raise ConfigError(
                "--frame-size sets the camera frames of --input uint8-nhwc; add --input uint8-nhwc or drop it"
            )


def is_plain_file_stem(name: str) -> bool:
    """A name that stays a file in ``--out``: no separator, not ``.``/``..``, no hidden or control
    character."""
    return (
        bool(name)
        and "/" not in name
        and "\\" not in name
        and not name.startswith(".")
        and name.isprintable()
        and Path(name).name == name
    )
