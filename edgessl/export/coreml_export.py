"""Core ML (``.mlpackage``, ML Program): fp16, and with ``--int8`` a copy with 8-bit linear weights.

``torch.export`` (decomposed to core ATen) -> ``coremltools.convert`` to an ML Program for
iOS 16 / macOS 13 and later, computed in fp16 (what the Neural Engine runs). The input is
named ``images``: a tensor (float32 RGB in [0, 1], NCHW), or with ``--input uint8-nhwc``
an *image* input (RGB, ``scale`` 1/255 inside the model, so an app passes a ``CVPixelBuffer``
as it is); the outputs are ``features``, or ``scores`` and ``label`` with a head. The
checkpoint's contract is in the model's user-defined metadata.

Core ML predicts only on macOS and iOS. On Linux what can be checked is: the conversion
itself (coremltools type-checks and validates the program as it builds it), the saved
package loaded back as a spec -- input and output names, types and shapes -- and its
operator list. The export table says "not run: needs macOS" instead of a number.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgessl.export.conversion import quiet
from edgessl.export.metadata import ExportError
from edgessl.export.onnx_export import INPUT_NAME
from edgessl.export.torch_formats import Converter, Program

NOT_RUN = "needs macOS"


def image_input(program: Program) -> bool:
    return program.metadata.input_format != "float-nchw"


def convert(program: Program, path: Path) -> None:
    import coremltools as ct
    import torch

    shape = tuple(program.example.shape)
    if image_input(program):
        inputs = [
            ct.ImageType(name=INPUT_NAME, shape=shape, scale=1 / 255.0, color_layout=ct.colorlayout.RGB)
        ]
    else:
        inputs = [ct.TensorType(name=INPUT_NAME, shape=shape, dtype=np.float32)]
    exported = torch.export.export(program.module, (program.example,)).run_decompositions({})
    with quiet():  # coremltools' progress bars
        model = ct.convert(
            exported,
            inputs=inputs,
            outputs=[ct.TensorType(name=name) for name in program.output_names],
            convert_to="mlprogram",
            compute_precision=ct.precision.FLOAT16,
            minimum_deployment_target=ct.target.iOS16,
        )
        if program.int8:
            config = ct.optimize.coreml.OptimizationConfig(
                global_config=ct.optimize.coreml.OpLinearQuantizerConfig(
                    mode="linear_symmetric", dtype="int8"
                )
            )
            model = ct.optimize.coreml.linear_quantize_weights(model, config=config)
    model.short_description = (
        f"edgessl {program.metadata.method} / {program.metadata.backbone} encoder, "
        f"epoch {program.metadata.epoch}"
    )
    model.user_defined_metadata.update(program.metadata.to_props())
    model.save(str(path))


def inspect(path: Path, program: Program) -> list[str]:
    """Load the saved package as a spec, check its inputs and outputs, and return its operator types."""
    import coremltools as ct

    spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
    description = spec.description
    (given,) = description.input
    expected_kind = "imageType" if image_input(program) else "multiArrayType"
    shape = list(program.example.shape)
    got_shape = (
        [shape[0], 3, given.type.imageType.height, given.type.imageType.width]
        if given.type.WhichOneof("Type") == "imageType"
        else list(given.type.multiArrayType.shape)
    )
    outputs = [output.name for output in description.output]
    problems = []
    if given.name != INPUT_NAME or given.type.WhichOneof("Type") != expected_kind:
        problems.append(
            f"input {given.name} ({given.type.WhichOneof('Type')}), expected {INPUT_NAME} ({expected_kind})"
        )
    if got_shape != shape:
        problems.append(f"input shape {got_shape}, expected {shape}")
    if outputs != program.output_names:
        problems.append(f"outputs {outputs}, expected {program.output_names}")
    if problems:
        raise ExportError(f"the Core ML package {path.name} is not what was asked: {'; '.join(problems)}")
    main = spec.mlProgram.functions["main"]
    return sorted({operation.type for operation in main.block_specializations[main.opset].operations})


CONVERTER = Converter(
    "coreml",
    convert,
    load=None,
    not_run=NOT_RUN,
    inspect=inspect,
    camera_channels_last=False,
)
