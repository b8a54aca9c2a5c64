"""CPU peak from /proc/cpuinfo under the stated assumptions; GPU table look-ups."""

from __future__ import annotations

import pytest

from edgessl.hardware import (
    cpu_peak_macs_per_second,
    efficiency,
    gpu_peak_macs_per_second,
    gpu_spec,
    parse_cpuinfo,
)

_CPUINFO = """processor\t: 0
model name\t: Test CPU
cpu MHz\t\t: 2300.000
flags\t\t: fpu sse sse2 avx fma avx2 avx512f

processor\t: 1
model name\t: Test CPU
cpu MHz\t\t: 2300.000
flags\t\t: fpu sse sse2 avx fma avx2 avx512f
"""


def test_cpuinfo_is_parsed() -> None:
    features = parse_cpuinfo(_CPUINFO)
    assert (features.model, features.logical_cores, features.clock_mhz) == ("Test CPU", 2, 2300.0)
    assert {"avx512f", "fma"} <= features.flags


def test_cpu_peak_is_cores_x_fma_units_x_lanes_x_clock() -> None:
    avx512 = parse_cpuinfo(_CPUINFO)
    assert cpu_peak_macs_per_second(avx512, cores=2) == 2 * 2 * 16 * 2.3e9
    avx_no_fma = parse_cpuinfo(_CPUINFO.replace(" fma avx2 avx512f", ""))
    assert cpu_peak_macs_per_second(avx_no_fma, cores=1) == 1 * 2 * 8 * 0.5 * 2.3e9


@pytest.mark.parametrize(
    ("device_name", "tdp"),
    [
        ("Tesla P100-PCIE-16GB", 250),
        ("Tesla V100-SXM2-16GB", 300),
        ("NVIDIA A100-SXM4-80GB", 400),
        ("NVIDIA H100 80GB HBM3", 700),
        ("NVIDIA H100 PCIe", 350),
        ("Tesla T4", 70),
    ],
)
def test_gpu_table_lookup_by_cuda_device_name(device_name: str, tdp: float) -> None:
    spec = gpu_spec(device_name)
    assert spec is not None and spec.tdp_w == tdp


def test_unknown_gpu_has_no_peak_and_efficiency_is_fraction_of_peak() -> None:
    assert gpu_spec("Imaginary GPU 9000") is None and gpu_peak_macs_per_second("Imaginary GPU 9000") is None
    assert efficiency(1e9, 32, 1.0, 64e9) == pytest.approx(0.5)
    assert efficiency(1e9, 32, 1.0, None) is None
