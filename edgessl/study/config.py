"""What a study is: methods x backbones x dataset x epochs x protocols, as one dataclass.

A study config is a YAML file (or a registered preset, see :mod:`edgessl.study.presets`)
whose keys are the fields of :class:`StudyConfig`; unknown keys are an error so a typo
never silently changes the grid. The resolved config is written into the study folder,
which is how a resumed study knows it is continuing the same grid.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from edgessl.config import config_from_dict, config_to_dict
from edgessl.errors import ConfigError


@dataclass(frozen=True)
class StudyConfig:
    """One study grid; every cell ``(method, backbone)`` is pretrained then evaluated."""

    methods: tuple[str, ...]
    backbones: tuple[str, ...]
    name: str = "study"
    data: str = "shapes10"  # registered dataset name or image-folder path
    data_root: str | None = None  # where the dataset's files are (None: the loader's default)
    image_size: int | None = None  # None keeps the dataset's native size
    pretext_split: str = "unlabeled"  # the split pretext training sees
    epochs: int = 100
    # every method's named hyper-parameter set (edgessl.methods.recipes); presets pick the one for their epochs
    recipe: str = "paper"
    save_every: int = 5  # a checkpoint (and so a point on Figures 1-2) every N epochs
    batch_size: int | None = None  # None: each method's paper default
    batch_sizes: dict[str, int] = field(default_factory=dict)  # per "method" or "method-backbone"
    lr: float | None = None  # None: each method's paper default, scaled with batch size
    method_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)  # per method: Config fields
    max_steps: int | None = (
        None  # stop each cell after this many optimiser steps (smoke runs); the cell counts as trained
    )
    protocols: tuple[str, ...] = ("finetune",)
    table_protocol: str | None = None  # protocol of Table 1 / Figures 1-2; None: protocols[0]
    eval_options: dict[str, dict[str, Any]] = field(
        default_factory=dict
    )  # per protocol, e.g. {"finetune": {"epochs": 30}}
    out: str = "studies/study"
    seed: int = 0
    precision: str | None = (
        None  # accelerate mixed precision "no", "fp16", "bf16"; None: accelerate's configuration
    )
    device: str | None = None  # evaluation device (None: CUDA when available)

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise ConfigError(f"study '{self.name}': {'; '.join(problems)}")

    @property
    def protocol(self) -> str:
        """The protocol Table 1 and Figures 1-2 report."""
        return self.table_protocol or self.protocols[0]

    def cells(self) -> list[tuple[str, str]]:
        """Every (method, backbone) pair, in the order the runner trains them."""
        return [(method, backbone) for method in self.methods for backbone in self.backbones]

    def batch_size_for(self, method: str, backbone: str) -> int | None:
        """The most specific batch size: ``method-backbone``, then ``method``, then the study's."""
        return self.batch_sizes.get(
            cell_name(method, backbone), self.batch_sizes.get(method, self.batch_size)
        )

    def with_out(self, out: str | Path | None) -> StudyConfig:
        return self if out is None else replace(self, out=str(out))


def cell_name(method: str, backbone: str) -> str:
    """The run-folder name of a cell (``timm:`` names keep a filesystem-safe form)."""
    return f"{method}-{backbone}".replace(":", "_").replace("/", "_")


def _problems(config: StudyConfig) -> list[str]:
    problems = []
    for key in ("methods", "backbones", "protocols"):
        values = getattr(config, key)
        if not values:
            problems.append(f"'{key}' is empty; list at least one")
        elif len(set(values)) != len(values):
            problems.append(f"'{key}' lists a name twice")
    if config.epochs < 1:
        problems.append(f"epochs must be >= 1, got {config.epochs}")
    if config.save_every < 1:
        problems.append(f"save_every must be >= 1, got {config.save_every}")
    if config.table_protocol is not None and config.table_protocol not in config.protocols:
        problems.append(
            f"table_protocol '{config.table_protocol}' is not one of protocols {list(config.protocols)}"
        )
    unknown_options = sorted(set(config.eval_options) - set(config.protocols))
    if unknown_options:
        problems.append(
            f"eval_options for {unknown_options} which are not in protocols {list(config.protocols)}"
        )
    return problems


def study_from_dict(values: dict[str, Any]) -> StudyConfig:
    """Build a config from a mapping (a parsed YAML file); unknown keys name the valid ones."""
    if not isinstance(values, dict):
        raise ConfigError(f"a study config is a mapping of StudyConfig fields, got {type(values).__name__}")
    missing = [key for key in _REQUIRED if key not in values]
    if missing:
        raise ConfigError(
            f"study config lacks {', '.join(missing)}; e.g. 'methods: [simclr, rotnet]' and 'backbones: [shufflenetv2]'"
        )
    return config_from_dict(StudyConfig, values)


_REQUIRED = ("methods", "backbones")


def study_to_dict(config: StudyConfig) -> dict[str, Any]:
    """Plain lists and dicts, ready for YAML (tuples become lists)."""
    return {
        key: list(value) if isinstance(value, tuple) else value
        for key, value in config_to_dict(config).items()
    }


def load_study_file(path: str | Path) -> StudyConfig:
    """Read a YAML study config; a syntax error names the file and line."""
    import yaml

    path = Path(path)
    try:
        values = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"cannot parse study config {path}: {str(exc).splitlines()[0]}; fix the YAML syntax"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read study config {path}: {exc.strerror}") from None
    values = values or {}
    if isinstance(values, dict):
        values.setdefault("name", path.stem)
    return study_from_dict(values)


def dump_study(config: StudyConfig) -> str:
    import yaml

    return yaml.safe_dump(study_to_dict(config), sort_keys=False)
