"""The mobile kit on real CIFAR-10 images: fixed-shape int8, the accelerator report, camera input, ORT styles.

One module-scoped export (ShuffleNetV2 x0.5 at 32x32, random init; fixed batch 1, int8,
linear head, uint8-nhwc camera copies for 40x48 frames, ORT format) feeds every test.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F

from edgessl.backbones import build_backbone
from edgessl.cli import main
from edgessl.data.reading import read_split_arrays
from edgessl.export import verify
from edgessl.export.metadata import read_metadata
from edgessl.export.options import ExportOptions
from edgessl.export.ort_eval import onnx_features, open_session, run_batches
from edgessl.export.pipeline import export_representation
from edgessl.export.usability import check_usability, recorded_report
from edgessl.methods.base import Normalize, Representation

SIZE, BATCH, FRAME = 32, 1, (40, 48)
ACCELERATORS = ("NNAPI", "CoreML MLProgram", "CoreML NeuralNetwork")


@pytest.fixture(scope="module")
def data(cifar10_small: Path):
    spec = str(cifar10_small)
    return (
        spec,
        read_split_arrays(spec, "train", image_size=SIZE),
        read_split_arrays(spec, "test", image_size=SIZE),
    )


@pytest.fixture(scope="module")
def model(data) -> Representation:
    _, train, _ = data
    torch.manual_seed(0)
    encoder = build_backbone("shufflenetv2")
    return Representation(Normalize(train.mean, train.std), encoder, encoder.feature_dim).eval()


@pytest.fixture(scope="module")
def exported(data, model, tmp_path_factory):
    spec, train, _ = data
    metadata = {
        "method": "random",
        "backbone": "shufflenetv2",
        "image_size": SIZE,
        "mean": train.mean,
        "std": train.std,
        "epoch": 1,
        "dataset": spec,
    }
    options = ExportOptions(
        out_dir=tmp_path_factory.mktemp("mobile"),
        int8=True,
        ort=True,
        head="linear",
        fixed_batch=BATCH,
        input="uint8-nhwc",
        frame_size=FRAME,
        k=20,
        verify_images=24,
        calibration_images=64,
        linear_epochs=20,
    )
    return export_representation(model, metadata, options)


def test_fixed_int8_is_the_dynamic_int8_pinned_and_verified_against_pytorch(exported, model, data):
    _, _, test = data
    fixed, dynamic = open_session(exported.files["fixed.int8"]), open_session(exported.files["int8"])
    assert (
        fixed.get_inputs()[0].shape == [BATCH, 3, SIZE, SIZE] and dynamic.get_inputs()[0].shape[0] == "batch"
    )
    images = test.images[:20]
    got = onnx_features(fixed, images)
    np.testing.assert_allclose(got, onnx_features(dynamic, images), rtol=0, atol=1e-5 * np.abs(got).max())
    parity = verify.compare(verify.torch_features(model, images), got)
    assert parity.mean_cosine >= verify.INT8_MIN_MEAN_COSINE
    assert exported.parity["fixed.int8"].mean_cosine >= verify.INT8_MIN_MEAN_COSINE
    assert {"QuantizeLinear", "DequantizeLinear"} <= {
        n.op_type for n in onnx.load(str(exported.files["fixed.int8"])).graph.node
    }


def test_global_pooling_is_a_global_average_pool(exported):
    ops = [node.op_type for node in onnx.load(str(exported.files["fp32"])).graph.node]
    assert "ReduceMean" not in ops and ops.count("GlobalAveragePool") == 1


def test_fixed_fp32_runs_whole_on_every_accelerator_and_dynamic_on_none(exported):
    fixed, dynamic = exported.usability["fixed"], exported.usability["fp32"]
    for name in ACCELERATORS:
        entry = fixed.get(name)
        assert (entry.supported_nodes, entry.partitions, entry.suitability) == (entry.nodes, 1, "YES"), (
            entry.verdict()
        )
        refused = dynamic.get(name)
        assert refused.supported_nodes == 0 and refused.dynamic_shape_nodes == refused.nodes
    int8 = exported.usability["fixed.int8"]
    assert int8.get("NNAPI").node_share == 1.0
    coreml = int8.get("CoreML MLProgram")  # ORT's CoreML EP has no QDQ kernels: the int8 graph falls apart
    assert {"ai.onnx:QuantizeLinear", "ai.onnx:DequantizeLinear"} <= set(
        coreml.unsupported_ops
    ) and coreml.partitions > 10


def test_report_in_metadata_equals_onnxruntime_checker_command(exported):
    path = exported.files["fixed.int8"]
    stored = recorded_report(path)
    assert stored == exported.usability["fixed.int8"]
    assert check_usability(path).providers == stored.providers
    completed = subprocess.run(
        [sys.executable, "-m", "onnxruntime.tools.check_onnx_model_mobile_usability", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    logged = re.findall(
        r"(\d+) partitions with a total of (\d+)/(\d+) nodes can be handled by the (.+) EP",
        completed.stdout + completed.stderr,
    )
    assert len(logged) == 3
    for partitions, supported, nodes, provider in logged:
        entry = stored.get(provider)
        assert (entry.partitions, entry.supported_nodes, entry.nodes) == (
            int(partitions),
            int(supported),
            int(nodes),
        )


def test_camera_copy_gives_the_float_graphs_features_on_the_same_frames(exported, data):
    spec, _, _ = data
    height, width = FRAME
    # real 40x48 frames
    frames = read_split_arrays(spec, "test", image_size=width).images[:10, :, (width - height) // 2 :][
        :, :, :height
    ]
    left = (width - height) // 2
    # the centre crop, done here by hand
    square = torch.from_numpy(frames[:, :, :, left : left + height]).float() / 255.0
    unit = F.interpolate(square, size=(SIZE, SIZE), mode="bilinear", align_corners=False).numpy()
    nhwc = np.ascontiguousarray(frames.transpose(0, 2, 3, 1))
    for role in ("fixed", "fixed.int8", "fp32"):
        camera = open_session(exported.files[f"{role}.uint8"])
        assert camera.get_inputs()[0].type == "tensor(uint8)"
        parity = verify.compare(
            run_batches(open_session(exported.files[role]), unit), run_batches(camera, nhwc)
        )
        assert parity.max_relative < 1e-4 and parity.min_cosine > 0.9999, (role, parity)
    labels = run_batches(open_session(exported.files["fixed.linear.uint8"]), nhwc, output="label")
    np.testing.assert_array_equal(
        labels, run_batches(open_session(exported.files["fixed.linear"]), unit, output="label")
    )


def test_camera_metadata_says_what_it_takes(exported):
    session = open_session(exported.files["fixed.uint8"])
    assert session.get_inputs()[0].shape == [BATCH, *FRAME, 3]
    meta = read_metadata(exported.files["fixed.uint8"])
    assert (meta.input_format, meta.layout, meta.frame_size, meta.channel_order) == (
        "uint8-nhwc",
        "NHWC",
        FRAME,
        "RGB",
    )
    assert (
        meta.preprocessing.startswith("centre crop 40x48 -> 40x40") and "40x40 -> 32x32" in meta.preprocessing
    )
    assert read_metadata(exported.files["fixed"]).input_format == "float-nchw"
    assert exported.usability["fixed.uint8"].get("NNAPI").node_share > 0.95


def test_fixed_shape_files_get_runtime_style_ort_and_one_operator_config(exported, data):
    styles = {path.name: style for path, style in exported.mobile.styles.items()}
    assert (
        styles[exported.files["fixed.int8.ort"].name] == "Runtime"
        and styles[exported.files["int8.ort"].name] == "Fixed"
    )
    ops = {op for names in exported.mobile.operators.values() for op in names}
    # Runtime (QDQ kept) and Fixed (fused) files
    assert {"GlobalAveragePool", "Resize", "Cast", "QuantizeLinear", "QLinearConv"} <= ops
    session = open_session(exported.files["fixed.uint8.ort"])
    assert session.get_inputs()[0].type == "tensor(uint8)"
    assert not [p for p in exported.files["fp32"].parent.iterdir() if p.name.startswith(".")], (
        "temporary files left behind"
    )


def test_report_command_prints_each_provider_and_rejects_ort(exported, capsys):
    assert main(["export", "--report", str(exported.files["fixed"])]) == 0
    printed = capsys.readouterr().out
    assert printed.count("the whole graph runs on") == 3 and "XNNPACK" in printed
    assert main(["export", "--report", str(exported.files["fixed.ort"])]) == 1
    err = capsys.readouterr().err.strip()
    assert "ORT format" in err and len(err.splitlines()) == 1
    assert main(["export", "--frame-size", "40x48", "--report", str(exported.files["fixed"]), "x.pt"]) == 2
