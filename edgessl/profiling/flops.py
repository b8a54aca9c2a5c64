"""Parameter, MAC and FLOP counts, every one cross-checked by a second counter.

Vocabulary, because the field mixes the two up: a MAC is one multiply-accumulate; FLOPs
= 2 x MACs. thop (the study's counter) reports MACs; ``torch.utils.flop_counter``
reports FLOPs of matmuls and convolutions (so its MACs are FLOPs / 2).

The two counters see different things:

- thop hooks modules by *exact* type: it counts conv/linear MACs, and also norm layers
  (2 ops per element), average pools and a few activations; it misses functional calls
  (``torch.matmul``, ``F.linear`` in a ``forward``) and subclasses of known modules
  (timm's ``Conv2dSame``, ``BatchNormAct2d``), which it counts as zero.
- ``FlopCounterMode`` counts every matmul/convolution the autograd dispatcher runs,
  however it was called, and nothing else.

So the cross-check compares like with like: thop's conv/linear share against the flop
counter's MACs. A relative difference above ``TOLERANCE`` is reported (``agrees`` is
False, both numbers kept), never silently resolved; the headline ``macs`` stays thop's
total, the number the study reported.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

TOLERANCE = 0.05  # relative difference above which the counters are said to disagree


@dataclass(frozen=True)
class ParamCount:
    total: int
    trainable: int


def count_parameters(model: nn.Module) -> ParamCount:
    """Total and trainable parameters (shared tensors counted once)."""
    unique = {id(p): p for p in model.parameters()}.values()
    return ParamCount(sum(p.numel() for p in unique), sum(p.numel() for p in unique if p.requires_grad))


@dataclass(frozen=True)
class MacCount:
    """MACs of one image through a model by both counters, and whether they agree."""

    macs: float  # thop total (conv/linear + norm/pool ops); the headline number
    thop_matmul_conv_macs: float  # thop's conv/linear share, the part the flop counter also sees
    flop_counter_macs: float  # torch.utils.flop_counter FLOPs / 2
    relative_difference: float  # |thop share - flop counter| / flop counter
    agrees: bool  # relative_difference <= TOLERANCE

    @property
    def flops(self) -> float:
        """FLOPs = 2 x MACs (of the headline thop count)."""
        return 2.0 * self.macs

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "flops": self.flops}


def _probe(model: nn.Module, image_size: int, in_channels: int) -> tuple[nn.Module, torch.Tensor]:
    """An eval-mode CPU copy (thop adds buffers and hooks) and a single zero image."""
    return copy.deepcopy(model).cpu().eval(), torch.zeros(1, in_channels, image_size, image_size)


def _thop_counts(model: nn.Module, image: torch.Tensor) -> tuple[float, float]:
    """thop's total MACs and the part of it from conv/linear modules."""
    import thop
    from thop.profile import register_hooks
    from thop.vision.basic_hooks import count_convNd, count_linear

    with torch.no_grad():
        total, _, layers = thop.profile(model, (image,), verbose=False, ret_layer_info=True)
    matmul_counters = (count_convNd, count_linear)

    def matmul_share(module: nn.Module, info: Mapping[str, tuple[float, float, dict]]) -> float:
        share = 0.0
        for name, child in module.named_children():
            ops, _, children = info[name]
            hook = register_hooks.get(type(child))
            if hook is not None and not isinstance(child, (nn.Sequential, nn.ModuleList)):
                share += ops if hook in matmul_counters else 0.0
            else:
                share += matmul_share(child, children)
        return share

    return float(total), matmul_share(model, layers)


def _flop_counter_macs(model: nn.Module, image: torch.Tensor) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(image)
    return counter.get_total_flops() / 2.0


def count_macs(model: nn.Module, image_size: int, in_channels: int = 3) -> float:
    """thop's MAC count of one ``image_size`` square image (see :func:`count_compute` for the check)."""
    probe, image = _probe(model, image_size, in_channels)
    return _thop_counts(probe, image)[0]


def count_compute(
    model: nn.Module, image_size: int, in_channels: int = 3, tolerance: float = TOLERANCE
) -> MacCount:
    """MACs of one image by thop, cross-checked against ``torch.utils.flop_counter``."""
    probe, image = _probe(model, image_size, in_channels)
    total, matmul_share = _thop_counts(probe, image)
    reference = _flop_counter_macs(probe, image)
    difference = abs(matmul_share - reference) / reference if reference > 0 else float(matmul_share > 0)
    return MacCount(total, matmul_share, reference, difference, difference <= tolerance)
