"""The compute device a command runs on, named as torch names it and checked before use."""

from __future__ import annotations

import torch

from edgessl.errors import ConfigError

DEVICE_HINT = "use cpu, cuda or cuda:N"


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The requested device, or CUDA when available, else the CPU; a name torch cannot use is a
    ConfigError."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, ValueError):
        raise ConfigError(f"unknown device '{device}'; {DEVICE_HINT}") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device '{device}' asked for, but torch sees no CUDA device; use --device cpu")
    if resolved.type == "cuda" and resolved.index is not None and resolved.index >= torch.cuda.device_count():
        raise ConfigError(
            f"device '{device}' asked for, but torch sees {torch.cuda.device_count()} CUDA device(s)"
        )
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(
            f"device '{device}' asked for, but torch sees no Apple MPS device; use --device cpu"
        )
    if resolved.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"device '{device}' is not supported by edgessl; {DEVICE_HINT}")
    return resolved
