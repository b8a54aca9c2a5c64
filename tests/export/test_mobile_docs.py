"""docs/MOBILE.md's Kotlin and Swift snippets name the inputs, outputs and shapes of a real export.

The snippets' constants are parsed from the page and checked against the files of the
export the page's commands make: the ONNX Runtime snippets (sections 4-5) against the
``.ort`` files of ``--fixed-batch 1 --input uint8-nhwc --frame-size 480x640 --head linear
--ort``, opened with ONNX Runtime as the apps open them; the LiteRT snippet (section 7)
against the ``.tflite`` signature in LiteRT's interpreter, and the Core ML snippet (section
8) against the ``.mlpackage`` spec, of ``--format litert,coreml`` with the same options.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from edgessl.backbones import build_backbone
from edgessl.data.reading import read_split_arrays
from edgessl.errors import ConfigError
from edgessl.export.formats import parse_formats, require_installed
from edgessl.export.options import ExportOptions
from edgessl.export.ort_eval import run_batches
from edgessl.export.pipeline import export_representation
from edgessl.methods.base import Normalize, Representation

PAGE = Path(__file__).resolve().parents[2] / "docs" / "MOBILE.md"
SIZE = 32


def section(number: int) -> str:
    """The text of the page's section ``## NUMBER.``, up to the next section."""
    found = re.search(rf"^## {number}\. .*?(?=^## |\Z)", PAGE.read_text(), flags=re.DOTALL | re.MULTILINE)
    assert found, f"no section {number} in {PAGE}"
    return found.group(0)


def code_blocks(language: str, number: int) -> str:
    blocks = re.findall(rf"```{language}\n(.*?)```", section(number), flags=re.DOTALL)
    assert blocks, f"no {language} snippet in section {number} of {PAGE}"
    return "\n".join(blocks)


def kotlin_contract() -> tuple[dict[str, str], list[int]]:
    code = code_blocks("kotlin", 4)
    names = dict(re.findall(r'const val (\w+) = "(\w+)"', code))
    shape = [int(v) for v in re.search(r"val FRAME_SHAPE = longArrayOf\(([^)]*)\)", code).group(1).split(",")]
    return {
        "input": names["INPUT"],
        "features": names["FEATURES"],
        "scores": names["SCORES"],
        "label": names["LABEL"],
    }, shape


def swift_contract() -> tuple[dict[str, str], list[int]]:
    code = code_blocks("swift", 5)
    names = dict(re.findall(r'let (\w+) = "(\w+)"', code))
    shape = [
        int(v) for v in re.search(r"let frameShape: \[NSNumber\] = \[([^\]]*)\]", code).group(1).split(",")
    ]
    return {
        "input": names["inputName"],
        "features": names["featuresName"],
        "scores": names["scoresName"],
        "label": names["labelName"],
    }, shape


def page_command_options(number: int = 1) -> dict[str, str]:
    command = re.search(r"```bash\nedgessl export RUN (.*?)\n```", section(number)).group(1)
    return dict(re.findall(r"--([\w-]+) ([^-\s]\S*)", command)) | {
        flag: "" for flag in re.findall(r"--([\w-]+)(?= --|$)", command)
    }


def export_as_the_page_says(number: int, spec: str, out: Path):
    """What section ``number``'s ``edgessl export`` command writes, for a random-init ShuffleNetV2."""
    flags = page_command_options(number)
    assert {"fixed-batch", "input", "frame-size", "head"} <= set(flags), flags
    train = read_split_arrays(spec, "train", image_size=SIZE)
    torch.manual_seed(0)
    encoder = build_backbone("shufflenetv2")
    model = Representation(Normalize(train.mean, train.std), encoder, encoder.feature_dim).eval()
    height, width = (int(v) for v in flags["frame-size"].split("x"))
    options = ExportOptions(
        out_dir=out,
        formats=parse_formats(flags.get("format", "onnx")),
        ort="ort" in flags,
        head=flags["head"],
        fixed_batch=int(flags["fixed-batch"]),
        input=flags["input"],
        frame_size=(height, width),
        verify_images=6,
        linear_epochs=10,
    )
    metadata = {
        "method": "random",
        "backbone": "shufflenetv2",
        "image_size": SIZE,
        "mean": train.mean,
        "std": train.std,
        "epoch": 1,
        "dataset": spec,
    }
    return export_representation(model, metadata, options)


@pytest.fixture(scope="module")
def exported(cifar10_small: Path, tmp_path_factory):
    assert "ort" in page_command_options(1)
    return export_as_the_page_says(1, str(cifar10_small), tmp_path_factory.mktemp("docs"))


@pytest.mark.parametrize("contract", [kotlin_contract, swift_contract], ids=["kotlin", "swift"])
def test_snippet_names_and_shapes_match_the_exported_ort_files(contract, exported):
    names, frame_shape = contract()
    head = ort.InferenceSession(
        str(exported.files["fixed.linear.uint8.ort"]), providers=["CPUExecutionProvider"]
    )
    (frame,) = head.get_inputs()
    assert (frame.name, frame.shape, frame.type) == (names["input"], frame_shape, "tensor(uint8)")
    outputs = {o.name: o for o in head.get_outputs()}
    assert set(outputs) == {names["scores"], names["label"]}
    assert (
        outputs[names["label"]].shape == [frame_shape[0]] and outputs[names["label"]].type == "tensor(int64)"
    )
    assert (
        outputs[names["scores"]].shape == [frame_shape[0], 10]
        and outputs[names["scores"]].type == "tensor(float)"
    )
    encoder = ort.InferenceSession(str(exported.files["fixed.uint8.ort"]), providers=["CPUExecutionProvider"])
    assert [o.name for o in encoder.get_outputs()] == [names["features"]]
    assert encoder.get_outputs()[0].shape == [frame_shape[0], exported.metadata.feature_dim]
    assert encoder.get_inputs()[0].shape == frame_shape


def test_ort_file_carries_class_names_and_runs_with_saved_runtime_optimisations(
    exported, cifar10_small: Path
):
    path = exported.files["fixed.linear.uint8.ort"]
    plain = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    # what the Kotlin snippet reads
    names = json.loads(plain.get_modelmeta().custom_metadata_map["edgessl.class_names"])
    assert len(names) == 10 and names == sorted(names)
    options = ort.SessionOptions()
    # as both snippets set it
    options.add_session_config_entry("session.enable_saved_runtime_optimizations", "1")
    replayed = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    _, height, width, _ = plain.get_inputs()[0].shape
    images = torch.from_numpy(
        read_split_arrays(str(cifar10_small), "test", image_size=SIZE).images[:4]
    ).float()
    # real images, camera-sized
    frames = (
        torch.nn.functional.interpolate(images, size=(height, width), mode="bilinear").round().to(torch.uint8)
    )
    nhwc = np.ascontiguousarray(frames.permute(0, 2, 3, 1).numpy())
    np.testing.assert_array_equal(
        run_batches(replayed, nhwc, output="label"), run_batches(plain, nhwc, output="label")
    )
    np.testing.assert_allclose(
        run_batches(replayed, nhwc, output="scores"), run_batches(plain, nhwc, output="scores"), atol=1e-5
    )


@pytest.fixture(scope="module")
def exported_for_platform_runtimes(cifar10_small: Path, tmp_path_factory):
    flags = page_command_options(7)
    assert parse_formats(flags["format"]) == ("litert", "coreml"), flags
    for name in ("litert", "coreml"):
        try:
            require_installed(name)
        except ConfigError as missing:
            pytest.skip(str(missing))
    return export_as_the_page_says(7, str(cifar10_small), tmp_path_factory.mktemp("platform"))


def test_litert_snippet_names_the_signature_tensors_of_the_exported_tflite_files(
    exported_for_platform_runtimes,
):
    from ai_edge_litert.interpreter import Interpreter

    code = code_blocks("kotlin", 7)
    names = dict(re.findall(r'const val (\w+) = "(\w+)"', code))
    frame_shape = [
        int(v) for v in re.search(r"val FRAME_SHAPE = intArrayOf\(([^)]*)\)", code).group(1).split(",")
    ]
    files = exported_for_platform_runtimes.formats["litert"].files
    contract = json.loads(Path(f"{files['litert.linear.uint8']}.json").read_text())
    classes = len(contract["class_names"])  # what the snippet reads as classNames
    assert classes == 10

    def signature(role: str) -> tuple[dict, dict]:
        interpreter = Interpreter(model_path=str(files[role]))
        runner = interpreter.get_signature_runner(names["SIGNATURE"])
        return runner.get_input_details(), runner.get_output_details()

    inputs, outputs = signature("litert.linear.uint8")
    assert list(inputs) == [names["INPUT"]]
    assert (list(inputs[names["INPUT"]]["shape"]), inputs[names["INPUT"]]["dtype"]) == (frame_shape, np.uint8)
    assert set(outputs) == {names["SCORES"], names["LABEL"]}
    scores, label = outputs[names["SCORES"]], outputs[names["LABEL"]]
    assert (list(scores["shape"]), scores["dtype"]) == ([1, classes], np.float32)
    assert (list(label["shape"]), label["dtype"]) == ([1], np.int32)  # the snippet's IntArray(1)
    inputs, outputs = signature("litert.uint8")
    assert list(inputs) == [names["INPUT"]] and list(outputs) == [names["FEATURES"]]
    assert list(outputs[names["FEATURES"]]["shape"]) == [
        1,
        exported_for_platform_runtimes.metadata.feature_dim,
    ]


def test_coreml_snippet_names_the_image_input_and_outputs_of_the_exported_package(
    exported_for_platform_runtimes,
):
    import coremltools as ct

    code = code_blocks("swift", 8)
    names = dict(re.findall(r'let (\w+) = "(\w+)"', code))
    width, height = (int(v) for v in re.search(r"let frameWidth = (\d+), frameHeight = (\d+)", code).groups())
    files = exported_for_platform_runtimes.formats["coreml"].files
    head = ct.models.MLModel(str(files["coreml.linear.uint8"]), skip_model_load=True).get_spec().description
    (image,) = head.input
    assert (image.name, image.type.WhichOneof("Type")) == (names["imageName"], "imageType")
    assert (image.type.imageType.width, image.type.imageType.height) == (width, height)
    assert image.type.imageType.colorSpace == ct.proto.FeatureTypes_pb2.ImageFeatureType.RGB
    assert [o.name for o in head.output] == [names["scoresName"], names["labelName"]]
    classes = json.loads(head.metadata.userDefined["edgessl.class_names"])  # what the snippet decodes
    assert len(classes) == 10 and classes == sorted(classes)
    encoder = ct.models.MLModel(str(files["coreml.uint8"]), skip_model_load=True).get_spec().description
    assert [o.name for o in encoder.output] == [names["featuresName"]]
    assert encoder.input[0].name == names["imageName"]
