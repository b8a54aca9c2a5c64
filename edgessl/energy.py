"""Energy and CO2 of a piece of work: measured on NVIDIA GPUs, modelled elsewhere.

``with EnergyMeter("cuda") as meter: train()`` then ``meter.report()``.

Measurement (source ``"nvml"``): the GPU's energy counter,
``nvmlDeviceGetTotalEnergyConsumption`` (millijoules since the driver loaded, Volta and
later), read before and after. The CPU's share is still modelled (below) and added.

Model (source ``"tdp-model"``), as the ML CO2 Impact calculator (Lacoste et al., 2019,
mlco2.github.io/impact) computes it: power x hours x PUE x grid intensity, where the
calculator's power is the GPU's TDP alone. edgessl adds the CPU's share:
``cpu_tdp_w x fraction of the CPU's logical cores this process uses``
(``torch.get_num_threads() / os.cpu_count()``). When the CPU's TDP is not given it is
``DEFAULT_CPU_W_PER_CORE`` (12 W, the Green Algorithms calculator's default per core,
Lannelongue et al., 2021) x the machine's logical cores, so the share is 12 W per thread
used. TDP is an upper bound of board power, so the model over-estimates on average.

Grid intensities (kgCO2eq/kWh) by cloud region come from the ML CO2 Impact calculator's
``data/impact.csv`` (github.com/mlco2/impact); the study used GCP asia-southeast1 (419 g,
which it rounded to 0.42, the default here).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from typing_extensions import Self

from edgessl.errors import ConfigError, EdgesslError, UnknownNameError
from edgessl.hardware import gpu_spec

DEFAULT_GRID_INTENSITY = 0.42  # kgCO2eq/kWh, the study's figure (GCP asia-southeast1)
DEFAULT_CPU_W_PER_CORE = 12.0  # Green Algorithms' default CPU power per core

# kgCO2eq per kWh, ML CO2 Impact calculator data/impact.csv (its sources per row there).
GRID_INTENSITY_KG_PER_KWH: dict[str, float] = {
    "gcp:asia-southeast1": 0.419,  # Singapore; the study's region
    "gcp:asia-east1": 0.557,
    "gcp:asia-northeast1": 0.516,
    "gcp:asia-south1": 0.920,
    "gcp:australia-southeast1": 0.802,
    "gcp:europe-north1": 0.211,
    "gcp:europe-west1": 0.267,
    "gcp:europe-west2": 0.623,
    "gcp:europe-west3": 0.615,
    "gcp:europe-west4": 0.569,
    "gcp:europe-west6": 0.016,
    "gcp:northamerica-northeast1": 0.020,
    "gcp:southamerica-east1": 0.205,
    "gcp:us-central1": 0.5663,
    "gcp:us-east1": 0.3678,
    "gcp:us-west1": 0.2976,
    "aws:us-east-1": 0.3678,
    "aws:us-east-2": 0.5682,
    "aws:us-west-2": 0.2976,
    "aws:eu-west-1": 0.617,
    "aws:eu-central-1": 0.615,
    "aws:eu-north-1": 0.047,
    "aws:ap-southeast-1": 0.419,
    "azure:westeurope": 0.569,
    "azure:northeurope": 0.617,
    "azure:eastus": 0.3678,
    "azure:southeastasia": 0.419,
}


def grid_intensity(region: str) -> float:
    """kgCO2eq/kWh of ``provider:region`` (e.g. ``gcp:asia-southeast1``) from the table."""
    if region not in GRID_INTENSITY_KG_PER_KWH:
        raise UnknownNameError(
            "region",
            region,
            GRID_INTENSITY_KG_PER_KWH,
            hint="Or give the intensity itself with --grid-intensity.",
        )
    return GRID_INTENSITY_KG_PER_KWH[region]


def modelled_kwh(
    seconds: float, gpu_tdp_w: float, cpu_tdp_w: float, cpu_fraction: float, pue: float
) -> float:
    """(GPU TDP + CPU TDP x fraction of CPU used) x hours x PUE, in kWh."""
    return (gpu_tdp_w + cpu_tdp_w * cpu_fraction) * seconds / 3600.0 * pue / 1000.0


def co2_kg(energy_kwh: float, grid_intensity_kg_per_kwh: float) -> float:
    return energy_kwh * grid_intensity_kg_per_kwh


def cpu_share() -> float:
    """Fraction of the machine's logical cores this process computes on (torch threads / cores)."""
    return min(torch.get_num_threads() / (os.cpu_count() or 1), 1.0)


@dataclass
class EnergyReport:
    """Energy of one measured span; ``source`` says whether the GPU part was measured."""

    seconds: float
    energy_kwh: float
    co2_kg: float
    source: str  # "nvml" | "tdp-model"
    gpu_kwh: float = 0.0  # before PUE
    cpu_kwh: float = 0.0  # before PUE, always modelled
    gpu_tdp_w: float | None = None  # None on CPU, or for an unlisted GPU that NVML measured
    cpu_tdp_w: float = 0.0
    cpu_fraction: float = 0.0
    pue: float = 1.0
    grid_intensity_kg_per_kwh: float = DEFAULT_GRID_INTENSITY

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def scaled(self, factor: float) -> EnergyReport:
        """The same power drawn ``factor`` times as long (projects a short run to an epoch)."""
        scaled = {
            k: v * factor
            for k, v in asdict(self).items()
            if k in ("seconds", "energy_kwh", "co2_kg", "gpu_kwh", "cpu_kwh")
        }
        return EnergyReport(**{**asdict(self), **scaled})


def _nvml_energy_mj(device: torch.device) -> int | None:
    """The GPU's cumulative energy counter in mJ, or None when NVML cannot give it.

    The GPU is found by UUID, since torch's index and NVML's differ under
    CUDA_VISIBLE_DEVICES; by index when torch does not expose the UUID.
    """
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
        uuid = getattr(torch.cuda.get_device_properties(device), "uuid", None)
        handle = (
            pynvml.nvmlDeviceGetHandleByUUID(f"GPU-{uuid}")
            if uuid is not None
            else pynvml.nvmlDeviceGetHandleByIndex(device.index or 0)
        )
        return int(pynvml.nvmlDeviceGetTotalEnergyConsumption(handle))
    except (pynvml.NVMLError, RuntimeError, AssertionError):  # no driver, no GPU, counter unsupported
        return None


class EnergyMeter:
    """Context manager measuring the energy and CO2 of the work inside it (see module docstring)."""

    def __init__(
        self,
        device: str | torch.device = "cpu",
        gpu_tdp_w: float | None = None,
        cpu_tdp_w: float | None = None,
        pue: float = 1.0,
        grid_intensity_kg_per_kwh: float = DEFAULT_GRID_INTENSITY,
    ) -> None:
        if pue < 1.0:
            raise ConfigError(f"PUE must be at least 1.0 (got {pue}); data centres report 1.1-1.6")
        self.device = torch.device(device)
        self.pue = pue
        self.grid_intensity = grid_intensity_kg_per_kwh
        self.cpu_tdp_w = (
            cpu_tdp_w if cpu_tdp_w is not None else DEFAULT_CPU_W_PER_CORE * (os.cpu_count() or 1)
        )
        self.cpu_fraction = cpu_share()
        self.gpu_tdp_w = self._gpu_tdp(gpu_tdp_w)  # None: unknown, fine while NVML measures
        self._start: float | None = None
        self._start_mj: int | None = None
        self._report: EnergyReport | None = None

    def _gpu_tdp(self, given: float | None) -> float | None:
        """The GPU's TDP for the model: given, else from the table (None if not there); 0 W on CPU."""
        if self.device.type != "cuda":
            return 0.0
        if given is not None:
            return given
        spec = gpu_spec(torch.cuda.get_device_name(self.device))
        return spec.tdp_w if spec is not None else None

    def __enter__(self) -> Self:
        self._report = None
        self.cpu_fraction = cpu_share()  # the thread count of the span, not of construction
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self._start_mj = _nvml_energy_mj(self.device)
            if self._start_mj is None and self.gpu_tdp_w is None:
                name = torch.cuda.get_device_name(self.device)
                raise ConfigError(
                    f"NVML cannot measure '{name}' and its TDP is not in the table; "
                    "give it with --gpu-tdp WATTS"
                )
        self._start = time.perf_counter()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self._report = self._measure()

    def _measure(self) -> EnergyReport:
        """The span from ``__enter__`` until now."""
        assert self._start is not None, "EnergyMeter used without entering it"
        seconds = time.perf_counter() - self._start
        end_mj = _nvml_energy_mj(self.device) if self._start_mj is not None else None
        measured = None if end_mj is None or self._start_mj is None else (end_mj - self._start_mj) / 3.6e9
        return self._make_report(seconds, measured)  # 1 kWh = 3.6e9 mJ

    def _make_report(self, seconds: float, measured_gpu_kwh: float | None) -> EnergyReport:
        cpu_kwh = modelled_kwh(seconds, 0.0, self.cpu_tdp_w, self.cpu_fraction, pue=1.0)
        if measured_gpu_kwh is None:
            gpu_kwh, source = modelled_kwh(seconds, self.gpu_tdp_w or 0.0, 0.0, 0.0, pue=1.0), "tdp-model"
        else:
            gpu_kwh, source = measured_gpu_kwh, "nvml"
        energy = (gpu_kwh + cpu_kwh) * self.pue
        return EnergyReport(
            seconds=seconds,
            energy_kwh=energy,
            co2_kg=co2_kg(energy, self.grid_intensity),
            source=source,
            gpu_kwh=gpu_kwh,
            cpu_kwh=cpu_kwh,
            gpu_tdp_w=self.gpu_tdp_w if self.device.type == "cuda" else None,
            cpu_tdp_w=self.cpu_tdp_w,
            cpu_fraction=self.cpu_fraction,
            pue=self.pue,
            grid_intensity_kg_per_kwh=self.grid_intensity,
        )

    def report(self) -> EnergyReport:
        """The finished span's report; while still inside the block, the span so far."""
        if self._report is not None:
            return self._report
        if self._start is None:
            raise RuntimeError("EnergyMeter.report() called before the meter was entered")
        return self._measure()


@contextmanager
def optional_meter(device: str | torch.device, warn: Callable[[str], None]) -> Iterator[EnergyMeter | None]:
    """An :class:`EnergyMeter` over the block, or ``None`` (no energy record) when it cannot measure
    ``device``.

    Training must not fail for want of a power reading (an unlisted GPU without NVML):
    ``warn`` is told why, once.
    """
    meter = EnergyMeter(device)
    try:
        meter.__enter__()
    except EdgesslError as exc:
        warn(f"energy not recorded: {exc}")
        yield None
        return
    try:
        yield meter
    finally:
        meter.__exit__(None, None, None)


ENERGY_TOTALS = ("seconds", "energy_kwh", "co2_kg", "gpu_kwh", "cpu_kwh")  # what adds up across resumes


def energy_so_far(meter: EnergyMeter | None, prior: dict[str, Any] | None) -> dict[str, Any] | None:
    """This segment's energy report with the totals of earlier segments of the run added."""
    if meter is None:
        return prior
    current = meter.report().as_dict()
    return {
        **current,
        **{key: float((prior or {}).get(key, 0.0)) + float(current[key]) for key in ENERGY_TOTALS},
    }
