"""``--input uint8-nhwc``: a camera-input copy of each verified ONNX file, checked against the float file
it wraps on the same images -- features within the fp32 tolerance (a looser cosine for int8 files),
or a head's labels -- rather than against PyTorch, so the in-graph crop, layout and scaling are what
is tested (:mod:`edgessl.export.inputs`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from edgessl.export.heads import HEAD_AGREEMENT, LABEL
from edgessl.export.inputs import INPUTS, Frames, camera_metadata
from edgessl.export.job import ExportJob
from edgessl.export.metadata import ExportError, read_metadata
from edgessl.export.onnx_export import set_metadata
from edgessl.export.onnx_files import publish
from edgessl.export.ort_eval import open_session, run_batches
from edgessl.export.roles import FileRole
from edgessl.export.verify import (
    FP32_MIN_COSINE,
    FP32_RELATIVE_TOLERANCE,
    Parity,
    check_onnx,
    compare,
    require,
)

CAMERA_INT8_MIN_MEAN_COSINE = (
    0.999  # int8 camera copy vs its float-input twin (a resize may move a value across a quantum)
)

# camera frames uint8 (N, H, W, 3), their float twin (N, 3, S, S) in [0, 1]
Probe = tuple[np.ndarray, np.ndarray]


def publish_camera_copy(job: ExportJob, role: FileRole, frames: Frames, probe: Probe) -> None:
    """A camera-input copy of the file of ``role``, equal to it on the same images (features, or a head's
    labels)."""
    float_file, input_format = job.result.files[role.name], job.options.input
    frame_batch, unit = probe
    output = LABEL if role.head else None
    expected = run_batches(open_session(float_file), unit, output=output)
    graph = INPUTS.get(input_format)(onnx.load(str(float_file)), frames)
    set_metadata(graph, camera_metadata(read_metadata(float_file), frames))
    camera_role = role.camera_copy()
    what = f"camera-input ({input_format}) copy of {float_file.name}"

    def check(tmp: Path) -> Parity | float:
        check_onnx(tmp)
        got = run_batches(open_session(tmp), frame_batch, output=output)
        if role.head:
            agreement = float((got == expected).mean())
            if agreement < HEAD_AGREEMENT:
                raise ExportError(
                    f"{what} gives the float file's label on only {agreement:.1%} of images; "
                    "nothing was written"
                )
            return agreement
        if role.int8:
            return require(compare(expected, got), what, min_mean_cosine=CAMERA_INT8_MIN_MEAN_COSINE)
        return require(compare(expected, got), what, FP32_RELATIVE_TOLERANCE, FP32_MIN_COSINE)

    checked = publish(job, graph, camera_role, check)
    if role.head:
        job.result.agreement[camera_role.name] = checked
    else:
        job.result.parity[camera_role.name] = checked
