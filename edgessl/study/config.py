"""What a study is: methods x backbones x one pretraining run's settings x protocols, as one dataclass.

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
from edgessl.training.config import TrainConfig


def _default_train() -> TrainConfig:
    return TrainConfig(data="shapes10", split="unlabeled", epochs=100, save_every=5)


@dataclass(frozen=True)
class StudyConfig:
    """One study grid; every cell ``(method, backbone)`` is pretrained then evaluated.

    ``train`` is every cell's pretraining run, a :class:`~edgessl.training.config.TrainConfig`
    (any ``edgessl train`` option: data, image size, epochs, recipe, checkpoint cadence, seed,
    precision, ``grad_accum``, ``deterministic``, ``time_budget_s``, ...); each cell sets its own
    ``method``, ``backbone`` and ``out``, and ``batch_sizes`` / ``method_overrides`` refine it per
    method or cell. Evaluation (``protocols``) reads the same ``train.data`` at ``train.image_size``.
    ``seeds`` trains every cell several times (a count from ``train.seed``, or a list), so that
    Table 1 reports each number with its interval over seeds.
    """

    methods: tuple[str, ...]
    backbones: tuple[str, ...]
    name: str = "study"
    train: TrainConfig = field(default_factory=_default_train)
    batch_sizes: dict[str, int] = field(default_factory=dict)  # per "method" or "method-backbone"
    method_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)  # per method: Config fields
    protocols: tuple[str, ...] = ("finetune",)
    table_protocol: str | None = None  # protocol of Table 1 / Figures 1-2; None: protocols[0]
    # per protocol, e.g. {"finetune": {"epochs": 30}}
    eval_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    out: str = "studies/study"
    device: str | None = None  # evaluation device (None: CUDA when available)
    # How often every cell is trained: N seeds from train.seed (train.seed, train.seed + 1, ...) or a list
    seeds: int | tuple[int, ...] = 1

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise ConfigError(f"study '{self.name}': {'; '.join(problems)}")

    @property
    def protocol(self) -> str:
        """The protocol Table 1 and Figures 1-2 report."""
        return self.table_protocol or self.protocols[0]

    def cells(self) -> list[tuple[str, str]]:
        """Every (method, backbone) pair, in grid order."""
        return [(method, backbone) for method in self.methods for backbone in self.backbones]

    def seed_values(self) -> tuple[int, ...]:
        """The pretraining seeds every cell is trained with."""
        if isinstance(self.seeds, int):
            return tuple(range(self.train.seed, self.train.seed + self.seeds))
        return self.seeds

    def units(self) -> list[Unit]:
        """Every (method, backbone, seed) run, in the order the runner trains them: seed by seed,
        so a study stopped part-way has whole grids of the first seeds."""
        return [
            Unit(method, backbone, seed) for seed in self.seed_values() for method, backbone in self.cells()
        ]

    def batch_size_for(self, method: str, backbone: str) -> int | None:
        """The most specific batch size: ``method-backbone``, then ``method``, then ``train.batch_size``."""
        return self.batch_sizes.get(
            cell_name(method, backbone), self.batch_sizes.get(method, self.train.batch_size)
        )

    def with_out(self, out: str | Path | None) -> StudyConfig:
        return self if out is None else replace(self, out=str(out))


@dataclass(frozen=True)
class Unit:
    """One pretraining run of a study: a cell trained with one seed."""

    method: str
    backbone: str
    seed: int

    @property
    def cell(self) -> str:
        return cell_name(self.method, self.backbone)

    @property
    def name(self) -> str:
        """Its run folder's name under ``STUDY/runs/``."""
        return f"{self.cell}-seed{self.seed}"


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
    if isinstance(config.seeds, int) and config.seeds < 1:
        problems.append(f"'seeds' is {config.seeds}; train every cell at least once (seeds: 1)")
    elif isinstance(config.seeds, tuple):
        if not config.seeds:
            problems.append("'seeds' is an empty list; give a count (seeds: 3) or at least one seed")
        elif len(set(config.seeds)) != len(config.seeds):
            problems.append("'seeds' lists a seed twice")
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
    moved = sorted(set(values) & _MOVED_UNDER_TRAIN)
    if moved:
        raise ConfigError(
            f"study config: {', '.join(moved)} now go under 'train:', as edgessl train options "
            f"(e.g. 'train: {{epochs: 100, image_size: 96}}'; pretext_split is train.split)"
        )
    missing = [key for key in _REQUIRED if key not in values]
    if missing:
        raise ConfigError(
            f"study config lacks {', '.join(missing)}; "
            "e.g. 'methods: [simclr, rotnet]' and 'backbones: [shufflenetv2]'"
        )
    return config_from_dict(StudyConfig, values)


_REQUIRED = ("methods", "backbones")
# Keys of the flat schema before ``train`` (edgessl 0.1), named in the error that says where they went.
_MOVED_UNDER_TRAIN = {
    "data", "data_root", "image_size", "pretext_split", "epochs", "save_every", "batch_size", "lr",
    "max_steps", "seed", "precision", "recipe",
}  # fmt: skip


def study_to_dict(config: StudyConfig) -> dict[str, Any]:
    """Plain lists and dicts, ready for YAML (tuples become lists)."""
    return {
        key: list(value) if isinstance(value, tuple) else value
        for key, value in config_to_dict(config).items()
    }


def load_study_file(path: str | Path) -> StudyConfig:
    """Read a YAML study config; a syntax error names the file and line."""
    import yaml

    from edgessl.textfiles import load_yaml, read_text

    path = Path(path)
    try:
        values = load_yaml(read_text(path, "study config"), str(path))
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
