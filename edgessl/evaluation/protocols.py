"""The protocol registry: a name, its options dataclass, and the function that runs it.

Adding a protocol is one module that registers a :class:`Protocol`; the CLI, the sweep
and the study read the registry, and options are validated against the dataclass so a
typo (``--epoch``) fails with the list of valid options instead of being ignored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from edgessl.config import config_from_dict
from edgessl.data.base import ImageDataset
from edgessl.errors import ConfigError, DataError
from edgessl.evaluation.features import FeatureCache
from edgessl.evaluation.results import EvalResult
from edgessl.registry import Registry

# (features of the model under test, train, test, options) -> EvalResult
ProtocolFn = Callable[[FeatureCache, ImageDataset, ImageDataset, Any], EvalResult]


@dataclass(frozen=True)
class Protocol:
    """A downstream evaluation: ``options`` is a dataclass whose defaults are documented."""

    options: type
    run: ProtocolFn
    summary: str

    def option_names(self) -> set[str]:
        return {f.name for f in dataclasses.fields(self.options)}

    def make_options(self, values: Mapping[str, Any]) -> Any:
        return config_from_dict(self.options, dict(values))


PROTOCOLS: Registry[Protocol] = Registry("protocol")


def options_for(protocols: Iterable[str], options: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Split one set of options among protocols: each gets those its dataclass knows.

    ``--protocol knn,linear --k 20 --epochs 50`` gives ``k`` to kNN and ``epochs`` to
    the probe; an option no requested protocol knows is an error.
    """
    names = list(protocols)
    known = {name: PROTOCOLS.get(name).option_names() for name in names}
    unused = sorted(set(options) - set().union(*known.values())) if names else sorted(options)
    if unused:
        valid = ", ".join(sorted(set().union(*known.values()))) or "none"
        raise ConfigError(
            f"option(s) {', '.join(unused)} apply to none of the protocols {', '.join(names)}; valid: {valid}"
        )
    split = {name: {key: value for key, value in options.items() if key in known[name]} for name in names}
    for name, values in split.items():
        PROTOCOLS.get(name).make_options(values)  # an out-of-range value fails here, before any model loads
    return split


def require_labels(dataset: ImageDataset, role: str) -> torch.Tensor:
    """The labels of a split used for evaluation; unlabelled splits never enter a kNN bank or a head."""
    if dataset.labels is None:
        raise DataError(
            f"the {role} split '{dataset.split}' of {dataset.name} is unlabelled; evaluation needs labels "
            "(use the 'train' and 'test' splits, not 'unlabeled')"
        )
    return dataset.labels


def evaluate_representation(
    model: nn.Module,
    train: ImageDataset,
    test: ImageDataset,
    protocol: str,
    device: str | torch.device | None = None,
    *,
    features: FeatureCache | None = None,
    **options: Any,
) -> EvalResult:
    """Evaluate a feature extractor ([0, 1] RGB -> features) with one registered protocol.

    ``train`` is the labelled downstream training split (kNN bank, probe or fine-tuning
    data) and ``test`` the labelled split accuracy is measured on. ``options`` are the
    fields of the protocol's options dataclass (e.g. ``k``, ``metric``, ``epochs``).
    Pass one ``features`` cache (of this model) to several calls to extract features once.
    """
    if features is None:
        features = FeatureCache(model, device)
    elif features.model is not model:
        raise ValueError("the feature cache belongs to another model")
    entry = PROTOCOLS.get(protocol)
    require_labels(train, "training")
    require_labels(test, "test")
    if train.num_classes != test.num_classes:
        raise DataError(
            f"train has {train.num_classes} classes but test has {test.num_classes}; "
            "use two splits of one dataset"
        )
    return entry.run(features, train, test, entry.make_options(options))
