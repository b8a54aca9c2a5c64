"""``edgessl train --method simclr --backbone shufflenetv2 --data stl10 --epochs 200``: pretrain an encoder.

Configuration precedence: command-line flags over a ``--config`` YAML file over the
method's paper defaults; ``--set KEY=VALUE`` changes a field of the method's config
(``--set temperature=0.2``, ``--set optimizer.name=lars``). ``--resume`` continues the
run in ``--out`` from its newest checkpoint and, without ``--config``, starts from the run's
own ``config.yaml`` (without its ``max_steps``/``time_budget_s``: give them again); it may
change only :data:`edgessl.training.config.RESUMABLE`: ``--epochs``, ``--save-every``,
``--data-root``, ``--deterministic``, how the run is watched (``--monitor-every``,
``--log-with``, ``--log-every``, ``--no-plots``) and those limits. ``--print-config``
prints the resolved configuration and exits.
Several processes: ``accelerate launch -m edgessl train ...`` (see :data:`LAUNCHING`).
"""

from __future__ import annotations

import argparse
import textwrap

from edgessl.cli.data_columns import add_column_options, data_with_columns

LAUNCHING = """several GPUs, CPU processes or machines (one process per GPU; --batch-size stays global):
  accelerate config                                   # once per machine: GPUs, machines, mixed precision
  accelerate launch -m edgessl train --method simclr ...          # then: with that configuration
  accelerate launch --multi_gpu --num_processes 4 -m edgessl train ...   # or flags instead of a config
  accelerate launch --multi_gpu --num_processes 2 -m edgessl train ...   # 2 CPU processes (gloo), no GPU
  torchrun --nproc-per-node 2 -m edgessl train ...                       # the same with torchrun
  several machines: on each, accelerate launch --multi_gpu --num_machines M --machine_rank R \\
    --main_process_ip HOST --main_process_port 29500 --num_processes TOTAL -m edgessl train ...
--precision overrides accelerate's mixed precision only when given. The start-up line says how many
processes training got; accelerate launch --cpu starts only one (edgessl refuses it with N > 1)."""

# (TrainConfig field, flag, type, help); `None` defaults so the YAML file and the run's config.yaml show
# through
FLAGS = (
    ("method", "--method", str, "self-supervised method (default simclr)"),
    ("backbone", "--backbone", str, "encoder architecture (default shufflenetv2; see 'edgessl backbones')"),
    (
        "data",
        "--data",
        str,
        (
            "dataset name, image-folder path, hf:PATH_OR_NAME (Hugging Face) or wds:PATTERN "
            "(WebDataset shards); default shapes10"
        ),
    ),
    ("data_root", "--data-root", str, "folder holding the dataset's files (e.g. the one with stl10_binary/)"),
    ("split", "--split", str, "pretext split (default unlabeled)"),
    ("image_size", "--image-size", int, "training image size (default: the dataset's native size)"),
    ("epochs", "--epochs", int, "epochs over the pretext split (default 100)"),
    (
        "recipe",
        "--recipe",
        str,
        "the method's hyper-parameter set (default paper; short: 100-300 epochs at batch 256, 32-96 px)",
    ),
    (
        "batch_size",
        "--batch-size",
        int,
        "global batch per optimiser step (default: the method's paper value)",
    ),
    (
        "lr",
        "--lr",
        float,
        (
            "learning rate for the method's reference batch size, scaled to --batch-size by the "
            "method's optimizer.lr_scaling (linear; SimCLR: square root)"
        ),
    ),
    ("save_every", "--save-every", int, "keep a checkpoint every N epochs (default 5), plus last.pt"),
    ("out", "--out", str, "run folder (default runs/{method}-{backbone})"),
    ("seed", "--seed", int, "random seed (default 0)"),
    (
        "precision",
        "--precision",
        str,
        "mixed precision: no, bf16 or fp16 (default: accelerate's configuration, see below; no outside it)",
    ),
    ("grad_accum", "--grad-accum", int, "gradient accumulation steps per optimiser step (default 1)"),
    ("max_steps", "--max-steps", int, "stop after this many optimiser steps in all (smoke runs)"),
    ("time_budget_s", "--time-budget", float, "stop and save after this many seconds of training in all"),
    (
        "monitor_every",
        "--monitor-every",
        int,
        "epochs between online kNN / embedding-collapse measurements (default 1; 0: off)",
    ),
    (
        "log_with",
        "--log-with",
        str,
        "experiment trackers: tensorboard, wandb, mlflow (comma-separated) or all",
    ),
    (
        "log_every",
        "--log-every",
        int,
        "steps between log lines when output is not a terminal (default 50, and every 60 s)",
    ),
)


class _HelpNamingMethods(argparse.RawDescriptionHelpFormatter):
    """Appends the registered method names to ``--method``'s help and their recipes to ``--recipe``'s;
    keeps the description's and the epilog's line breaks (the launch commands are a table).

    Only when ``train --help`` is printed: the registry imports torch, which ``edgessl --help``
    and the parser itself never do.
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = super()._get_help_string(action)
        if action.dest not in ("method", "recipe"):
            return text
        from edgessl.methods import method_class, method_names

        if action.dest == "method":
            return f"{text}: {', '.join(method_names())}"
        listed = "; ".join(f"{name}: {', '.join(method_class(name).recipes)}" for name in method_names())
        return f"{text}. {listed}"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        formatter_class=_HelpNamingMethods,
        help="self-supervised pretraining of an encoder (resumable, Ctrl-C safe)",
        description=textwrap.fill(
            "Pretrain an encoder with a self-supervised method. Checkpoints go to RUN/checkpoints "
            "(epoch_NNNN.pt every --save-every epochs, and last.pt); metrics to RUN/metrics.jsonl; the "
            "resolved config to RUN/config.yaml. Ctrl-C saves last.pt at the current step; --resume "
            "continues from it.",
            100,
        ),
        epilog=LAUNCHING,
    )
    for dest, flag, kind, text in FLAGS:
        parser.add_argument(flag, dest=dest, type=kind, help=text)
    add_column_options(parser)
    parser.add_argument(
        "--deterministic",
        action="store_true",
        default=None,
        help="deterministic kernels (exact resumes; slower on GPU)",
    )
    parser.add_argument(
        "--config", metavar="FILE.yaml", help="a YAML file of train options (e.g. a run's config.yaml)"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a method config field, e.g. temperature=0.2 (repeatable)",
    )
    parser.add_argument(
        "--weights", metavar="FILE", help="start the encoder from a state dict (.safetensors, or .pth)"
    )
    teacher = parser.add_argument_group("distillation (seed)")
    teacher.add_argument(
        "--teacher",
        metavar="RUN|CHECKPOINT|BACKBONE",
        help="the frozen teacher: an edgessl run folder or checkpoint, or a backbone name with "
        "--teacher-weights",
    )
    teacher.add_argument(
        "--teacher-weights",
        metavar="FILE",
        help="the teacher backbone's state dict (torchvision/timm/edgessl)",
    )
    teacher.add_argument(
        "--teacher-image-size", type=int, metavar="PX", help="the teacher's input size (default: its run's)"
    )
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt")
    parser.add_argument(
        "--print-config", action="store_true", help="print the resolved configuration as YAML and exit"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar or log lines")
    parser.add_argument(
        "--no-plots",
        dest="plots",
        action="store_false",
        default=None,
        help="do not write RUN/plots/*.png at the end",
    )
    parser.set_defaults(handler=run)


def requested(args: argparse.Namespace):  # -> ResolvedRun
    """The run the flags, ``--config`` and ``--set`` ask for, resolved once (by the library)."""
    from edgessl.training.resolve import requested_run

    flags = {dest: getattr(args, dest) for dest, *_ in FLAGS}
    flags["data"] = data_with_columns(args.data, args)
    flags["deterministic"] = args.deterministic
    flags["plots"] = args.plots
    flags["weights"] = args.weights
    teacher = {
        f"teacher.{field}": value
        for field, value in (
            ("source", args.teacher),
            ("weights", args.teacher_weights),
            ("image_size", args.teacher_image_size),
        )
        if value is not None
    }
    return requested_run(flags, args.config, args.set, args.resume, teacher)


def run(args: argparse.Namespace) -> int:
    from edgessl.cli.console import make_console
    from edgessl.training.trainer import TrainingInterrupted, train

    console = make_console()
    run = requested(args)
    if args.print_config:
        console.print(run.yaml(), markup=False, end="")
        return 0
    try:
        result = train(run, resume=args.resume, console=console, progress=not args.no_progress)
    except TrainingInterrupted as stopped:
        err = make_console(stderr=True)
        err.print(
            f"interrupted at step {stopped.step}; saved {stopped.checkpoint} — continue with: "
            f"edgessl train --resume --out {run.train.out}",
            markup=False,
        )
        return 130
    from edgessl.distributed import rank

    if rank() != 0:  # every process trained; one reports
        return 0
    console.print(
        f"done: {result.progress_words()}, {result.steps} steps, {result.train_seconds:.1f} s in all "
        f"({result.images_per_second:,.0f} images/s), final loss {result.final_loss:.4f}; "
        f"checkpoints in {result.run_dir}/checkpoints",
        markup=False,
    )
    return 0
