"""Outside weights into an edgessl encoder: a plain state dict saved by torchvision, timm or edgessl.

An edgessl encoder wraps the torchvision or timm network it was built from (``Encoder.features``
holds that network's modules), so its parameter names differ from the library's:
torchvision's ``layer1.0.conv1.weight`` is the encoder's ``features.4.0.conv1.weight``.
Each encoder records, at construction, which library key each of its tensors was
(:class:`WeightLayout`, found by tensor identity -- no per-backbone key tables to keep
in sync), and which library modules it dropped (the classifier). A file is accepted in
either layout: the library's (e.g. ``torchvision.models.resnet18().state_dict()``) or the
encoder's own (``encoder.state_dict()``). Classifier weights are skipped and reported;
anything else that does not fit is a one-line :class:`~edgessl.errors.CheckpointError`
listing the missing and unexpected keys.

Reading is safe by construction: ``.safetensors`` through the safetensors library (tensors
only, nothing executable), any other file through ``torch.load(weights_only=True)``. The
usual wrappers are removed: ``{"state_dict": ...}`` / ``{"model": ...}`` nesting and the
``module.`` (DDP) / ``_orig_mod.`` (torch.compile) prefixes, with timm's ``clean_state_dict``.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgessl.backbones.layout import WeightLayout
from edgessl.errors import CheckpointError

SHOWN_KEYS = 4  # keys listed per category in an error message; the rest are counted
NESTING_KEYS = ("state_dict", "model")  # where training scripts usually put the weights


@dataclass(frozen=True)
class LoadedWeights:
    """What :func:`load_backbone_weights` did."""

    path: Path
    layout: str  # the layout the file was in: a library's name or "edgessl encoder"
    tensors: int  # tensors loaded (every one of the encoder's)
    skipped: tuple[str, ...]  # classifier keys in the file that the encoder has no place for

    def summary(self) -> str:
        skipped = (
            f", skipped {len(self.skipped)} classifier tensors ({_listed(self.skipped)})"
            if self.skipped
            else ""
        )
        return f"{self.path.name}: {self.tensors} tensors in {self.layout} layout{skipped}"


def _listed(keys) -> str:
    keys = sorted(keys)
    more = f" and {len(keys) - SHOWN_KEYS} more" if len(keys) > SHOWN_KEYS else ""
    return ", ".join(keys[:SHOWN_KEYS]) + more


def read_state_dict(path: str | Path) -> dict[str, Any]:
    """The ``{key: tensor}`` in ``path``: safetensors, or a PyTorch file read with ``weights_only=True``."""
    from timm.models import clean_state_dict

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # torch's text suggests weights_only=False, which edgessl never uses
        raise CheckpointError(
            f"cannot read weights {path}: it holds Python objects other than tensors, which edgessl never "
            "unpickles. Save a state dict with safetensors.torch.save_file (preferred) or "
            "torch.save(model.state_dict())."
        ) from None
    except Exception as exc:  # noqa: BLE001 - safetensors and torch raise many types for foreign or truncated files
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(
            f"cannot read weights {path}: {reason[:200]}. "
            "Save a state dict with safetensors.torch.save_file (preferred) or torch.save."
        ) from None
    if isinstance(state, dict) and state.get("format") == "edgessl-checkpoint":
        raise CheckpointError(
            f"{path} is an edgessl checkpoint, not a plain state dict; "
            "pass it as the checkpoint, without --weights"
        )
    for key in NESTING_KEYS:
        if (
            isinstance(state, dict)
            and isinstance(state.get(key), dict)
            and not any(isinstance(v, torch.Tensor) for v in state.values())
        ):
            state = state[key]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, not a state dict of named tensors")
    return clean_state_dict(state)


def load_backbone_weights(encoder: nn.Module, path: str | Path) -> LoadedWeights:
    """Load the state dict in ``path`` into ``encoder`` (an :class:`~edgessl.backbones.Encoder`), in place.

    The file may use the encoder's upstream library layout (torchvision or timm key names)
    or edgessl's own; the layout matching more of its keys is used. Every encoder tensor
    must be present with its shape; library classifier weights are skipped.
    """
    path = Path(path)
    state = read_state_dict(path)
    own = encoder.state_dict()
    library: WeightLayout | None = getattr(encoder, "weight_layout", None)
    layouts = [] if library is None else [(library.library, library.to_encoder, library.head_prefixes)]
    # second: a tie (MobileNetV2's keys agree) goes to the library
    layouts.append(("edgessl encoder", {key: key for key in own}, ()))
    name, mapping, heads = max(layouts, key=lambda layout: sum(key in layout[1] for key in state))
    mapped, skipped, unexpected = {}, [], []
    for key, value in state.items():
        if key in mapping and isinstance(value, torch.Tensor):
            mapped[mapping[key]] = value
        elif key.startswith(heads):
            skipped.append(key)
        else:
            unexpected.append(key)
    missing = [key for key in own if key not in mapped]
    wrong = [
        f"{key} {tuple(mapped[key].shape)} vs {tuple(own[key].shape)}"
        for key in own
        if key in mapped and mapped[key].shape != own[key].shape
    ]
    backbone = getattr(getattr(encoder, "spec", None), "name", type(encoder).__name__)
    problems = [
        f"{label} {len(keys)} keys ({_listed(keys)})"
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape for", wrong))
        if keys
    ]
    if problems:
        raise CheckpointError(
            f"{path.name} does not fit backbone '{backbone}' (read as {name} layout): {'; '.join(problems)}. "
            "Check --backbone, or save the network's own state_dict() "
            f"({library.library if library else 'edgessl'} layout)."
        )
    encoder.load_state_dict(mapped, strict=True)
    return LoadedWeights(path, name, len(mapped), tuple(sorted(skipped)))


def weights_representation(
    backbone: str, path: str | Path, mean: tuple[float, ...], std: tuple[float, ...]
) -> tuple[nn.Module, LoadedWeights]:
    """``Normalize(mean, std)`` + the encoder ``backbone`` with the weights in ``path``: what eval and
    export consume.

    ``mean``/``std`` must be the normalisation the weights were trained with (ImageNet's for
    torchvision and timm ImageNet weights).
    """
    from edgessl.backbones import build_backbone
    from edgessl.backbones.base import Normalize, Representation

    encoder = build_backbone(backbone)
    loaded = load_backbone_weights(encoder, path)
    return Representation(Normalize(tuple(mean), tuple(std)), encoder, encoder.feature_dim).eval(), loaded
