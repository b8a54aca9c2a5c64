"""Edge export: verified ONNX encoders (fp32 and int8, dynamic or fixed batch), camera input, ORT format,
in-graph heads, an accelerator report, ONNX-only evaluation.

Modules, each usable on its own:

- :mod:`~edgessl.export.metadata` -- what an exported file says about itself (torch-free)
- :mod:`~edgessl.export.onnx_export` -- encoder -> ``.onnx`` (dynamo exporter, weights inside)
- :mod:`~edgessl.export.verify` -- ``onnx.checker`` then ONNX Runtime against PyTorch on real images
- :mod:`~edgessl.export.quantize` -- static int8 (QDQ, per-channel) calibrated on real images
- :mod:`~edgessl.export.heads` -- linear and kNN heads appended to the encoder graph
- :mod:`~edgessl.export.inputs` -- camera-frame input (uint8 NHWC, crop/resize/normalise in the graph)
- :mod:`~edgessl.export.usability` -- ONNX Runtime's mobile usability checker (NNAPI, CoreML) per file
- :mod:`~edgessl.export.mobile` -- ORT format (Fixed / Runtime style) and the operator list of a reduced build
- :mod:`~edgessl.export.ort_eval` -- kNN / linear accuracy with onnxruntime + numpy only
- :mod:`~edgessl.export.pipeline` -- what ``edgessl export`` runs

``from edgessl.export import export_checkpoint, ExportOptions`` is the entry point; they are
imported on first use, so that importing ``edgessl.export.ort_eval`` stays torch-free.
"""

from typing import Any

_PIPELINE = ("ExportOptions", "ExportResult", "export_checkpoint", "export_weights")


def __getattr__(name: str) -> Any:
    if name in _PIPELINE:
        from edgessl.export import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = list(_PIPELINE)
