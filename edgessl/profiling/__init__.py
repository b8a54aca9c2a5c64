"""What an encoder costs, each figure cross-checked: ``edgessl profile``'s library.

- :mod:`~edgessl.profiling.flops`: parameters; MACs by thop checked against torch.utils.flop_counter
- :mod:`~edgessl.profiling.latency`: eager / channels_last / ONNX Runtime latency side by side
- :mod:`~edgessl.profiling.training_cost`: measured pretraining images/s, projected to epochs
- :mod:`edgessl.energy` (:class:`EnergyMeter`: NVML or a stated TDP model, and CO2) and
  :mod:`edgessl.hardware` (the device's peak MAC/s) sit below profiling and training, which both use them
- :mod:`~edgessl.profiling.report`: all of it as one JSON document with a versioned schema
- :mod:`~edgessl.profiling.tables`: that document as rich tables, for a terminal
"""

from edgessl.energy import EnergyMeter, EnergyReport
from edgessl.profiling.flops import MacCount, count_compute, count_macs, count_parameters

__all__ = ["EnergyMeter", "EnergyReport", "MacCount", "count_compute", "count_macs", "count_parameters"]
