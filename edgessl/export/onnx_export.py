"""A trained representation -> one self-describing ``.onnx`` file.

Exporter: ``torch.onnx.export(..., dynamo=True)`` (torch.export + onnxscript, with its
graph optimiser). On the study's backbones it gives the cleaner mobile graph: no
``Shape -> Gather -> Unsqueeze -> Concat`` chains for reshapes (ShuffleNetV2: 175 nodes
against 956 from the TorchScript exporter, MobileNetV2 101 against 210), no
``Identity``/``Constant`` nodes, opset 20. The batch axis is symbolic (``batch``); a
fixed-shape variant (NNAPI and CoreML want one) is the same graph with that symbol
pinned by ONNX Runtime's ``make_dim_param_fixed``, so both files hold identical weights.

One rewrite follows the export: global average pooling comes out of the exporter as
``ReduceMean`` over H and W, which CoreML's NeuralNetwork format has no kernel for (it
split every study encoder into two CoreML partitions); :func:`global_average_pools` turns
it into the equivalent ``GlobalAveragePool``, which NNAPI and both CoreML formats take.

Weights are always stored inside the file (no external-data side file): the study's
encoders are far below the 2 GB protobuf limit.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from edgessl.export.metadata import ExportError, ModelMetadata
from edgessl.files import atomic_output

INPUT_NAME = "images"
OUTPUT_NAME = "features"
BATCH_DIM = "batch"
T = TypeVar("T")


def export_proto(model: nn.Module, image_size: int) -> onnx.ModelProto:
    """The dynamo export of ``model`` (float [0, 1] RGB NCHW -> features) with a symbolic batch axis."""
    model = model.eval().cpu()
    example = torch.rand(2, 3, image_size, image_size)
    batch = torch.export.Dim(BATCH_DIM, min=1)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # exporter progress and deprecation chatter, not user news
        try:
            program = torch.onnx.export(
                model,
                (example,),
                dynamo=True,
                dynamic_shapes=({0: batch},),
                optimize=True,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                verbose=False,
            )
        except Exception as exc:
            raise ExportError(
                "torch.onnx.export failed for this encoder: "
                f"{(str(exc).splitlines() or [type(exc).__name__])[0][:300]}"
            ) from exc
    return global_average_pools(program.model_proto)


def global_average_pools(proto: onnx.ModelProto) -> onnx.ModelProto:
    """``proto`` with every ``ReduceMean`` over both spatial axes of a 4-D tensor (keepdims) as
    ``GlobalAveragePool``.

    Both compute the per-channel mean of an ``(N, C, H, W)`` tensor into ``(N, C, 1, 1)``;
    the export is verified against PyTorch after this rewrite like any other.
    """
    inferred = onnx.shape_inference.infer_shapes(proto)
    ranks = {
        v.name: len(v.type.tensor_type.shape.dim) for v in [*inferred.graph.value_info, *inferred.graph.input]
    }
    constants = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}

    def is_spatial_mean(node: onnx.NodeProto) -> bool:
        keepdims = next((a.i for a in node.attribute if a.name == "keepdims"), 1)
        axes = constants.get(node.input[1]) if len(node.input) > 1 else None
        return (
            node.op_type == "ReduceMean"
            and node.domain == ""
            and keepdims == 1
            and ranks.get(node.input[0]) == 4
            and axes is not None
            and sorted(int(a) % 4 for a in np.atleast_1d(axes)) == [2, 3]
        )

    nodes = [
        onnx.helper.make_node("GlobalAveragePool", [node.input[0]], list(node.output), name=node.name)
        if is_spatial_mean(node)
        else node
        for node in proto.graph.node
    ]
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(proto)
    del rewritten.graph.node[:]
    rewritten.graph.node.extend(nodes)
    used = {name for node in nodes for name in node.input}
    kept = [t for t in rewritten.graph.initializer if t.name in used]
    del rewritten.graph.initializer[:]
    rewritten.graph.initializer.extend(kept)
    return rewritten


def fix_batch(proto: onnx.ModelProto, batch_size: int) -> onnx.ModelProto:
    """A copy of ``proto`` whose batch axis is the constant ``batch_size`` (for NNAPI / CoreML)."""
    from onnxruntime.tools.onnx_model_utils import fix_output_shapes, make_dim_param_fixed

    if batch_size < 1:
        raise ExportError(f"--fixed-batch must be at least 1, got {batch_size}")
    fixed = onnx.ModelProto()
    fixed.CopyFrom(proto)
    make_dim_param_fixed(fixed.graph, BATCH_DIM, batch_size)
    fix_output_shapes(fixed)
    return fixed


def set_metadata(proto: onnx.ModelProto, metadata: ModelMetadata) -> None:
    """Replace the model's edgessl ``metadata_props`` and say what the file is in ``doc_string``."""
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, metadata.to_props())
    proto.producer_name, proto.producer_version = "edgessl", metadata.edgessl_version
    proto.doc_string = (
        f"{metadata.method} / {metadata.backbone} (epoch {metadata.epoch}), {metadata.precision}, "
        f"head {metadata.head}. "
        f"Input '{INPUT_NAME}': {metadata.input_description()}."
    )


def save_checked(proto: onnx.ModelProto, path: Path, check: Callable[[Path], T]) -> T:
    """Write ``proto`` (every weight inside the one file), run ``check`` on it, then publish it.

    The file appears under ``path`` only after ``check`` returned; if it raises, nothing
    is left behind.
    """
    with atomic_output(path) as tmp:
        onnx.save_model(proto, str(tmp), save_as_external_data=False)
        return check(tmp)


def metadata_of(loaded_metadata: dict, feature_dim: int) -> ModelMetadata:
    """:class:`ModelMetadata` from a checkpoint's metadata (``LoadedRepresentation.metadata``)."""
    from edgessl import __version__

    return ModelMetadata(
        image_size=int(loaded_metadata["image_size"]),
        mean=tuple(float(v) for v in loaded_metadata["mean"]),
        std=tuple(float(v) for v in loaded_metadata["std"]),
        backbone=str(loaded_metadata["backbone"]),
        method=str(loaded_metadata["method"]),
        epoch=int(loaded_metadata.get("epoch", 0)),
        feature_dim=int(feature_dim),
        edgessl_version=__version__,
        dataset=str(loaded_metadata.get("dataset", "")),
        checkpoint=str(loaded_metadata.get("checkpoint", "")),
    )


def encoder_proto(
    model: nn.Module, metadata: ModelMetadata, fixed_batch: int | None = None
) -> onnx.ModelProto:
    """The exported encoder with its metadata; ``fixed_batch`` pins the batch axis."""
    proto = export_proto(model, metadata.image_size)
    if fixed_batch is not None:
        proto = fix_batch(proto, fixed_batch)
    set_metadata(proto, metadata)
    return proto
