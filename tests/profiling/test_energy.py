"""Energy model arithmetic, table look-ups, and the NVML path skipped cleanly without a GPU."""

from __future__ import annotations

import time

import pytest
import torch

from edgessl.energy import EnergyMeter, _nvml_energy_mj, co2_kg, grid_intensity, modelled_kwh
from edgessl.errors import ConfigError, UnknownNameError
from edgessl.profiling.latency import torch_threads


def test_ml_co2_impact_arithmetic() -> None:
    kwh = modelled_kwh(seconds=3600, gpu_tdp_w=250, cpu_tdp_w=0, cpu_fraction=0, pue=1.0)
    assert kwh == pytest.approx(0.25)
    assert co2_kg(kwh, 0.42) == pytest.approx(0.105)
    # The study's total: 250 h on a 250 W P100 at 0.42 kg/kWh is 26.25 kg with PUE 1.
    assert co2_kg(modelled_kwh(250 * 3600, 250, 0, 0, 1.0), 0.42) == pytest.approx(26.25)
    assert modelled_kwh(3600, 250, 100, 0.5, pue=1.5) == pytest.approx((250 + 50) * 1.5 / 1000)


def test_cpu_meter_models_tdp_share_of_cores_used() -> None:
    with torch_threads(1), EnergyMeter("cpu", cpu_tdp_w=100, pue=1.2, grid_intensity_kg_per_kwh=0.5) as meter:
        time.sleep(0.05)
    report = meter.report()
    assert report.source == "tdp-model" and report.seconds >= 0.05
    expected_fraction = min(1 / (__import__("os").cpu_count() or 1), 1.0)
    assert report.cpu_fraction == pytest.approx(expected_fraction)
    assert report.energy_kwh == pytest.approx(100 * expected_fraction * report.seconds / 3.6e6 * 1.2)
    assert report.co2_kg == pytest.approx(report.energy_kwh * 0.5)
    assert report.scaled(10).energy_kwh == pytest.approx(10 * report.energy_kwh)
    assert set(report.as_dict()) >= {"seconds", "energy_kwh", "co2_kg", "source"}


def test_region_table_and_bad_inputs() -> None:
    # the study's region (it rounded to 0.42)
    assert grid_intensity("gcp:asia-southeast1") == pytest.approx(0.419)
    with pytest.raises(UnknownNameError, match="asia-southeast1"):
        grid_intensity("gcp:asia-southeast")
    with pytest.raises(ConfigError, match="PUE"):
        EnergyMeter("cpu", pue=0.9)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the path without a GPU")
def test_nvml_is_skipped_cleanly_without_a_gpu() -> None:
    assert _nvml_energy_mj(torch.device("cuda", 0)) is None  # no driver: None, no exception
    with EnergyMeter("cpu") as meter:
        pass
    assert meter.report().source == "tdp-model" and meter.report().gpu_kwh == 0.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_meter_measures_or_models_gpu_energy() -> None:
    with EnergyMeter("cuda", gpu_tdp_w=300) as meter:
        x = torch.randn(2048, 2048, device="cuda")
        for _ in range(50):
            x = x @ x.T / 2048
    report = meter.report()
    assert report.source in ("nvml", "tdp-model") and report.gpu_kwh > 0
