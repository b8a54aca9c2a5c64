"""docs/MOBILE.md's Kotlin and Swift snippets name the inputs, outputs and shapes of a real export.

The snippets' constants are parsed from the page and checked against the ``.ort`` files
of the export the page's command makes (``--fixed-batch 1 --input uint8-nhwc --frame-size
480x640 --head linear --ort``), opened with ONNX Runtime as the apps open them.
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
from edgessl.export.ort_eval import run_batches
from edgessl.export.pipeline import ExportOptions, export_representation
from edgessl.methods.base import Normalize, Representation

PAGE = Path(__file__).resolve().parents[2] / "docs" / "MOBILE.md"
SIZE = 32


def code_blocks(language: str) -> str:
    blocks = re.findall(rf"```{language}\n(.*?)```", PAGE.read_text(), flags=re.DOTALL)
    assert blocks, f"no {language} snippet in {PAGE}"
    return "\n".join(blocks)


def kotlin_contract() -> tuple[dict[str, str], list[int]]:
    code = code_blocks("kotlin")
    names = dict(re.findall(r'const val (\w+) = "(\w+)"', code))
    shape = [int(v) for v in re.search(r"val FRAME_SHAPE = longArrayOf\(([^)]*)\)", code).group(1).split(",")]
    return {
        "input": names["INPUT"],
        "features": names["FEATURES"],
        "scores": names["SCORES"],
        "label": names["LABEL"],
    }, shape


def swift_contract() -> tuple[dict[str, str], list[int]]:
    code = code_blocks("swift")
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


def page_command_options() -> dict[str, str]:
    command = re.search(r"```bash\nedgessl export RUN (.*?)\n```", PAGE.read_text()).group(1)
    return dict(re.findall(r"--([\w-]+) ([^-\s]\S*)", command)) | {
        flag: "" for flag in re.findall(r"--([\w-]+)(?= --|$)", command)
    }


@pytest.fixture(scope="module")
def exported(cifar10_small: Path, tmp_path_factory):
    flags = page_command_options()
    assert {"fixed-batch", "input", "frame-size", "head", "ort"} <= set(flags), flags
    spec = str(cifar10_small)
    train = read_split_arrays(spec, "train", image_size=SIZE)
    torch.manual_seed(0)
    encoder = build_backbone("shufflenetv2")
    model = Representation(Normalize(train.mean, train.std), encoder, encoder.feature_dim).eval()
    height, width = (int(v) for v in flags["frame-size"].split("x"))
    options = ExportOptions(
        out_dir=tmp_path_factory.mktemp("docs"),
        ort=True,
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
    names = json.loads(
        plain.get_modelmeta().custom_metadata_map["edgessl.class_names"]
    )  # what the Kotlin snippet reads
    assert len(names) == 10 and names == sorted(names)
    options = ort.SessionOptions()
    options.add_session_config_entry(
        "session.enable_saved_runtime_optimizations", "1"
    )  # as both snippets set it
    replayed = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    _, height, width, _ = plain.get_inputs()[0].shape
    images = torch.from_numpy(
        read_split_arrays(str(cifar10_small), "test", image_size=SIZE).images[:4]
    ).float()
    frames = (
        torch.nn.functional.interpolate(images, size=(height, width), mode="bilinear").round().to(torch.uint8)
    )  # real images, camera-sized
    nhwc = np.ascontiguousarray(frames.permute(0, 2, 3, 1).numpy())
    np.testing.assert_array_equal(
        run_batches(replayed, nhwc, output="label"), run_batches(plain, nhwc, output="label")
    )
    np.testing.assert_allclose(
        run_batches(replayed, nhwc, output="scores"), run_batches(plain, nhwc, output="scores"), atol=1e-5
    )
