"""Peak multiply-accumulate rate of the device, so achieved MAC/s reads as a percentage.

CPU peak (float32) = cores x FMA units per core x SIMD lanes x clock, where one fused
multiply-add is one MAC per lane per cycle. Assumptions, stated because /proc/cpuinfo
cannot tell them:

- lanes come from the widest vector flag: avx512f -> 16, avx/avx2 -> 8, sse -> 4 float32;
- 2 FMA units per core when the CPU has FMA (Intel Haswell and later client/server cores,
  AMD Zen 2+ for 256-bit; Xeon Gold/Platinum for 512-bit). Some parts (Xeon Silver/Bronze,
  some Ice Lake client cores) have one 512-bit FMA unit, so the peak may be 2x too high
  there. Without FMA, a multiply and an add issue separately: half a MAC per lane per cycle;
- the clock is the base "cpu MHz" the kernel reports (or lscpu's max MHz when present);
  turbo and AVX-512 down-clocking are ignored;
- ``cores`` is the number of threads the run used (one per physical core is assumed).

GPU peak comes from NVIDIA's datasheets (FP32 without tensor cores, boost clock): the
cuDNN path uses TF32 tensor cores only when enabled, so FP32 is the honest ceiling for a
default PyTorch float32 run.
"""

from __future__ import annotations

import platform
import re
from dataclasses import dataclass
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")

# float32 lanes per vector register for the widest SIMD extension, widest first.
SIMD_LANES_FP32: tuple[tuple[str, int], ...] = (("avx512f", 16), ("avx2", 8), ("avx", 8), ("sse", 4))
FMA_UNITS_PER_CORE = 2


@dataclass(frozen=True)
class GpuSpec:
    """One GPU model: its board power (TDP) and FP32 peak, with the source of both."""

    pattern: str  # regex matched against torch.cuda.get_device_name(), case-insensitive
    name: str
    tdp_w: float
    fp32_tflops: float
    source: str


_NVIDIA = "NVIDIA datasheet"
_MLCO2 = "ML CO2 Impact calculator data/gpus.csv (github.com/mlco2/impact)"

# Most specific patterns first: the first match wins.
GPU_SPECS: tuple[GpuSpec, ...] = (
    GpuSpec(r"H100.*PCIe", "H100 PCIe", 350, 51.2, _NVIDIA + " H100 (PCIe)"),
    GpuSpec(r"H100.*NVL", "H100 NVL", 400, 60.0, _NVIDIA + " H100 (NVL)"),
    GpuSpec(r"H100", "H100 SXM", 700, 67.0, _NVIDIA + " H100 (SXM)"),
    GpuSpec(r"H200", "H200 SXM", 700, 67.0, _NVIDIA + " H200 (SXM)"),
    GpuSpec(r"A100.*PCIE.*40", "A100 PCIe 40GB", 250, 19.5, _NVIDIA + " A100 (PCIe 40GB); " + _MLCO2),
    GpuSpec(r"A100.*PCIE", "A100 PCIe 80GB", 300, 19.5, _NVIDIA + " A100 (PCIe 80GB)"),
    GpuSpec(r"A100", "A100 SXM4", 400, 19.5, _NVIDIA + " A100 (SXM4); " + _MLCO2),
    GpuSpec(r"V100.*PCIE", "V100 PCIe", 250, 14.0, _NVIDIA + " Tesla V100 (PCIe)"),
    GpuSpec(r"V100", "V100 SXM2", 300, 15.7, _NVIDIA + " Tesla V100 (SXM2); " + _MLCO2),
    GpuSpec(r"P100", "Tesla P100", 250, 9.526, _MLCO2 + "; the study's GPU"),
    GpuSpec(r"\bT4\b", "Tesla T4", 70, 8.141, _NVIDIA + " T4; " + _MLCO2),
    GpuSpec(r"\bL4\b", "L4", 72, 30.3, _NVIDIA + " L4"),
    GpuSpec(r"\bA10\b", "A10", 150, 31.2, _NVIDIA + " A10"),
    GpuSpec(r"K80", "Tesla K80", 300, 4.113, _MLCO2),
    GpuSpec(r"RTX 4090", "GeForce RTX 4090", 450, 82.6, _NVIDIA + " RTX 4090 spec page"),
    GpuSpec(r"RTX 3090", "GeForce RTX 3090", 350, 35.58, _MLCO2),
    GpuSpec(r"RTX 2080 Ti", "GeForce RTX 2080 Ti", 250, 13.45, _MLCO2),
)


def gpu_spec(device_name: str) -> GpuSpec | None:
    """The table entry for a CUDA device name, or None when the model is not in the table."""
    for spec in GPU_SPECS:
        if re.search(spec.pattern, device_name, flags=re.IGNORECASE):
            return spec
    return None


@dataclass(frozen=True)
class CpuFeatures:
    """What /proc/cpuinfo says about the CPU, enough to compute a float32 peak."""

    model: str
    logical_cores: int
    clock_mhz: float
    flags: frozenset[str]


def parse_cpuinfo(text: str) -> CpuFeatures:
    """Model name, core count, clock and flags from the text of /proc/cpuinfo (x86 layout)."""
    fields: dict[str, str] = {}
    processors = 0
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip()
        if key == "processor":
            processors += 1
        fields.setdefault(key, value.strip())
    return CpuFeatures(
        model=fields.get("model name", "unknown CPU"),
        logical_cores=max(processors, 1),
        clock_mhz=float(fields.get("cpu MHz", 0.0) or 0.0),
        flags=frozenset(fields.get("flags", "").split()),
    )


def read_cpu_features() -> CpuFeatures | None:
    """This machine's :class:`CpuFeatures`, or None off Linux/x86 where /proc/cpuinfo differs."""
    try:
        features = parse_cpuinfo(CPUINFO.read_text())
    except OSError:
        return None
    return features if features.clock_mhz > 0 and features.flags else None


def cpu_model() -> str:
    """The CPU's model name, for the machine line every benchmark result carries."""
    features = read_cpu_features()
    return features.model if features is not None else (platform.processor() or "unknown CPU")


def cpu_peak_macs_per_second(features: CpuFeatures, cores: int) -> float | None:
    """float32 peak MAC/s on ``cores`` cores under the module docstring's assumptions."""
    lanes = next((width for flag, width in SIMD_LANES_FP32 if flag in features.flags), None)
    if lanes is None or features.clock_mhz <= 0:
        return None
    macs_per_lane_per_cycle = 1.0 if "fma" in features.flags else 0.5
    return cores * FMA_UNITS_PER_CORE * lanes * macs_per_lane_per_cycle * features.clock_mhz * 1e6


def gpu_peak_macs_per_second(device_name: str) -> float | None:
    """FP32 peak MAC/s (TFLOPS / 2) of a CUDA device from the table, None when unknown."""
    spec = gpu_spec(device_name)
    return spec.fp32_tflops * 1e12 / 2 if spec is not None else None


@dataclass(frozen=True)
class DevicePeak:
    """The peak a run is compared against and how it was obtained."""

    device: str
    macs_per_second: float | None
    basis: str  # how the number was derived (or why there is none)

    def as_dict(self) -> dict[str, object]:
        return {"device": self.device, "peak_macs_per_second": self.macs_per_second, "basis": self.basis}


def device_peak(device: str, threads: int) -> DevicePeak:
    """Peak MAC/s for ``device`` ("cpu" or "cuda[:i]") with ``threads`` CPU threads."""
    if device.startswith("cuda"):
        import torch

        name = torch.cuda.get_device_name(torch.device(device))
        spec = gpu_spec(name)
        if spec is None:
            return DevicePeak(name, None, f"'{name}' is not in edgessl.hardware.GPU_SPECS")
        return DevicePeak(
            name, spec.fp32_tflops * 1e12 / 2, f"FP32 {spec.fp32_tflops} TFLOPS / 2 ({spec.source})"
        )
    features = read_cpu_features()
    if features is None:
        return DevicePeak("cpu", None, "no x86 /proc/cpuinfo to read flags and clock from")
    peak = cpu_peak_macs_per_second(features, threads)
    lanes = next((width for flag, width in SIMD_LANES_FP32 if flag in features.flags), 0)
    basis = (
        f"{threads} cores x {FMA_UNITS_PER_CORE} FMA units x {lanes} fp32 lanes"
        f"{'' if 'fma' in features.flags else ' x 0.5 (no FMA)'} x {features.clock_mhz:.0f} MHz "
        "(assumed, see device_peak)"
    )
    return DevicePeak(features.model, peak, basis)


def efficiency(
    macs_per_image: float, batch_size: int, seconds: float, peak_macs_per_second: float | None
) -> float | None:
    """Achieved MAC/s of one call as a fraction of the peak (None when the peak is unknown)."""
    if peak_macs_per_second is None or seconds <= 0:
        return None
    return macs_per_image * batch_size / seconds / peak_macs_per_second
