"""What a study refuses before any cell trains: a wrong name, a cell trained with other settings,
a folder laid out by an older edgessl. Each would otherwise fail, or silently mix results, hours
into the study."""

from __future__ import annotations

from pathlib import Path

from edgessl.errors import ConfigError
from edgessl.study.cell import resolve_cell
from edgessl.study.config import StudyConfig, Unit, cell_name
from edgessl.study.folder import RUNS_DIR


def validate_names(config: StudyConfig) -> None:
    """Fail before any training when a method, its recipe, a backbone, protocol or protocol option is
    wrong."""
    from edgessl.backbones import BACKBONES, TIMM_PREFIX, backbone_names
    from edgessl.evaluation import PROTOCOLS
    from edgessl.methods import METHODS, method_names

    method_names()  # imports the method modules, which fills the registry
    backbone_names()  # likewise for the backbone families
    for name in config.methods:
        METHODS.get(name)
        first = Unit(name, config.backbones[0], config.seed_values()[0])
        teacher = getattr(resolve_cell(config, first, Path(config.out)).method, "teacher", None)
        if teacher is not None and not teacher.source:
            raise ConfigError(
                f"study: {name} distils from a teacher; name it under method_overrides, e.g. "
                f"'method_overrides: {{{name}: {{teacher: {{source: runs/simclr-resnet18}}}}}}' "
                "(a run folder or checkpoint, or a backbone with weights: FILE)"
            )
    for name in config.backbones:
        if not name.startswith(TIMM_PREFIX):
            BACKBONES.get(name)
    for name in config.protocols:
        PROTOCOLS.get(name).make_options(config.eval_options.get(name, {}))
    if config.device is not None:  # before the first cell trains, not when it is first evaluated (D10)
        from edgessl.devices import resolve_device

        resolve_device(config.device)


def refuse_changed_cells(config: StudyConfig, root: Path) -> None:
    """A ConfigError when a cell already trained in ``root`` was trained with other settings than
    ``config`` asks.

    Finished cells are skipped and unfinished ones resumed, so a changed setting (an
    image size, a learning rate, a method override) would otherwise keep the old
    results under the new ``study.yaml``. Only what a resume may change (more epochs,
    where the data is, how often to save) may differ.
    """
    from edgessl.checkpoints import load_checkpoint
    from edgessl.runs import RunFolder
    from edgessl.training.config import RESUMABLE
    from edgessl.training.resume import config_differences

    for unit in config.units():
        run_dir = root / RUNS_DIR / unit.name
        last = RunFolder(run_dir).last
        if not last.is_file():
            continue
        saved = load_checkpoint(last, mmap=True)["metadata"].get("train_config")  # metadata only
        if saved is None:  # written without one (an edgessl before checkpoints held it): nothing to compare
            continue
        resolved = resolve_cell(config, unit, run_dir).train
        changed = {
            key: pair for key, pair in config_differences(saved, resolved).items() if key not in RESUMABLE
        }
        if changed:
            listed = "; ".join(f"{key} {was!r} then, {now!r} now" for key, (was, now) in changed.items())
            raise ConfigError(
                f"{unit.name} in {root} was trained with other settings ({listed}): "
                f"give the changed study another --out, or delete {run_dir} to train that cell again"
            )


def refuse_unseeded_layout(config: StudyConfig, root: Path) -> None:
    """A ConfigError for a study folder from before seeds were an axis (``runs/<method>-<backbone>/``).

    Its cells would otherwise be silently ignored and trained again under new names.
    """
    old = [root / RUNS_DIR / cell_name(m, b) for m, b in config.cells()]
    found = [path for path in old if path.is_dir()]
    if found:
        seed = config.seed_values()[0]
        raise ConfigError(
            f"{root} holds cells without a seed in their name ({found[0].name}, from an older edgessl); "
            f"rename each runs/<method>-<backbone> to runs/<method>-<backbone>-seed{seed} (it was trained "
            "with train.seed), or give this study another --out"
        )
