"""Export on real CIFAR-10 images: parity, int8, ORT format, in-graph heads, torch-free evaluation, bad input.

One module-scoped export (SqueezeNet at 32x32, random init, with fixed batch, int8, kNN
head and ORT format) feeds most tests, so the whole file stays within ~2 minutes.
The encoder is randomly initialised (the methods land separately); the int8 bound
below is therefore stated for random-init features.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from edgessl.backbones import build_backbone
from edgessl.data.reading import read_split_arrays
from edgessl.errors import CheckpointError, DataError, EdgesslError, UnknownNameError
from edgessl.evaluation.knn import knn_predict as torch_knn_predict
from edgessl.export import verify
from edgessl.export.metadata import ExportError, read_metadata
from edgessl.export.options import ExportOptions
from edgessl.export.ort_eval import knn_predict, onnx_features, open_session
from edgessl.export.pipeline import export_checkpoint, export_representation
from edgessl.methods.base import Normalize, Representation

SIZE = 32
BACKBONE = "squeezenet"
K = 20
INT8_KNN_BOUND = 0.05  # |kNN(fp32) - kNN(int8)| on random-init features, 200 test images


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
    encoder = build_backbone(BACKBONE)
    return Representation(Normalize(train.mean, train.std), encoder, encoder.feature_dim).eval()


def checkpoint_metadata(spec: str, train) -> dict:
    return {
        "method": "random",
        "backbone": BACKBONE,
        "image_size": SIZE,
        "mean": train.mean,
        "std": train.std,
        "epoch": 3,
        "dataset": spec,
    }


@pytest.fixture(scope="module")
def exported(data, model, tmp_path_factory):
    spec, train, _ = data
    out = tmp_path_factory.mktemp("exported")
    options = ExportOptions(out_dir=out, int8=True, ort=True, head="knn", fixed_batch=4, k=K)
    return export_representation(model, checkpoint_metadata(spec, train), options)


def test_fp32_parity_on_real_images_and_dynamic_batch(exported, model, data):
    _, _, test = data
    session = open_session(exported.files["fp32"])
    for count in (1, 5, 64):  # one file serves every batch size
        images = test.images[:count]
        expected = verify.torch_features(model, images)
        got = onnx_features(session, images, batch_size=count)
        assert got.shape == (count, model.feature_dim)
        assert np.abs(got - expected).max() / np.abs(expected).max() < 1e-4
    assert exported.parity["fp32"].max_relative < 1e-4 and exported.parity["fp32"].min_cosine > 0.99999


def test_metadata_weights_inside_and_fixed_batch(exported, model, data):
    meta = read_metadata(exported.files["fp32"])
    assert (meta.image_size, meta.backbone, meta.method, meta.epoch, meta.feature_dim) == (
        SIZE,
        BACKBONE,
        "random",
        3,
        model.feature_dim,
    )
    assert meta.channel_order == "RGB" and (meta.mean, meta.std) == (data[1].mean, data[1].std)
    proto = onnx.load(str(exported.files["fp32"]), load_external_data=False)
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    fixed = ort.InferenceSession(str(exported.files["fixed"]), providers=["CPUExecutionProvider"])
    assert fixed.get_inputs()[0].shape == [4, 3, SIZE, SIZE] and fixed.get_outputs()[0].shape == [
        4,
        model.feature_dim,
    ]
    assert exported.parity["fixed"].max_relative < 1e-4
    out_dir = exported.files["fp32"].parent
    assert not [p for p in out_dir.iterdir() if p.name.startswith(".")], "temporary files left behind"


def test_int8_knn_accuracy_within_bound_and_smaller(exported):
    report = exported.int8
    assert abs(report.knn_drop) <= INT8_KNN_BOUND, report
    assert report.knn_fp32 > 0.15  # random-init SqueezeNet features are above chance (0.10) on CIFAR-10
    assert report.size_bytes["int8"] < 0.4 * report.size_bytes["fp32"]
    proto = onnx.load(str(exported.files["int8"]))
    ops = {node.op_type for node in proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert read_metadata(exported.files["int8"]).precision.startswith("int8")


def test_ort_format_loads_and_lists_operators(exported, data):
    _, _, test = data
    for role in ("fp32", "int8", "knn"):
        path = exported.files[f"{role}.ort"]
        assert path.suffix == ".ort" and path.read_bytes()[4:8] == b"ORTM"  # flatbuffer file identifier
        reference = onnx_features(open_session(exported.files[role]), test.images[:16])
        np.testing.assert_allclose(
            onnx_features(open_session(path), test.images[:16]),
            reference,
            rtol=0,
            atol=0.05 * np.abs(reference).max() + 1e-6,
        )
    operators = exported.mobile.operators
    flat = {op for ops in operators.values() for op in ops}
    # Conv+ReLU fuses to com.microsoft FusedConv
    assert {"TopK", "QuantizeLinear"} <= flat and {"Conv", "FusedConv"} & flat
    assert exported.mobile.config.read_text().count(";") >= 2 * len(operators)


def test_in_graph_knn_equals_python_knn_exactly(exported, model, data):
    _, train, test = data
    encoder = open_session(exported.files["fp32"])
    bank, queries = onnx_features(encoder, train.images), onnx_features(encoder, test.images)
    head = open_session(exported.files["knn"])
    in_graph = onnx_features(head, test.images, output="label")
    numpy_vote = knn_predict(bank, train.labels, queries, len(train.class_names), k=K)
    np.testing.assert_array_equal(in_graph, numpy_vote)
    torch_vote = torch_knn_predict(
        torch.from_numpy(bank),
        torch.from_numpy(train.labels),
        torch.from_numpy(queries),
        len(train.class_names),
        k=K,
    )
    np.testing.assert_array_equal(in_graph, torch_vote.numpy())
    scores = onnx_features(head, test.images, output="scores")
    np.testing.assert_allclose(scores.sum(1), 1.0, rtol=1e-6)
    assert read_metadata(exported.files["knn"]).class_names == train.class_names


def test_linear_head_matches_python_classifier(data, model, tmp_path):
    spec, train, test = data
    result = export_representation(
        model,
        checkpoint_metadata(spec, train),
        ExportOptions(out_dir=tmp_path, head="linear", linear_epochs=30),
    )
    assert result.agreement["linear"] == 1.0
    head = open_session(result.files["linear"])
    scores = onnx_features(head, test.images, output="scores")
    np.testing.assert_allclose(scores.sum(1), 1.0, rtol=1e-5)
    labels = onnx_features(head, test.images, output="label")
    np.testing.assert_array_equal(labels, scores.argmax(1))
    assert (labels == test.labels).mean() > 0.15  # measured 0.195; chance is 0.10 (sd 0.02 over 200 images)


TORCH_FREE = """
import json, sys
import numpy as np
from edgessl.export.ort_eval import evaluate_onnx
result = evaluate_onnx(sys.argv[1], sys.argv[2], protocols=("knn", "linear"), k={k})
np.save(sys.argv[3], result["predictions"]["knn"])
print(json.dumps({{"torch": "torch" in sys.modules, "knn": result["knn"]["accuracy"], "linear": result["linear"]["accuracy"]}}))
"""  # noqa: E501


def test_onnx_only_evaluation_imports_no_torch_and_matches_pytorch_knn(exported, model, data, tmp_path):
    spec, train, test = data
    predictions_file = tmp_path / "knn.npy"
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            TORCH_FREE.format(k=K),
            str(exported.files["fp32"]),
            spec,
            str(predictions_file),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["torch"] is False
    bank = verify.torch_features(model, train.images)
    queries = verify.torch_features(model, test.images)
    expected = torch_knn_predict(
        torch.from_numpy(bank),
        torch.from_numpy(train.labels),
        torch.from_numpy(queries),
        len(train.class_names),
        k=K,
    )
    np.testing.assert_array_equal(np.load(predictions_file), expected.numpy())
    assert report["knn"] == pytest.approx(float((expected.numpy() == test.labels).mean()))
    assert 0.1 < report["linear"] <= 1.0


def test_bad_checkpoints_are_one_line_errors(tmp_path):
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(foreign.read_bytes()[:40])
    for path in (foreign, truncated, tmp_path / "missing.pt"):
        with pytest.raises(CheckpointError) as error:
            export_checkpoint(path, ExportOptions(out_dir=tmp_path / "out"))
        assert "\n" not in str(error.value)
    assert not (tmp_path / "out").exists()
    with pytest.raises(UnknownNameError):
        export_checkpoint(foreign, ExportOptions(head="kmeans"))


def test_bad_models_and_images_are_one_line_errors(exported, data, tmp_path):
    _, _, test = data
    truncated = tmp_path / "model.onnx"
    truncated.write_bytes(exported.files["fp32"].read_bytes()[:5000])
    with pytest.raises(DataError) as error:
        open_session(truncated)
    assert "\n" not in str(error.value)
    session = open_session(exported.files["fp32"])
    for images in (
        test.images[:, :1],
        test.images[:, :, :16, :16],
        np.concatenate([test.images[:2]] * 2, axis=1),
    ):
        with pytest.raises(DataError) as error:
            onnx_features(session, images)
        assert "\n" not in str(error.value)


def test_failed_verification_leaves_nothing_behind(data, model, tmp_path, monkeypatch):
    spec, train, _ = data
    monkeypatch.setattr(verify, "FP32_RELATIVE_TOLERANCE", -1.0)  # no export can pass
    with pytest.raises(ExportError, match="failed verification"):
        export_representation(model, checkpoint_metadata(spec, train), ExportOptions(out_dir=tmp_path))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fault", [KeyboardInterrupt(), OSError(28, "No space left on device")])
def test_a_fault_after_the_first_file_leaves_no_folder_and_no_file(data, model, tmp_path, monkeypatch, fault):
    """D8 / Ctrl-C: the fp32 file is written, then quantisation fails; nothing of this export stays."""
    from edgessl.export import onnx_files

    def failing(*args, **kwargs):
        raise fault

    monkeypatch.setattr(onnx_files, "quantized", failing)
    spec, train, _ = data
    fresh = tmp_path / "new" / "exports"
    with pytest.raises(type(fault)):
        export_representation(
            model, checkpoint_metadata(spec, train), ExportOptions(out_dir=fresh, int8=True)
        )
    assert not (tmp_path / "new").exists()
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "earlier.onnx").write_bytes(b"an earlier export")
    with pytest.raises(type(fault)):
        export_representation(model, checkpoint_metadata(spec, train), ExportOptions(out_dir=kept, int8=True))
    assert [p.name for p in kept.iterdir()] == ["earlier.onnx"]


def test_foreign_graph_with_copied_metadata_and_unwritable_out_are_one_line(exported, data, model, tmp_path):
    from onnx import TensorProto, helper

    spec, train, test = data
    source = onnx.load(exported.files["fp32"])
    graph = helper.make_graph(
        [helper.make_node("Relu", ["pixels"], ["out"])],
        "foreign",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, [1, 5])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 5])],
    )
    foreign = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    for prop in source.metadata_props:  # edgessl's metadata, copied onto a graph that is not an encoder
        foreign.metadata_props.add(key=prop.key, value=prop.value)
    path = tmp_path / "foreign.onnx"
    onnx.save(foreign, path)
    assert read_metadata(path).image_size == read_metadata(exported.files["fp32"]).image_size
    with pytest.raises(DataError, match="is not an edgessl encoder") as error:
        onnx_features(open_session(path), test.images[:2])
    assert "\n" not in str(error.value)
    with pytest.raises(EdgesslError, match="cannot write to /proc/edgessl"):
        export_representation(
            model, checkpoint_metadata(spec, train), ExportOptions(out_dir=Path("/proc/edgessl"))
        )
