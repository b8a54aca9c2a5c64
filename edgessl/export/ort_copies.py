"""``--ort``: every ONNX file of the export in ORT format (Runtime style for fixed-shape files, see
:mod:`edgessl.export.mobile`), each checked against the ``.onnx`` it came from, and the operator list
of a reduced build. A copy that does not reproduce its source removes every ``.ort`` file written."""

from __future__ import annotations

from typing import Any

import numpy as np

from edgessl.export.camera_copies import Probe
from edgessl.export.job import ExportJob
from edgessl.export.metadata import ExportError
from edgessl.export.mobile import convert_to_ort
from edgessl.export.ort_eval import model_input, open_session, run_batches, takes_frames
from edgessl.export.verify import compare

ORT_MIN_MEAN_COSINE = 0.99  # .ort (optimised for ARM) against the .onnx it came from
OPERATORS = "operators"  # the result's name of the reduced build's operator list


def probe_inputs(session: Any, verify: np.ndarray, probe: Probe | None) -> np.ndarray:
    """The verification images as ``session`` takes them (camera frames for a camera-input file)."""
    if takes_frames(session):
        return probe[0]
    return model_input(session, verify)


def publish_ort_copies(job: ExportJob, probe: Probe | None) -> None:
    """The ``.ort`` copy of every ONNX file the export wrote, and the operator list they need."""
    result = job.result
    roles = list(result.roles.values())
    onnx_files = [result.files[role.name] for role in roles]
    fixed = frozenset(result.files[role.name] for role in roles if role.fixed)
    report = convert_to_ort(
        onnx_files, job.out, config_name=f"{job.stem}.required_operators.config", runtime_style=fixed
    )
    for role, onnx_path, ort_path in zip(roles, onnx_files, report.ort_files, strict=True):
        source = open_session(onnx_path)
        inputs = probe_inputs(source, job.splits.verify, probe)
        parity = compare(run_batches(source, inputs), run_batches(open_session(ort_path), inputs))
        if not parity.mean_cosine >= ORT_MIN_MEAN_COSINE:
            for written in (*report.ort_files, report.config):
                written.unlink(missing_ok=True)
            raise ExportError(
                f"{ort_path.name} does not reproduce {onnx_path.name} ({parity.summary()}); "
                "no .ort file was kept"
            )
        ort_role = role.ort_copy()
        result.parity[ort_role.name] = parity
        result.record(ort_role, ort_path)
    result.files[OPERATORS] = report.config
    result.mobile = report
