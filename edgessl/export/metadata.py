"""What an exported model says about itself, stored in the ONNX file's ``metadata_props``.

A device application (or :mod:`edgessl.export.ort_eval`) needs to know how to feed the
model without the checkpoint: input size, channel order, value range and the
normalisation (already inside the graph, recorded for the record), plus provenance.
Reading goes through ONNX Runtime's model metadata, so it needs neither torch nor onnx.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from edgessl.errors import EdgesslError

RGB = tuple[float, float, float]
PREFIX = "edgessl."  # every key we write starts with this, so other tools' keys never collide


class ExportError(EdgesslError):
    """An export that cannot be made or failed its verification."""


@dataclass(frozen=True)
class ModelMetadata:
    """The contract of an exported edgessl model.

    Input ``images``: float32 RGB in [0, 1], NCHW (``input_format`` "float-nchw", the
    default), or uint8 RGB frames, NHWC, of ``frame_size`` (``input_format`` "uint8-nhwc",
    see :mod:`edgessl.export.inputs`); ``preprocessing`` says what the graph does to them.
    """

    image_size: int
    mean: RGB
    std: RGB
    backbone: str
    method: str
    epoch: int
    feature_dim: int
    edgessl_version: str
    channel_order: str = "RGB"
    value_range: str = "[0, 1] float32; (x - mean) / std is applied inside the graph"
    layout: str = "NCHW"
    precision: str = "fp32"  # or "int8 (QDQ, per-channel)"
    head: str = "none"  # "none" (output: features), "linear" or "knn" (output: scores, label)
    class_names: tuple[str, ...] = field(default=())
    dataset: str = ""
    checkpoint: str = ""
    input_format: str = "float-nchw"  # or "uint8-nhwc" (camera frames)
    frame_size: tuple[int, ...] = field(default=())  # (H, W) of the frames a uint8-nhwc graph takes
    preprocessing: str = "(x - mean) / std"  # what the graph does to its input before the encoder

    def to_props(self) -> dict[str, str]:
        """Flat string -> string pairs, as ONNX ``metadata_props`` require (JSON for non-strings)."""
        return {
            PREFIX + key: value if isinstance(value, str) else json.dumps(value)
            for key, value in asdict(self).items()
        }

    @classmethod
    def from_props(cls, props: dict[str, str], source: str = "model") -> ModelMetadata:
        values: dict[str, Any] = {}
        for spec in fields(cls):
            raw = props.get(PREFIX + spec.name)
            if raw is None:
                continue
            values[spec.name] = raw if spec.type == "str" else json.loads(raw)
        required = [
            spec.name for spec in fields(cls) if spec.default is MISSING and spec.default_factory is MISSING
        ]
        missing = [name for name in required if name not in values]
        if missing:
            raise ExportError(
                f"{source} has no edgessl metadata ({', '.join(missing)} missing); "
                "export it with 'edgessl export'."
            )
        values["mean"], values["std"] = tuple(values["mean"]), tuple(values["std"])
        values["class_names"] = tuple(values.get("class_names", ()))
        values["frame_size"] = tuple(values.get("frame_size", ()))
        return cls(**values)

    def input_description(self) -> str:
        """What the ``images`` input takes, in one line (the export banner and the file's doc string)."""
        if self.input_format == "uint8-nhwc":
            height, width = self.frame_size
            return (
                f"uint8 {self.channel_order} frames, NHWC (N, {height}, {width}, 3); "
                f"in the graph: {self.preprocessing}"
            )
        return (
            f"float32 {self.channel_order} in [0, 1], NCHW (N, 3, {self.image_size}, {self.image_size}); "
            f"in the graph: {self.preprocessing}"
        )

    def replace(self, **changes: Any) -> ModelMetadata:
        return type(self)(**{**asdict(self), **changes})


def read_metadata(onnx_path: str | Path) -> ModelMetadata:
    """The edgessl metadata of an exported file, read with ONNX Runtime (no torch, no onnx)."""
    from edgessl.export.session import open_session

    session = open_session(onnx_path)
    return ModelMetadata.from_props(dict(session.get_modelmeta().custom_metadata_map), str(onnx_path))
