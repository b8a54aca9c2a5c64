"""``--weights FILE``: the options ``eval``, ``export`` and ``profile`` share for outside weights.

Not a command: the command modules call :func:`add_weights_options` and
:func:`normalization`. Loading is :func:`edgessl.backbones.load_backbone_weights`.
"""

from __future__ import annotations

import argparse

IMAGENET_MEAN, IMAGENET_STD = "0.485,0.456,0.406", "0.229,0.224,0.225"


def add_weights_options(
    parser: argparse.ArgumentParser, with_backbone: bool = True, with_normalization: bool = True
) -> None:
    group = parser.add_argument_group("outside weights (a plain state dict instead of an edgessl checkpoint)")
    group.add_argument(
        "--weights",
        metavar="FILE",
        help="state dict of the backbone: .safetensors (preferred) or .pth/.pt "
        "(read with torch.load(weights_only=True)); "
        "torchvision, timm and edgessl key names are all accepted",
    )
    if with_backbone:
        group.add_argument(
            "--backbone", help="the backbone the weights are for (e.g. resnet18, timm:mobilenetv4_conv_small)"
        )
    if not with_normalization:
        return
    group.add_argument(
        "--mean",
        help=f"per-channel mean the weights were trained with, R,G,B in [0, 1] (ImageNet: {IMAGENET_MEAN}; "
        "default: the dataset's)",
    )
    group.add_argument(
        "--std", help=f"per-channel std, R,G,B (ImageNet: {IMAGENET_STD}; default: the dataset's)"
    )


def _rgb(text: str | None, flag: str) -> tuple[float, float, float] | None:
    from edgessl.errors import ConfigError

    if text is None:
        return None
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or (flag == "--std" and min(values) <= 0):
        raise ConfigError(
            f"{flag} takes three numbers R,G,B{' above 0' if flag == '--std' else ''}, "
            f"e.g. {IMAGENET_MEAN if flag == '--mean' else IMAGENET_STD}; "
            f"got '{text}'"
        )
    return values  # type: ignore[return-value]


def normalization(
    args: argparse.Namespace,
) -> tuple[tuple[float, float, float] | None, tuple[float, float, float] | None]:
    """``(mean, std)`` from ``--mean``/``--std`` (None where not given: the dataset's statistics are used)."""
    from edgessl.errors import ConfigError

    mean, std = _rgb(args.mean, "--mean"), _rgb(args.std, "--std")
    if (mean is None) != (std is None):
        raise ConfigError("give --mean and --std together (the normalisation the weights were trained with)")
    if mean is not None and not args.weights:
        raise ConfigError("--mean/--std describe outside weights; they need --weights FILE")
    return mean, std
