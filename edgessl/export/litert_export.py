"""LiteRT (``.tflite``): ``litert-torch`` converts the PyTorch program; ``ai-edge-litert`` runs it.

fp32 is ``litert_torch.convert`` of the program traced at its fixed batch. ``--int8`` is
full-integer int8 by Google's LiteRT quantizer (``ai-edge-quantizer``, recipe
``static_wi8_ai8``): the fp32 file is calibrated on training images -- as the ONNX int8
is -- and rewritten with int8 weights (per-channel) and int8 activations, int8 input and
output included, as NPU delegates and full-integer apps expect. Its input scale and zero
point are in the file (``Interpreter.getInputTensor(0).quantizationParams()``); the runner
here quantizes the float batch with them and dequantizes the features, as an app does.

PyTorch's own PT2E route (``prepare_pt2e`` / ``convert_pt2e`` then ``litert_torch.convert``)
was measured and not used: litert-torch 0.10 keeps its weights in fp32 behind
quantize/dequantize pairs, so the file was no smaller and 4x slower than fp32 (SqueezeNet,
64 px, batch 32: 68 ms against 16.5 ms), where the quantizer's file is 3.5x smaller.

Verification and latency run the written bytes in LiteRT's interpreter at one thread with
its default XNNPACK delegate (what an Android app gets from ``Interpreter`` on CPU).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from torch import nn

from edgessl.export.conversion import quiet
from edgessl.export.deploy import padded
from edgessl.export.heads import LABEL, SCORES
from edgessl.export.onnx_export import INPUT_NAME, OUTPUT_NAME
from edgessl.export.torch_formats import Converter, Outputs, Program, Runner

SIGNATURE = "serving_default"


def convert(program: Program, path: Path) -> None:
    named = NamedOutputs(program.module, program.output_names)
    os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")
    with quiet():  # its import logs too (torchao's registration warning)
        import litert_torch

        model = litert_torch.convert(named, sample_kwargs={INPUT_NAME: program.example})
        if not program.int8:
            model.export(str(path))
            return
        quantize(model.model_content(), program, path)


class NamedOutputs(nn.Module):
    """The program with its outputs in a dict: LiteRT's signature then names them as ONNX and Core ML do.

    ``litert_torch`` names a signature's inputs after the keyword arguments it was traced
    with and its outputs after a returned dict's keys (``output_0``, ... otherwise), so an
    app calls ``runSignature(mapOf("images" to frame), mapOf("features" to out))``.
    """

    def __init__(self, module: nn.Module, names: list[str]) -> None:
        super().__init__()
        self.module = module
        self.names = names

    def forward(self, images):
        got = self.module(images)
        return dict(zip(self.names, got if isinstance(got, tuple) else (got,), strict=True))


def quantize(float_model: bytes, program: Program, path: Path) -> None:
    """Full-integer int8 of ``float_model``, calibrated on ``program.calibration`` at the program's batch."""
    from ai_edge_quantizer import quantizer, recipe

    calibration = program.calibration if program.calibration is not None else program.inputs
    (input_name,) = signature_of(float_model)["inputs"]
    samples = [
        {input_name: padded(calibration[start : start + program.batch], program.batch)}
        for start in range(0, len(calibration), program.batch)
    ]
    tool = quantizer.Quantizer(float_model)
    tool.load_quantization_recipe(recipe.static_wi8_ai8())
    calibrated = tool.calibrate({SIGNATURE: samples}, num_threads=1)
    result = tool.quantize(calibrated, enable_progress_bar=False, enable_progress_report=False)
    path.write_bytes(bytes(result.quantized_model))


def signature_of(model: bytes) -> dict:
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_content=model).get_signature_list()[SIGNATURE]


def load(path: Path) -> Runner:
    """The written file in LiteRT's interpreter (XNNPACK delegate), one thread."""
    from ai_edge_litert.interpreter import Interpreter

    with quiet():  # "Created TensorFlow Lite XNNPACK delegate for CPU."
        interpreter = Interpreter(model_path=str(path), num_threads=1)
        interpreter.allocate_tensors()
    runner = interpreter.get_signature_runner(SIGNATURE)
    ((input_name, given),) = runner.get_input_details().items()
    outputs = runner.get_output_details()
    names = [name for name in (OUTPUT_NAME, SCORES, LABEL) if name in outputs]  # the module's order

    def run(batch: np.ndarray) -> Outputs:
        got = runner(**{input_name: to_input(batch, given)})
        return tuple(from_output(np.array(got[name]), outputs[name]) for name in names)

    return run


def to_input(batch: np.ndarray, detail: dict) -> np.ndarray:
    """``batch`` as the file's input tensor takes it: as it is, or quantized with the file's scale."""
    if not np.issubdtype(detail["dtype"], np.integer) or batch.dtype == detail["dtype"]:
        return batch.astype(detail["dtype"], copy=False)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(detail["dtype"])
    return np.clip(np.round(batch / scale) + zero_point, info.min, info.max).astype(detail["dtype"])


def from_output(values: np.ndarray, detail: dict) -> np.ndarray:
    """An output as float when the file quantized it (int8 features); labels and floats as they are."""
    scale, zero_point = detail["quantization"]
    if np.issubdtype(values.dtype, np.integer) and scale:
        return (values.astype(np.float32) - zero_point) * scale
    return values


CONVERTER = Converter("litert", convert, load)
