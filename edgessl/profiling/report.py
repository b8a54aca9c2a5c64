"""``profile_backbones``: everything ``edgessl profile`` reports, as one JSON-ready dict.

Schema (``schema_version`` 1; keys are pinned by tests/profiling/test_report.py, and a
change of meaning or removal bumps the version)::

    schema_version: int, edgessl_version: str, created: ISO-8601 UTC
    machine: {cpu_model, logical_cores, torch_version, onnxruntime_version, device,
              device_name, threads, peak: {device, peak_macs_per_second | null, basis}}
    options: {image_size, batch_sizes, backends, warmup, repeats, method, train_batch_size,
              train_steps, train_warmup, epochs, gpu_tdp_w, cpu_tdp_w, pue,
              grid_intensity_kg_per_kwh}
    backbones: [{
      name, variant, in_study, feature_dim,
      weights: null | str  # what --weights loaded (edgessl.backbones.LoadedWeights.summary());
                           # null: random init
      params: {total, trainable},
      compute: {image_size, macs, flops, thop_matmul_conv_macs, flop_counter_macs,
                relative_difference, agrees, tolerance}
          # per image; macs = thop total (MACs = multiply-accumulates), flops = 2 x macs;
          # agrees = thop's conv/linear share within tolerance of torch.utils.flop_counter
      latency: [{backend, batch_size, median_ms, p90_ms, repeats, warmup, threads,
                 speedup_vs_eager, images_per_second, macs_per_second, efficiency}]
          # per call (one batch); efficiency = macs_per_second / machine.peak (0-1) or null
      latency_skipped: {backend: reason}
      training: null | {method, backbone, image_size, batch_size, steps, warmup, threads,
                device, optimizer, images_per_second, epochs, epoch_images,
                seconds_per_step, seconds_per_epoch, projected_seconds,
                energy_per_epoch: EnergyReport, projected_energy: EnergyReport}
          # EnergyReport: {seconds, energy_kwh, co2_kg, source, gpu_kwh, cpu_kwh, gpu_tdp_w,
          #                cpu_tdp_w, cpu_fraction, pue, grid_intensity_kg_per_kwh}
    }]
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

import torch

from edgessl.energy import DEFAULT_GRID_INTENSITY, EnergyMeter
from edgessl.errors import ConfigError
from edgessl.hardware import device_peak, efficiency, read_cpu_features
from edgessl.profiling.flops import TOLERANCE, count_compute, count_parameters
from edgessl.profiling.latency import DEFAULT_BACKENDS, measure_latency
from edgessl.profiling.training_cost import measure_training_throughput

SCHEMA_VERSION = 1
# counts below 1 would measure nothing (or divide by nothing); checked in this order
AT_LEAST_ONE = ("threads", "repeats", "epochs", "image_size", "train_batch_size", "train_steps")


@dataclass
class ProfileOptions:
    """How to profile; every field is recorded in the report's ``options``."""

    image_size: int = 96
    batch_sizes: tuple[int, ...] = (1, 32)
    device: str = "cpu"
    threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    backends: tuple[str, ...] = DEFAULT_BACKENDS
    warmup: int = 5
    repeats: int = 30
    method: str | None = "simclr"  # None skips the training cost
    train_batch_size: int = 32
    train_steps: int = 3
    train_warmup: int = 1
    epochs: int = 100  # the study's pretraining budget
    gpu_tdp_w: float | None = None
    cpu_tdp_w: float | None = None
    pue: float = 1.0
    grid_intensity_kg_per_kwh: float = DEFAULT_GRID_INTENSITY
    weights: str | None = None  # a state dict for the (single) backbone; recorded per backbone

    def __post_init__(self) -> None:
        """Refuse now what would otherwise fail after minutes of measuring; each field is named by
        the ``edgessl profile`` flag that sets it."""
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"--device {self.device} but torch sees no CUDA device; use --device cpu")
        for name in AT_LEAST_ONE:
            value = getattr(self, name)
            if value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1 (got {value})")
        if self.method is not None:
            from edgessl.methods import method_class

            method_class(self.method)  # a wrong name: one line naming the methods there are

    def as_dict(self) -> dict[str, Any]:
        values = asdict(self)
        del values["device"], values["threads"], values["weights"]  # recorded under machine / per backbone
        values["batch_sizes"], values["backends"] = list(self.batch_sizes), list(self.backends)
        return values


def _machine(options: ProfileOptions) -> dict[str, Any]:
    import onnxruntime

    cpu = read_cpu_features()
    peak = device_peak(options.device, options.threads)
    return {
        "cpu_model": cpu.model if cpu else "unknown",
        "logical_cores": os.cpu_count(),
        "torch_version": torch.__version__,
        "onnxruntime_version": onnxruntime.__version__,
        "device": options.device,
        "device_name": peak.device,
        "threads": options.threads,
        "peak": peak.as_dict(),
    }


def profile_backbone(
    name: str, options: ProfileOptions, peak_macs_per_second: float | None
) -> dict[str, Any]:
    """One backbone's entry of the report (see the module docstring for its keys)."""
    from edgessl.backbones import build_backbone, load_backbone_weights
    from edgessl.backbones.base import check_input_side

    encoder = build_backbone(name).eval()
    check_input_side(encoder, options.image_size, name)
    loaded = None if options.weights is None else load_backbone_weights(encoder, options.weights)
    params = count_parameters(encoder)
    compute = count_compute(encoder, options.image_size)
    latency = measure_latency(
        encoder,
        options.image_size,
        batch_sizes=options.batch_sizes,
        backends=options.backends,
        device=options.device,
        threads=options.threads,
        warmup=options.warmup,
        repeats=options.repeats,
    )
    rows = []
    for row in latency.rows:
        seconds = row.median_ms / 1000.0
        rows.append(
            {
                **row.as_dict(),
                "macs_per_second": compute.macs * row.batch_size / seconds,
                "efficiency": efficiency(compute.macs, row.batch_size, seconds, peak_macs_per_second),
            }
        )
    training = None
    if options.method is not None:
        meter = EnergyMeter(
            options.device,
            options.gpu_tdp_w,
            options.cpu_tdp_w,
            options.pue,
            options.grid_intensity_kg_per_kwh,
        )
        training = measure_training_throughput(
            options.method,
            name,
            image_size=options.image_size,
            batch_size=options.train_batch_size,
            steps=options.train_steps,
            warmup=options.train_warmup,
            device=options.device,
            threads=options.threads,
            epochs=options.epochs,
            meter=meter,
        ).as_dict()
    return {
        "name": name,
        "variant": encoder.spec.variant,
        "in_study": encoder.spec.in_study,
        "feature_dim": encoder.feature_dim,
        "weights": None if loaded is None else loaded.summary(),
        "params": asdict(params),
        "compute": {"image_size": options.image_size, **compute.as_dict(), "tolerance": TOLERANCE},
        "latency": rows,
        "latency_skipped": latency.skipped,
        "training": training,
    }


def profile_backbones(names: Sequence[str], options: ProfileOptions) -> dict[str, Any]:
    """The whole report for ``names`` (see the module docstring for the schema)."""
    from edgessl import __version__

    machine = _machine(options)
    peak = machine["peak"]["peak_macs_per_second"]
    return {
        "schema_version": SCHEMA_VERSION,
        "edgessl_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine,
        "options": options.as_dict(),
        "backbones": [profile_backbone(name, options, peak) for name in names],
    }
