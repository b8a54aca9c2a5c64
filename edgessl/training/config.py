"""The configuration of one pretraining run (typed resolution lives in :mod:`edgessl.config`)."""

from __future__ import annotations

import dataclasses
import math
import string
from typing import Any

from edgessl.errors import ConfigError

PRECISIONS = ("no", "bf16", "fp16")  # accelerate's mixed_precision values
OUT_FIELDS = ("method", "backbone")  # what `out` may name in braces
PER_CALL_LIMITS = ("max_steps", "time_budget_s")  # not taken from a run's config.yaml on --resume
WATCHING = ("monitor_every", "log_with", "log_every", "plots")  # how the run is watched, not what it trains
# what a resume may change (edgessl.training.resume); every other field would be recorded but not applied
RESUMABLE = ("epochs", "save_every", "data_root", "deterministic", *WATCHING, *PER_CALL_LIMITS)


def out_template_problem(out: str) -> str | None:
    """Why ``out`` is not a valid run-folder template (``runs/{method}-{backbone}``), or None.

    Only ``{method}`` and ``{backbone}`` are filled in; any other brace (``{x}``, ``{}``, an
    unclosed ``{method``) would fail or surprise at ``str.format`` time, after the run began.
    """
    hint = "use {method} and {backbone} only, and {{ }} for literal braces"
    try:
        parts = [(field, spec, conversion) for _, field, spec, conversion in string.Formatter().parse(out)]
    except ValueError as exc:
        return f"out '{out}' is not a valid folder template ({exc}): {hint}"
    for field, spec, conversion in parts:
        if field is not None and (field not in OUT_FIELDS or spec or conversion):
            return (
                f"out '{out}' names {{{field}"
                f"{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}}: {hint}"
            )
    return None


@dataclasses.dataclass
class TrainConfig:
    """One pretraining run, as ``edgessl train`` flags, a YAML file or the study runner give it.

    ``None`` means "the method's paper default" (batch size, learning rate) or "the
    dataset's native size" (image size). ``lr`` is the rate for the method's reference
    batch size, moved to the run's batch size by the method's ``optimizer.lr_scaling``
    (linear, or SimCLR's square root), as the papers do.
    """

    method: str = "simclr"
    backbone: str = "shufflenetv2"
    data: str = "shapes10"
    data_root: str | None = None
    split: str = "unlabeled"
    image_size: int | None = None
    epochs: int = 100
    batch_size: int | None = None  # global batch per optimiser step (all processes, all accumulation steps)
    lr: float | None = None
    save_every: int = 5
    out: str = "runs/{method}-{backbone}"
    seed: int = 0
    # mixed precision: None keeps accelerate's configuration (`accelerate config`, `accelerate
    # launch --mixed_precision`; "no" outside accelerate launch); a value overrides it
    precision: str | None = None
    grad_accum: int = 1
    deterministic: bool = False
    # stop after this many optimiser steps in all (the schedule still spans `epochs`)
    max_steps: int | None = None
    time_budget_s: float | None = None  # stop (and save) once this much training time has passed in all
    weights: str | None = None  # a plain state dict (.safetensors, or .pth) to start the encoder from
    # the method's named hyper-parameter set (edgessl.methods.recipes): "paper" or "short" (100-300 epochs)
    recipe: str = "paper"
    # merged into the method's Config
    method_overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    # Watching the run (edgessl.training.monitor, .tracking, .progress, .plots); none changes what is trained.
    monitor_every: int = 1  # epochs between online kNN / collapse measurements; 0 turns them off
    log_with: str | None = None  # trackers: tensorboard, wandb, mlflow (comma-separated) or all
    log_every: int = 50  # steps between plain log lines when output is not a terminal (also every 60 s)
    plots: bool = True  # write RUN/plots/*.png at the end of training

    def __post_init__(self) -> None:
        problems = [
            message
            for failed, message in (
                (self.epochs < 1, f"epochs must be at least 1 (got {self.epochs})"),
                (
                    self.monitor_every < 0,
                    f"monitor_every must be 0 (off) or positive (got {self.monitor_every})",
                ),
                (self.log_every < 1, f"log_every must be at least 1 (got {self.log_every})"),
                (self.save_every < 1, f"save_every must be at least 1 (got {self.save_every})"),
                (self.grad_accum < 1, f"grad_accum must be at least 1 (got {self.grad_accum})"),
                (
                    self.precision is not None and self.precision not in PRECISIONS,
                    f"precision must be one of {', '.join(PRECISIONS)} (got '{self.precision}')",
                ),
                (
                    self.batch_size is not None and self.batch_size < 1,
                    f"batch_size must be positive (got {self.batch_size})",
                ),
                (
                    self.lr is not None and not (self.lr > 0 and math.isfinite(self.lr)),
                    f"lr must be a positive finite number (got {self.lr})",
                ),
                (
                    self.time_budget_s is not None
                    and not (self.time_budget_s > 0 and math.isfinite(self.time_budget_s)),
                    f"time_budget_s must be a positive number of seconds (got {self.time_budget_s})",
                ),
                (out_template_problem(self.out) is not None, str(out_template_problem(self.out))),
                (
                    self.max_steps is not None and self.max_steps < 1,
                    f"max_steps must be at least 1 (got {self.max_steps})",
                ),
                (
                    self.image_size is not None and self.image_size < 8,
                    f"image_size must be at least 8 (got {self.image_size})",
                ),
            )
            if failed
        ]
        if problems:
            raise ConfigError("; ".join(problems))

    @property
    def run_dir(self) -> str:
        """``out`` with ``{method}`` and ``{backbone}`` filled in (``timm:`` names made path-safe)."""
        backbone = self.backbone.replace(":", "_").replace("/", "_")
        return self.out.format(method=self.method, backbone=backbone)
