"""Distillation: a ShuffleNetV2 student distilled by ``seed`` from an edgessl-pretrained ResNet-18 \
vs the same student trained by the best plain method.

The headline of the distillation issue: on CIFAR-10 at 32 px, a ShuffleNetV2 student distilled by
``seed`` (SEED, Fang et al. 2021) from a larger teacher that edgessl pretrained beats the same
student trained by the best plain method (SimCLR, the best at 32 px in ``method_parity.md``) at
the same student epochs by >= 3 kNN points, mean of 3 seeds. The teacher's own kNN and its
training cost are reported beside the students'.

Steps, all by ``edgessl.training.train``:

1. Teacher, once: SimCLR on ``resnet18`` (``--teacher-backbone``) at 32 px for ``--teacher-epochs``,
   with method_parity's SimCLR settings (SGD lr 0.1 momentum 0.9, weight decay 5e-4 on every
   parameter, per-step cosine to 0 without warm-up, batch 256, T 0.2, head 1024 -> 128, colour
   strength 0.5). Its representation is scored by kNN; its train seconds, images/s and encoder
   parameter count are recorded. ``--teacher-run DIR`` trains it into DIR, or reuses the run
   already there (its cost is then read from the checkpoint).
2. Per seed (0, 1, 2), interleaved so both arms see the same machine state: the ShuffleNetV2 x0.5
   student (a) by the plain baseline (``--baseline``, SimCLR by default, the same settings as
   method_parity.py) and (b) by ``seed`` from the teacher's run folder, for the same ``--epochs``,
   with the same SGD settings, queue 4,096, student temperature 0.2 and a 1,024-wide MLP (the
   student's feature width, SEED's default); the teacher temperature is seed's (1e-4, the
   release's). Random-init and raw-pixel features are scored beside them.

Data and scoring are method_parity.py's (``cifar_knn``): the first ``--train`` CIFAR-10 JPEGs of
each class are the pretraining set and the kNN bank, the next ``--test`` of each class the held-out
queries; kNN k=20, cosine-weighted (T=0.07) and the study's Euclidean majority vote. The resolved
method configuration of every run is read back from its checkpoint and written to the report.

Run (alone on the machine):
    python benchmarks/distillation.py                     # full: about 45-60 minutes on 2 CPU cores
    # keep the teacher; a rerun reuses it
    python benchmarks/distillation.py --teacher-run runs/distill-teacher
    python benchmarks/distillation.py --teacher-epochs 60 --epochs 20
    python benchmarks/distillation.py --quick             # checks the script in under a minute
Expected runtime, from a 1,000-image sizing run at 1 torch thread (2 threads are faster): the ResNet-18
teacher trains at about 60 images/s, so 30 epochs of 5,000 images take 25-40 minutes; per seed the
SimCLR student (about 550 images/s) takes 2-3 minutes and the seed student (about 330 images/s: the
teacher's forward runs every step) 3-4 minutes.
Writes benchmarks/results/distillation.{json,md} (``--quick``: distillation_quick.{json,md}).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from cifar_knn import IMAGE_SIZE, Data, knn_scores, machine_line, prepare_data, spread
from method_parity import (
    BACKBONE,
    METHOD_SETTINGS,
    Settings,
    edgessl_overrides,
    random_encoder,
    recorded_settings,
)
from results_io import write_results
from torch import nn

from edgessl.checkpoints import load_representation, recorded_method_config
from edgessl.config import config_to_dict
from edgessl.evaluation.baselines import pixel_representation
from edgessl.runs import RunFolder
from edgessl.training import TrainConfig, train

DATA = Path(__file__).resolve().parent / "data" / "distillation-cifar10"
TEACHER_METHOD = "simclr"  # the best plain method at 32 px in method_parity.md
TARGET_GAIN = 3.0  # kNN points (cosine, mean of seeds) the seed student must beat the baseline by


def seed_overrides(s: Settings, teacher_run: Path) -> dict:
    """``seed``'s settings: the baseline's SGD, the teacher's run folder, SEED's student temperature 0.2."""
    return {
        "teacher": {"source": str(teacher_run)},
        "optimizer": edgessl_overrides("simclr", s)["optimizer"],
        "temperature": 0.2,  # SEED section 4.1: student temperature 0.2
        "queue_size": 4096,  # SEED: 65,536 on ImageNet; 4,096 here, below the 5,000 pretraining images
        "hidden_dim": s.hidden_dim,
    }


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def run_edgessl(
    method: str, backbone: str, seed: int, epochs: int, *, overrides: dict, data: Data, out: Path
) -> dict:
    """Train one run and score its representation: kNN, cost, encoder size, the resolved method config."""
    config = TrainConfig(
        method=method,
        backbone=backbone,
        data=str(data.folder),
        split="train",
        image_size=IMAGE_SIZE,
        epochs=epochs,
        batch_size=Settings(epochs).batch_size,
        save_every=epochs,
        out=str(out),
        seed=seed,
        monitor_every=0,
        plots=False,
        log_every=10_000,
        method_overrides=overrides,
    )
    result = train(config)
    loaded = load_representation(result.last_checkpoint)
    return {
        **knn_scores(loaded.model, data),
        "train_seconds": result.train_seconds,
        "images_per_second": result.images_per_second,
        "steps": result.steps,
        "parameters": parameter_count(loaded.model),
        "method_config": config_to_dict(recorded_method_config(loaded.metadata)),
        "run_dir": str(result.run_dir),
    }


def existing_teacher(run_dir: Path, checkpoint: Path, data: Data) -> dict:
    """A teacher trained earlier into ``run_dir``: its score and, from its newest checkpoint, its cost."""
    loaded = load_representation(checkpoint)
    meta = loaded.metadata
    if meta.get("num_images") != len(data.bank):
        raise SystemExit(
            f"error: the teacher in {run_dir} was trained on {meta.get('num_images')} images, this run's "
            f"pretraining set has {len(data.bank)}; train a new one (another --teacher-run)"
        )
    seconds = float(meta.get("train_seconds", 0.0))
    batch = meta.get("train_config", {}).get("batch_size") or Settings(1).batch_size
    return {
        **knn_scores(loaded.model, data),
        "train_seconds": seconds,
        "images_per_second": int(meta["step"]) * batch / seconds if seconds else 0.0,
        "steps": int(meta["step"]),
        "parameters": parameter_count(loaded.model),
        "method_config": config_to_dict(recorded_method_config(meta)),
        "run_dir": str(run_dir),
        "epochs": int(meta.get("epoch", 0)),
        "backbone": meta.get("backbone"),
        "reused": True,
    }


def report_lines(record: dict) -> list[str]:
    teacher, arms = record["teacher"], record["arms"]
    lines = [
        (
            "# Distillation: a ShuffleNetV2 student distilled by seed vs the same student by the best plain "
            "method"
        ),
        "",
        (
            f"CIFAR-10 JPEGs at {IMAGE_SIZE}px: {record['train_images']} pretraining images "
            "(also the kNN bank), "
            f"{record['test_images']} held-out queries. Student {BACKBONE} (x0.5), seeds {record['seeds']}, "
            f"{record['epochs']} epochs for every student. kNN k=20: cosine-weighted (T=0.07) and Euclidean "
            "majority vote, in %; mean ± standard deviation over seeds. images/s is pretraining throughput "
            "end to end (edgessl's own pipeline); train s is wall-clock training time of one run."
        ),
        "",
        "## Teacher",
        "",
        (
            "| teacher | method | epochs | kNN cosine % | kNN Euclidean % | train s | images/s | "
            "encoder parameters |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    if teacher:
        lines.append(
            f"| {teacher['backbone']} | {TEACHER_METHOD} | {teacher['epochs']} | {teacher['cosine']:.1f} | "
            f"{teacher['euclidean']:.1f} | {teacher['train_seconds']:.0f} | "
            f"{teacher['images_per_second']:.0f} | "
            f"{teacher['parameters']:,} |"
        )
    if teacher.get("reused"):
        lines += [
            "",
            f"The teacher was trained by an earlier run ({teacher['run_dir']}); its cost is that run's.",
        ]
    lines += [
        "",
        "## Students",
        "",
        (
            "| student | epochs | kNN cosine % | kNN Euclidean % | train s | images/s | per-seed cosine | "
            "encoder parameters |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, runs in arms.items():
        if not runs:
            continue
        trained = "train_seconds" in runs[0]

        def column(key: str, runs: list[dict] = runs, trained: bool = trained) -> str:
            return spread([run[key] for run in runs]) if trained else "—"

        per_seed = ", ".join(f"{run['cosine']:.1f}" for run in runs)
        parameters = f"{runs[0]['parameters']:,}" if "parameters" in runs[0] else "—"
        lines.append(
            f"| {name} | {record['epochs'] if trained else 0} | {spread([r['cosine'] for r in runs])} | "
            f"{spread([r['euclidean'] for r in runs])} | {column('train_seconds')} | "
            f"{column('images_per_second')} | {per_seed} | {parameters} |"
        )
    baseline, distilled = arms.get(record["baseline"], []), arms.get("seed", [])
    pairs = list(zip(baseline, distilled, strict=False))
    if pairs:
        gains = [d["cosine"] - b["cosine"] for b, d in pairs]
        mean = statistics.mean(gains)
        record["gain"] = {"per_seed": gains, "mean": mean, "target": TARGET_GAIN, "met": mean >= TARGET_GAIN}
        lines += [
            "",
            f"## Gain: seed − {record['baseline']} (cosine kNN, same student, same epochs)",
            "",
            f"| per seed | mean | target ≥ +{TARGET_GAIN:.0f} |",
            "|---|---|---|",
            (
                f"| {', '.join(f'{g:+.1f}' for g in gains)} | {mean:+.1f} | "
                f"{'met' if mean >= TARGET_GAIN else 'NOT met'} (over {len(gains)} seed(s)) |"
            ),
        ]
        if teacher:
            student_s = statistics.mean(r["train_seconds"] for r in distilled)
            size = teacher["parameters"] / distilled[0]["parameters"]
            above = teacher["cosine"] - statistics.mean(d["cosine"] for d in distilled)
            lines += [
                "",
                (
                    f"Cost of the seed student: {student_s:.0f} s a run, plus the teacher's "
                    f"{teacher['train_seconds']:.0f} s once "
                    f"(an encoder {size:.0f}x the student's parameters). "
                    f"Teacher − seed student (cosine kNN, mean): {above:+.1f} points."
                ),
            ]
    lines += ["", "## Settings", ""]
    for name, value in record["settings"].items():
        lines.append(f"- {name}: `{json.dumps(value)}`")
    configs = {"teacher": teacher.get("method_config")} if teacher else {}
    configs.update(
        {name: runs[0]["method_config"] for name, runs in arms.items() if runs and "method_config" in runs[0]}
    )
    lines += [
        "",
        "Resolved method configuration of each run (read back from its checkpoint; seed 0 for students):",
        "",
    ]
    lines += [f"- {name}: `{json.dumps(config)}`" for name, config in configs.items() if config]
    lines += ["", f"Machine: {record['machine']}"]
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one seed: checks the script")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--train", type=int, default=500, help="pretraining images per class")
    parser.add_argument("--test", type=int, default=200, help="held-out query images per class")
    parser.add_argument("--epochs", type=int, default=15, help="student epochs (both arms)")
    parser.add_argument("--teacher-epochs", type=int, default=30)
    parser.add_argument("--teacher-backbone", default="resnet18")
    parser.add_argument("--teacher-seed", type=int, default=0)
    parser.add_argument(
        "--teacher-run",
        type=Path,
        default=None,
        help="train the teacher into this folder, or reuse the teacher already there "
        "(default: a temporary folder)",
    )
    parser.add_argument(
        "--baseline", default="simclr", help="the plain method the seed student is compared with"
    )
    parser.add_argument("--report", default=None, help="results file name (default distillation[_quick])")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.train, args.test, args.epochs, args.teacher_epochs = 1, 30, 10, 1, 1
    data = prepare_data(DATA, args.train, args.test)
    student = Settings(epochs=args.epochs, **METHOD_SETTINGS.get(args.baseline, {}))
    teacher_settings = Settings(epochs=args.teacher_epochs, **METHOD_SETTINGS.get(TEACHER_METHOD, {}))
    record = {
        "quick": args.quick,
        "report": args.report or ("distillation_quick" if args.quick else "distillation"),
        "train_images": len(data.bank),
        "test_images": len(data.queries),
        "seeds": list(range(args.seeds)),
        "epochs": args.epochs,
        "baseline": args.baseline,
        "machine": machine_line(),
        "teacher": {},
        "arms": {"random init": [], "raw pixels": [], args.baseline: [], "seed": []},
        "settings": {},
    }
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        teacher_run = (
            args.teacher_run or work / f"teacher-{TEACHER_METHOD}-{args.teacher_backbone}"
        ).resolve()
        trained = RunFolder(teacher_run).newest() if args.teacher_run else None
        if trained is not None:
            record["teacher"] = existing_teacher(teacher_run, trained, data)
            if record["teacher"]["epochs"] != args.teacher_epochs:
                print(
                    f"note: reusing the {record['teacher']['epochs']}-epoch teacher in {teacher_run}",
                    flush=True,
                )
        else:
            teacher_overrides = edgessl_overrides(TEACHER_METHOD, teacher_settings)
            record["teacher"] = {
                **run_edgessl(
                    TEACHER_METHOD,
                    args.teacher_backbone,
                    args.teacher_seed,
                    args.teacher_epochs,
                    overrides=teacher_overrides,
                    data=data,
                    out=teacher_run,
                ),
                "epochs": args.teacher_epochs,
                "backbone": args.teacher_backbone,
                "seed": args.teacher_seed,
            }
            record["settings"]["teacher overrides"] = teacher_overrides
        print("teacher", {k: v for k, v in record["teacher"].items() if k != "method_config"}, flush=True)
        record["settings"][f"{args.baseline} student overrides"] = edgessl_overrides(args.baseline, student)
        record["settings"]["seed student overrides"] = seed_overrides(student, teacher_run)
        record["settings"]["shared student settings"] = recorded_settings(args.baseline, student)
        pixels = pixel_representation(IMAGE_SIZE, data.mean, data.std)
        record["arms"]["raw pixels"].append(knn_scores(pixels, data))  # no seed: one row
        for seed in record["seeds"]:
            record["arms"]["random init"].append(knn_scores(random_encoder(seed, data), data))
            arms = {
                args.baseline: edgessl_overrides(args.baseline, student),
                "seed": seed_overrides(student, teacher_run),
            }
            for name, overrides in arms.items():  # interleaved: both arms see the same machine state
                method = "seed" if name == "seed" else args.baseline
                out = work / f"student-{method}-{seed}"
                result = run_edgessl(
                    method, BACKBONE, seed, args.epochs, overrides=overrides, data=data, out=out
                )
                record["arms"][name].append(result)
                print(name, seed, {k: v for k, v in result.items() if k != "method_config"}, flush=True)
            write_results(record["report"], record, report_lines(record))
    print(write_results(record["report"], record, report_lines(record)).read_text())


if __name__ == "__main__":
    main()
