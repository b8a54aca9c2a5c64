"""Edge export: verified ONNX encoders (fp32 and int8, dynamic or fixed batch), camera input, ORT format,
in-graph heads, an accelerator report, ONNX-only evaluation.

Modules, each usable on its own:

- :mod:`~edgessl.export.metadata` -- what an exported file says about itself (torch-free)
- :mod:`~edgessl.export.options` -- ``ExportOptions``, checked when made
- :mod:`~edgessl.export.roles` -- ``FileRole``: what each exported file is, its role name and file name
- :mod:`~edgessl.export.onnx_export` -- encoder -> ``.onnx`` (dynamo exporter, weights inside)
- :mod:`~edgessl.export.verify` -- ``onnx.checker`` then ONNX Runtime against PyTorch on real images
- :mod:`~edgessl.export.quantize` -- static int8 (QDQ, per-channel) calibrated on real images
- :mod:`~edgessl.export.int8_report` -- int8 against fp32: kNN accuracy and latency of the files
- :mod:`~edgessl.export.heads` -- linear and kNN heads fitted on features, appended to the encoder graph
- :mod:`~edgessl.export.inputs` -- camera-frame input (uint8 NHWC, crop/resize/normalise in the graph)
- :mod:`~edgessl.export.usability` -- ONNX Runtime's mobile usability checker (NNAPI, CoreML) per file
- :mod:`~edgessl.export.mobile` -- ORT format (Fixed / Runtime style) and the operator list of a reduced build
- :mod:`~edgessl.export.ort_eval` -- kNN / linear accuracy with onnxruntime + numpy only
- :mod:`~edgessl.export.onnx_files` -- the verified ONNX files of an export (fp32, int8, heads, fixed batch)
- :mod:`~edgessl.export.camera_copies` / :mod:`~edgessl.export.ort_copies` -- their camera-input and
  ORT-format copies, each checked against the file it came from
- :mod:`~edgessl.export.pipeline` -- what ``edgessl export`` runs, step by step

``from edgessl.export import export_checkpoint, ExportOptions`` is the entry point; they are
imported on first use, so that importing ``edgessl.export.ort_eval`` stays torch-free.
"""

from importlib import import_module
from typing import Any

_ENTRY_POINTS = {
    "ExportOptions": "options",
    "ExportResult": "result",
    "export_checkpoint": "pipeline",
    "export_weights": "pipeline",
}


def __getattr__(name: str) -> Any:
    if name in _ENTRY_POINTS:
        return getattr(import_module(f"edgessl.export.{_ENTRY_POINTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = list(_ENTRY_POINTS)
