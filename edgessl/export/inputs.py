"""What an exported graph takes: float32 NCHW in [0, 1] (the default) or camera frames, uint8 NHWC.

``--input uint8-nhwc`` (the layout name TFLite, ONNX Runtime's mobile samples and
Android's camera buffers use) prepends to a verified float graph the conversion every app
would otherwise write by hand, in standard ONNX operators that are all on NNAPI's and
CoreML's operator lists:

1. ``Slice``: centre crop to a square, only when the frame (``--frame-size HxW``) is not square;
2. ``Transpose`` NHWC -> NCHW, on the uint8 bytes (a quarter of the float traffic);
3. ``Cast`` to float32 and ``Div`` by 255: the very arithmetic of edgessl's float input, so
   without a resize the two graphs give the same features;
4. ``Resize`` (bilinear, ``half_pixel`` -- PyTorch's ``align_corners=False`` -- no antialias),
   only when the crop is not already the model's size. Its target is a constant ``sizes``
   of all four axes in a fixed-batch file, because NNAPI accepts a Resize only in that form
   (no ``axes`` attribute, no antialias); a dynamic-batch file, which no accelerator takes
   anyway, computes ``sizes`` from the batch's shape (``Shape`` + ``Concat``). The
   opset-18 form ``axes = [2, 3]`` would be shorter, but ONNX Runtime 1.32's full
   optimisation of a QDQ int8 graph drops the ``sizes`` of such a Resize and fails to load it.

Then the float graph continues unchanged: ``(x - mean) / std`` and the encoder.

Why not onnxruntime-extensions' pre/post-processing tools: their steps are built for one
image without a batch axis (``CenterCrop`` handles HWC only), their ``Resize`` keeps the
aspect ratio by computing the target size at run time (``Shape``/``Split``/``Concat`` --
dynamic shapes, which NNAPI refuses), and the package brings a 7 MB native custom-op
library that none of these steps needs. The five nodes above are plain ONNX built with
``onnx.helper``, as the in-graph heads are.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgessl.errors import ConfigError
from edgessl.export.metadata import ModelMetadata
from edgessl.export.onnx_export import INPUT_NAME
from edgessl.registry import Registry

FLOAT_NCHW, UINT8_NHWC = "float-nchw", "uint8-nhwc"
FLOAT_INPUT = "camera_float"  # the float NCHW [0, 1] tensor the wrapped graph used to take as its input


@dataclass(frozen=True)
class Frames:
    """What a camera-input graph takes: ``(height, width)`` uint8 RGB frames, for a model of
    ``image_size``."""

    height: int
    width: int
    image_size: int

    @property
    def crop(self) -> int:
        return min(self.height, self.width)

    def steps(self) -> str:
        """The in-graph preprocessing in words (recorded as the metadata's ``preprocessing``)."""
        steps = []
        if self.height != self.width:
            steps.append(f"centre crop {self.height}x{self.width} -> {self.crop}x{self.crop}")
        steps.append("NHWC -> NCHW, uint8 -> float32 / 255")
        if self.crop != self.image_size:
            steps.append(
                f"bilinear resize (half_pixel, no antialias) {self.crop}x{self.crop} -> "
                f"{self.image_size}x{self.image_size}"
            )
        steps.append("(x - mean) / std")
        return ", ".join(steps)

    @classmethod
    def of(cls, frame_size: tuple[int, int] | None, image_size: int) -> Frames:
        """The frames ``--frame-size`` names, square frames of the model's size by default."""
        return cls(*(frame_size or (image_size, image_size)), image_size)


def parse_frame_size(text: str) -> tuple[int, int]:
    """``"480x640"`` (height x width) -> ``(480, 640)``."""
    try:
        height, width = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise ConfigError(
            f"--frame-size must be HEIGHTxWIDTH in pixels, e.g. 480x640; got '{text}'"
        ) from None
    if min(height, width) < 1:
        raise ConfigError(f"--frame-size must be positive, got '{text}'")
    return height, width


def _batch_dim(proto: onnx.ModelProto) -> int | str:
    dim = proto.graph.input[0].type.tensor_type.shape.dim[0]
    return dim.dim_value if dim.HasField("dim_value") else dim.dim_param


def camera_input(proto: onnx.ModelProto, frames: Frames) -> onnx.ModelProto:
    """A copy of the float graph ``proto`` whose input ``images`` is uint8 ``(N, H, W, 3)`` RGB frames."""
    batch = _batch_dim(proto)
    crop, size = frames.crop, frames.image_size
    nodes: list[onnx.NodeProto] = []
    init: list[onnx.TensorProto] = []
    current = INPUT_NAME
    if frames.height != frames.width:
        top, left = (frames.height - crop) // 2, (frames.width - crop) // 2
        init += [
            numpy_helper.from_array(np.array([top, left], np.int64), "camera_crop_starts"),
            numpy_helper.from_array(np.array([top + crop, left + crop], np.int64), "camera_crop_ends"),
            numpy_helper.from_array(np.array([1, 2], np.int64), "camera_crop_axes"),
        ]
        nodes.append(
            helper.make_node(
                "Slice",
                [current, "camera_crop_starts", "camera_crop_ends", "camera_crop_axes"],
                ["camera_crop"],
            )
        )
        current = "camera_crop"
    init.append(numpy_helper.from_array(np.array(255.0, np.float32), "camera_255"))
    resized = crop != size
    nodes += [
        helper.make_node("Transpose", [current], ["camera_nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Cast", ["camera_nchw"], ["camera_float32"], to=TensorProto.FLOAT),
        helper.make_node(
            "Div", ["camera_float32", "camera_255"], ["camera_unit" if resized else FLOAT_INPUT]
        ),
    ]
    if resized:
        linear = {"mode": "linear", "coordinate_transformation_mode": "half_pixel"}
        if isinstance(batch, int):  # NNAPI's form: constant sizes of all four axes
            init.append(numpy_helper.from_array(np.array([batch, 3, size, size], np.int64), "camera_sizes"))
            nodes.append(
                helper.make_node("Resize", ["camera_unit", "", "", "camera_sizes"], [FLOAT_INPUT], **linear)
            )
        else:  # sizes = (N, 3) of the batch + (S, S)
            init.append(numpy_helper.from_array(np.array([size, size], np.int64), "camera_hw"))
            nodes += [
                helper.make_node("Shape", ["camera_unit"], ["camera_nc"], start=0, end=2),
                helper.make_node("Concat", ["camera_nc", "camera_hw"], ["camera_sizes"], axis=0),
                helper.make_node("Resize", ["camera_unit", "", "", "camera_sizes"], [FLOAT_INPUT], **linear),
            ]

    wrapped = onnx.ModelProto()
    wrapped.CopyFrom(proto)
    graph = wrapped.graph
    for node in graph.node:
        node.input[:] = [FLOAT_INPUT if name == INPUT_NAME else name for name in node.input]
    original = list(graph.node)
    del graph.node[:]
    graph.node.extend([*nodes, *original])
    graph.initializer.extend(init)
    del graph.input[:]
    graph.input.append(
        helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8, [batch, frames.height, frames.width, 3])
    )
    return wrapped


def camera_metadata(metadata: ModelMetadata, frames: Frames) -> ModelMetadata:
    """The metadata of a camera-input copy: what exactly it takes and what it does to it."""
    return metadata.replace(
        input_format=UINT8_NHWC,
        layout="NHWC",
        frame_size=(frames.height, frames.width),
        value_range="[0, 255] uint8; the graph converts, crops/resizes and normalises",
        preprocessing=frames.steps(),
    )


def reference_frames(images: np.ndarray, frames: Frames) -> tuple[np.ndarray, np.ndarray]:
    """``(frames uint8 (N, H, W, 3), what the float graph should see: float32 (N, 3, S, S) in [0, 1])``.

    Frames are real images scaled to the frame size (bilinear, by PyTorch); the second array
    is computed from them the obvious way -- numpy crop, PyTorch ``interpolate`` -- as an
    independent reference for the in-graph Slice / Resize.
    """
    import torch
    import torch.nn.functional as F

    source = torch.from_numpy(images).float()
    if (frames.height, frames.width) != images.shape[2:]:
        source = F.interpolate(
            source, size=(frames.height, frames.width), mode="bilinear", align_corners=False
        )
    frame_batch = source.round().clamp(0, 255).to(torch.uint8)
    top, left = (frames.height - frames.crop) // 2, (frames.width - frames.crop) // 2
    unit = frame_batch[:, :, top : top + frames.crop, left : left + frames.crop].float() / 255.0
    if frames.crop != frames.image_size:
        unit = F.interpolate(
            unit,
            size=(frames.image_size, frames.image_size),
            mode="bilinear",
            align_corners=False,
            antialias=False,
        )
    return frame_batch.permute(0, 2, 3, 1).contiguous().numpy(), unit.numpy()


# --input name -> (float graph, frames) -> graph taking that input; None keeps the float graph
INPUTS: Registry[Callable[[onnx.ModelProto, Frames], onnx.ModelProto] | None] = Registry("input format")
INPUTS.register(FLOAT_NCHW)(None)
INPUTS.register(UINT8_NHWC)(camera_input)
