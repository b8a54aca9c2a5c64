"""LiteRT, Core ML and ExecuTorch: a trained encoder round-trips through each runtime that runs here.

The shared machinery (programs, verification, publishing, clean-up, one-line refusals) is
tested with a stand-in converter whose "runtime" is PyTorch itself, so it runs everywhere.
Each real format runs where its package is installed (``pip install 'edgessl[litert]'`` ...)
and is skipped with that reason otherwise (``pytest -ra`` prints it).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from edgessl.checkpoints import load_representation
from edgessl.cli import main
from edgessl.data.reading import read_split_arrays
from edgessl.errors import ConfigError, UnknownNameError
from edgessl.export import torch_formats
from edgessl.export.conversion import converter_failure, first_operator
from edgessl.export.formats import FORMATS, parse_formats, require_installed
from edgessl.export.metadata import ExportError
from edgessl.export.onnx_export import metadata_of
from edgessl.export.options import ExportOptions
from edgessl.export.ort_eval import knn_predict
from edgessl.export.pipeline import export_checkpoint
from edgessl.export.verify import FP32_RELATIVE_TOLERANCE, compare, torch_features
from edgessl.runs import pick_checkpoint

SIZE = 32
K = 20


@pytest.fixture(scope="module")
def trained_run(cifar10_small: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One epoch of SimCLR on 1,000 real CIFAR-10 images (16 steps): a real, briefly trained encoder."""
    run = tmp_path_factory.mktemp("formats") / "run"
    flags = ["--method", "simclr", "--backbone", "squeezenet", "--data", str(cifar10_small)]
    flags += ["--image-size", str(SIZE), "--epochs", "1", "--batch-size", "64", "--out", str(run)]
    assert main(["train", *flags, "--no-progress", "--no-plots"]) == 0
    return run


def installed_or_skip(name: str) -> None:
    spec = FORMATS.get(name)
    missing = [package for package in spec.packages if importlib.util.find_spec(package) is None]
    if missing:
        pytest.skip(
            f"--format {name}: {', '.join(missing)} not installed (pip install 'edgessl[{spec.extra}]')"
        )


def test_format_names_are_parsed_once_each_and_unknown_ones_are_named() -> None:
    assert parse_formats("onnx, LiteRT,onnx") == ("onnx", "litert")
    with pytest.raises(UnknownNameError, match="litert"):
        parse_formats("tflite2")
    with pytest.raises(ConfigError, match="at least one"):
        parse_formats(" , ")


def test_a_missing_package_is_one_line_naming_the_extra_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "executorch" else real(name, *a)
    )
    with pytest.raises(ConfigError, match=r"pip install 'edgessl\[executorch\]'"):
        require_installed("executorch")
    out = tmp_path / "out"
    missing = tmp_path / "missing.pt"  # never read: options are checked first
    assert main(["export", str(missing), "--format", "onnx,executorch", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "edgessl[executorch]" in err and not out.exists()
    assert main(["export", str(missing), "--format", "litert", "--ort", "--out", str(out)]) == 2
    assert "--ort converts the ONNX files" in capsys.readouterr().err and not out.exists()


def test_a_converter_error_is_one_line_naming_the_first_operator() -> None:
    message = "Unsupported: aten.pixel_shuffle.default is not supported by the partitioner\n  at line 3"
    assert first_operator(message) == "aten.pixel_shuffle.default"
    named = pytest.raises(ExportError, match="first operator it cannot take is aten.pixel_shuffle.default")
    with named, converter_failure("litert", "litert"):
        raise RuntimeError(message)
    first_line = pytest.raises(ExportError, match="coreml cannot convert this model .* shape mismatch")
    with first_line, converter_failure("coreml", "coreml.knn"):
        raise AssertionError("shape mismatch\nmore")


def torch_runtime(converter_name: str, fail_role: str = "") -> torch_formats.Converter:
    """A stand-in converter: the 'file' is the module's state saved by torch, its 'runtime' PyTorch."""
    programs: dict[Path, torch_formats.Program] = {}

    def convert(program: torch_formats.Program, path: Path) -> None:
        if program.role.name == fail_role:
            raise RuntimeError("aten.fake_op.default is not supported")
        path.write_bytes(b"stand-in")
        programs[path.name] = program

    def load(path: Path) -> torch_formats.Runner:
        module = programs[path.name].module

        def run(batch: np.ndarray) -> torch_formats.Outputs:
            with torch.no_grad():
                got = module(torch.from_numpy(batch))
            return tuple(value.numpy() for value in (got if isinstance(got, tuple) else (got,)))

        return run

    return torch_formats.Converter(converter_name, convert, load)


def test_programs_are_verified_published_with_their_contract_and_all_removed_on_a_failure(
    trained_run: Path, tmp_path: Path
) -> None:
    from edgessl.export.splits import read_splits

    loaded = load_representation(pick_checkpoint(trained_run))
    options = ExportOptions(head="knn", fixed_batch=4, input="uint8-nhwc", frame_size=(40, 48), k=K)
    metadata = metadata_of(loaded.metadata, loaded.model.feature_dim)
    splits = read_splits(loaded.metadata["dataset"], None, SIZE, 16, need_labels=True)
    head = torch_formats.torch_head(loaded.model, splits, options, metadata)
    converter = torch_runtime("executorch")
    programs = torch_formats.plan_programs(converter, loaded.model, metadata, splits, options, head)
    assert [p.role.name for p in programs] == [
        "executorch",
        "executorch.knn",
        "executorch.uint8",
        "executorch.knn.uint8",
    ]
    report = torch_formats.FormatReport()
    torch_formats.export_programs(converter, programs, tmp_path, "enc", options, report)
    assert sorted(p.name for p in tmp_path.glob("*.pte")) == [
        "enc_b4.pte",
        "enc_b4_knn.pte",
        "enc_b4_knn_uint8.pte",
        "enc_b4_uint8.pte",
    ]
    # a second computation: the features PyTorch gives the checkpoint's model on the same images
    assert compare(torch_features(loaded.model, splits.verify), programs[0].expected[0]).max_relative < 1e-6
    assert "max |diff|" in report.checks["executorch"] and "100.0%" in report.checks["executorch.knn"]
    sidecar = (tmp_path / "enc_b4_knn_uint8.pte.json").read_text()
    assert '"input_format": "uint8-nhwc"' in sidecar and '"head": "knn"' in sidecar
    # the kNN head program's labels are the Python classifier's
    bank = torch_features(loaded.model, splits.train.images)
    python = knn_predict(bank, splits.train.labels, torch_features(loaded.model, splits.verify), 10, k=K)
    assert (programs[1].expected[1] == python).mean() >= 0.99

    failing = torch_runtime("executorch", fail_role="executorch.uint8")
    fresh = tmp_path / "second"
    fresh.mkdir()
    report = torch_formats.FormatReport()
    with pytest.raises(ExportError, match="aten.fake_op.default"):
        torch_formats.export_programs(failing, programs, fresh, "enc", options, report)
    assert list(fresh.iterdir()) == []  # the two files verified before the failure are gone again


def reference_and_images(trained_run: Path) -> tuple[object, np.ndarray, np.ndarray, object]:
    loaded = load_representation(pick_checkpoint(trained_run))
    test = read_split_arrays(loaded.metadata["dataset"], "test", image_size=SIZE)
    images = test.images[:24]
    return loaded, images, torch_features(loaded.model, images), test


def test_executorch_round_trips_the_trained_encoder(trained_run: Path, tmp_path: Path) -> None:
    installed_or_skip("executorch")
    from edgessl.export.executorch_export import load

    # batch 4 over 24 images: six calls into one loaded program, whose outputs must each be its own
    options = ExportOptions(out_dir=tmp_path, formats=("executorch",), head="knn", fixed_batch=4, k=K)
    result = export_checkpoint(trained_run, options)
    report = result.formats["executorch"]
    assert set(report.files) == {"executorch", "executorch.knn"} and not result.files  # no ONNX asked
    _, images, reference, _ = reference_and_images(trained_run)
    run = load(report.files["executorch"])
    got = torch_formats.run_all(run, images.astype(np.float32) / 255.0, 4)[0]
    assert compare(reference, got).max_relative <= FP32_RELATIVE_TOLERANCE
    assert report.latency_ms["executorch"] > 0


def test_litert_fp32_and_int8_round_trip_with_knn_through_the_interpreter(
    trained_run: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    installed_or_skip("litert")
    from edgessl.export.litert_export import load

    options = ExportOptions(out_dir=tmp_path, formats=("litert",), int8=True, input="uint8-nhwc", k=K)
    capfd.readouterr()
    report = export_checkpoint(trained_run, options).formats["litert"]
    printed = capfd.readouterr().err
    # the converter's C++ logs and the interpreter's delegate line stay off the export's output
    assert "flatbuffer_export" not in printed and "XNNPACK delegate" not in printed, printed
    assert set(report.files) == {"litert", "litert.int8", "litert.uint8"}
    _, images, reference, _ = reference_and_images(trained_run)
    got = torch_formats.run_all(load(report.files["litert"]), images.astype(np.float32) / 255.0, 1)[0]
    assert compare(reference, got).max_relative <= FP32_RELATIVE_TOLERANCE
    int8 = torch_formats.run_all(load(report.files["litert.int8"]), images.astype(np.float32) / 255.0, 1)[0]
    assert compare(reference, int8).mean_cosine >= 0.9
    assert abs(report.knn["litert"] - report.knn["litert.int8"]) <= 0.05  # 200 test images, barely trained
    int8_bytes, fp32_bytes = (report.files[role].stat().st_size for role in ("litert.int8", "litert"))
    assert int8_bytes < 0.4 * fp32_bytes  # int8 weights, not fp32 ones behind quantize/dequantize


def test_coreml_package_declares_named_image_and_tensor_inputs(
    trained_run: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    installed_or_skip("coreml")
    import coremltools as ct

    options = ExportOptions(
        out_dir=tmp_path, formats=("coreml",), int8=True, head="linear", input="uint8-nhwc", linear_epochs=5
    )
    capfd.readouterr()
    report = export_checkpoint(trained_run, options).formats["coreml"]
    printed = capfd.readouterr()
    assert "MIL" not in printed.err + printed.out  # coremltools' progress bars stay off the export's output
    assert set(report.files) == {
        "coreml",
        "coreml.int8",
        "coreml.linear",
        "coreml.uint8",
        "coreml.linear.uint8",
    }
    assert all("not run: needs macOS" in check for check in report.checks.values())
    plain = ct.models.MLModel(str(report.files["coreml"]), skip_model_load=True).get_spec()
    assert [i.name for i in plain.description.input] == ["images"]
    assert list(plain.description.input[0].type.multiArrayType.shape) == [1, 3, SIZE, SIZE]
    assert [o.name for o in plain.description.output] == ["features"]
    camera = ct.models.MLModel(str(report.files["coreml.linear.uint8"]), skip_model_load=True).get_spec()
    assert camera.description.input[0].type.WhichOneof("Type") == "imageType"
    assert [o.name for o in camera.description.output] == ["scores", "label"]
    assert plain.description.metadata.userDefined["edgessl.backbone"] == "squeezenet"
    assert "conv" in report.operators["coreml"]
    assert "constexpr_affine_dequantize" in report.operators["coreml.int8"] or any(
        "dequantize" in op for op in report.operators["coreml.int8"]
    )
