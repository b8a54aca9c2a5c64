"""The JSON schema of ``edgessl profile`` is stable: keys pinned at every level."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgessl.cli import main
from edgessl.energy import EnergyReport
from edgessl.profiling.report import SCHEMA_VERSION, ProfileOptions, profile_backbones
from edgessl.profiling.training_cost import TrainingCost

TOP = {"schema_version", "edgessl_version", "created", "machine", "options", "backbones"}
MACHINE = {
    "cpu_model",
    "logical_cores",
    "torch_version",
    "onnxruntime_version",
    "device",
    "device_name",
    "threads",
    "peak",
}
PEAK = {"device", "peak_macs_per_second", "basis"}
OPTIONS = {
    "image_size", "batch_sizes", "backends", "warmup", "repeats", "method", "train_batch_size", "train_steps",
    "train_warmup", "epochs", "gpu_tdp_w", "cpu_tdp_w", "pue", "grid_intensity_kg_per_kwh",
}  # fmt: skip
BACKBONE = {
    "name",
    "variant",
    "in_study",
    "feature_dim",
    "weights",
    "params",
    "compute",
    "latency",
    "latency_skipped",
    "training",
}
COMPUTE = {
    "image_size",
    "macs",
    "flops",
    "thop_matmul_conv_macs",
    "flop_counter_macs",
    "relative_difference",
    "agrees",
    "tolerance",
}
LATENCY = {
    "backend", "batch_size", "median_ms", "p90_ms", "repeats", "warmup", "threads", "speedup_vs_eager",
    "images_per_second", "macs_per_second", "efficiency",
}  # fmt: skip
TRAINING = {
    "method", "backbone", "image_size", "batch_size", "steps", "warmup", "threads", "device", "optimizer",
    "images_per_second", "epochs", "epoch_images", "seconds_per_step", "seconds_per_epoch",
    "projected_seconds", "energy_per_epoch", "projected_energy",
}  # fmt: skip
ENERGY = {
    "seconds", "energy_kwh", "co2_kg", "source", "gpu_kwh", "cpu_kwh", "gpu_tdp_w", "cpu_tdp_w",
    "cpu_fraction", "pue", "grid_intensity_kg_per_kwh",
}  # fmt: skip

_FAST = [
    "--image-size",
    "32",
    "--batch-sizes",
    "1,2",
    "--warmup",
    "0",
    "--repeats",
    "1",
    "--threads",
    "1",
    "--method",
    "none",
]


def test_report_keys_are_pinned() -> None:
    options = ProfileOptions(
        image_size=32,
        batch_sizes=(1, 2),
        threads=1,
        backends=("eager", "channels_last"),
        warmup=0,
        repeats=1,
        method=None,
    )
    report = json.loads(json.dumps(profile_backbones(["shufflenetv2"], options)))  # JSON-serialisable as is
    assert report.keys() == TOP and report["schema_version"] == SCHEMA_VERSION == 1
    assert report["machine"].keys() == MACHINE and report["machine"]["peak"].keys() == PEAK
    assert report["options"].keys() == OPTIONS
    entry = report["backbones"][0]
    assert entry.keys() == BACKBONE and entry["params"].keys() == {"total", "trainable"}
    assert entry["compute"].keys() == COMPUTE and entry["compute"]["flops"] == 2 * entry["compute"]["macs"]
    assert len(entry["latency"]) == 4 and all(row.keys() == LATENCY for row in entry["latency"])
    assert entry["training"] is None


def test_training_and_energy_keys_are_pinned() -> None:
    energy = EnergyReport(seconds=1.0, energy_kwh=1e-5, co2_kg=4.2e-6, source="tdp-model")
    cost = TrainingCost(
        "simclr", "resnet18", 96, 32, 3, 1, 2, "cpu", "adam", 50.0, 100, energy_per_epoch=energy
    ).as_dict()
    assert cost.keys() == TRAINING
    assert cost["energy_per_epoch"].keys() == ENERGY and cost["projected_energy"].keys() == ENERGY


def test_cli_writes_json_and_renders_tables(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "profile.json"
    assert (
        main(
            [
                "profile",
                "--backbone",
                "shufflenetv2,squeezenet",
                "--backends",
                "eager",
                *_FAST,
                "--json",
                str(out),
            ]
        )
        == 0
    )
    report = json.loads(out.read_text())
    assert [entry["name"] for entry in report["backbones"]] == ["shufflenetv2", "squeezenet"]
    assert report["machine"]["threads"] == 1 and report["options"]["batch_sizes"] == [1, 2]
    assert main(["profile", "--backbone", "shufflenetv2", "--backends", "eager,channels_last", *_FAST]) == 0
    printed = capsys.readouterr().out
    assert "multiply-accumulates" in printed and "channels_last" in printed and "ok (0.0%)" in printed


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["profile", *_FAST], "--backbone NAME"),
        (["profile", "--backbone", "shufflenet", *_FAST], "shufflenetv2"),
        (["profile", "--backbone", "shufflenetv2", "--region", "mars", *_FAST], "gcp:asia-southeast1"),
    ],
)
def test_cli_user_errors_exit_2_with_a_fix(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err
