"""Experiment trackers (TensorBoard, Weights & Biases, MLflow) through Hugging Face Accelerate.

``--log-with tensorboard,wandb`` (or ``all``) becomes ``Accelerator(log_with=...)``;
every scalar the run writes to ``metrics.jsonl`` is also sent to ``accelerator.log``,
which only the main process carries out. Files stay in the run folder: TensorBoard
event files under ``RUN/trackers/``, W&B's offline run under ``RUN/wandb/`` (mode from
``WANDB_MODE``, default ``offline``: clusters rarely have network, and ``wandb sync``
uploads later), MLflow's local file store under ``RUN/mlruns/`` unless
``MLFLOW_TRACKING_URI`` points elsewhere (the file store needs no database server;
MLflow 3 keeps it in maintenance mode behind ``MLFLOW_ALLOW_FILE_STORE``).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from edgessl.errors import ConfigError, EdgesslError

# tracker -> (module that must be importable, the extra that installs it)
TRACKERS = {
    "tensorboard": ("tensorboard", "tensorboard"),
    "wandb": ("wandb", "wandb"),
    "mlflow": ("mlflow", "mlflow"),
}
TRACKER_DIR = "trackers"


def tracker_names(log_with: str | None) -> list[str]:
    """``"tensorboard,wandb"`` / ``"all"`` / ``None`` -> the tracker names, each checked to be installed."""
    if not log_with:
        return []
    names = (
        list(TRACKERS)
        if log_with == "all"
        else [name.strip() for name in log_with.split(",") if name.strip()]
    )
    unknown = [name for name in names if name not in TRACKERS]
    if unknown:
        raise ConfigError(
            f"unknown tracker {', '.join(unknown)} for --log-with; choose from {', '.join(TRACKERS)} or all"
        )
    installed = [name for name in names if log_with != "all" or importlib.util.find_spec(TRACKERS[name][0])]
    for name in installed:
        module, extra = TRACKERS[name]
        if importlib.util.find_spec(module) is None:
            raise ConfigError(f"--log-with {name} needs the {module} package: pip install 'edgessl[{extra}]'")
    if not installed:
        raise ConfigError("--log-with all found no tracker installed: pip install 'edgessl[trackers]'")
    return installed


def tracker_init_kwargs(run_dir: Path) -> dict[str, dict[str, Any]]:
    """Where each tracker writes: inside the run folder, and offline unless the user says otherwise."""
    if "MLFLOW_TRACKING_URI" not in os.environ:
        os.environ["MLFLOW_TRACKING_URI"] = (run_dir / "mlruns").resolve().as_uri()
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return {"wandb": {"dir": str(run_dir), "mode": os.environ.get("WANDB_MODE", "offline")}, "mlflow": {}}


def flat_config(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config as ``a.b`` keys with scalar values (what trackers store as hyper-parameters)."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(flat_config(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = (
                value if isinstance(value, (bool, int, float, str)) or value is None else str(value)
            )
    return flat


def start_trackers(accelerator: Any, run_dir: Path, log_with: str | None, config: dict[str, Any]) -> None:
    """``accelerator.init_trackers`` with the run's config as hyper-parameters; a failure is one line."""
    if not accelerator.log_with:
        return
    try:
        accelerator.init_trackers(
            run_dir.name, config=flat_config(config), init_kwargs=tracker_init_kwargs(run_dir)
        )
    except Exception as exc:  # noqa: BLE001 (each tracker library raises its own types)
        first = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        raise EdgesslError(f"could not start --log-with {log_with}: {first}") from None


def log_records(accelerator: Any, records: list[dict[str, Any]]) -> None:
    """Every numeric field of each ``metrics.jsonl`` record to the started trackers, at its step."""
    for record in records:
        scalars = {k: v for k, v in record.items() if k != "step" and isinstance(v, (int, float))}
        accelerator.log(scalars, step=record["step"])
