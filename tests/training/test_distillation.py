"""The method contract with a frozen teacher, end to end through ``edgessl train``: the teacher stays
bit-identical, never reaches a checkpoint, is re-checked on resume; eval and export never rebuild it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from rich.console import Console
from teachers import TEACHER_BACKBONE, teacher_weights_file

from edgessl.backbones import build_backbone
from edgessl.checkpoints import load_checkpoint, load_representation
from edgessl.cli import main
from edgessl.methods import build_method
from edgessl.methods.seed import SEEDConfig
from edgessl.methods.teacher import TeacherConfig, load_teacher, weights_sha256
from edgessl.runs import CHECKPOINT_DIR, LAST
from edgessl.training import TrainConfig, train
from edgessl.training.resolve import resolve_run
from edgessl.training.setup import checkpoint_bytes_to_write
from edgessl.training.trainer import Trainer

SIZE = 16


def seed_run(out: Path, teacher: dict, **changes) -> TrainConfig:
    overrides = {"teacher": teacher, "queue_size": 64, "hidden_dim": 32}
    values = {
        "method": "seed",
        "backbone": "shufflenetv2",
        "data": "shapes10",
        "split": "test",
        "image_size": SIZE,
        "epochs": 2,
        "batch_size": 32,
        "out": str(out),
        "monitor_every": 0,
        "plots": False,
        "method_overrides": overrides,
    }
    return TrainConfig(**{**values, **changes})


def backbone_teacher() -> dict:
    return {"source": TEACHER_BACKBONE, "weights": str(teacher_weights_file())}


def test_teacher_is_bit_identical_after_training_and_absent_from_checkpoints(tmp_path: Path) -> None:
    before = build_backbone(TEACHER_BACKBONE)
    before.load_state_dict(torch.load(teacher_weights_file(), weights_only=True))
    run = resolve_run(seed_run(tmp_path / "run", backbone_teacher(), max_steps=4))
    trainer = Trainer(run, False, Console(), False)
    result = trainer.run()
    # the teacher that trained the student: every weight and BatchNorm buffer exactly as in the file
    assert not trainer.method.teacher.training
    trained = trainer.method.teacher.representation.encoder.state_dict()
    assert any("running_mean" in key for key in trained)
    assert all(torch.equal(trained[k], v) for k, v in before.state_dict().items())
    # while the student's BatchNorm statistics did move (the run trained in train mode)
    assert trainer.method.encoder.training
    state = load_checkpoint(result.last_checkpoint)
    assert not [key for key in state["model"] if key.startswith("teacher.")]
    recorded = state["metadata"]["frozen"]["teacher"]
    mean, std = tuple(state["metadata"]["mean"]), tuple(state["metadata"]["std"])
    rebuilt = load_teacher(TeacherConfig(**backbone_teacher()), SIZE, mean, std)
    assert recorded["sha256"] == weights_sha256(rebuilt.representation)
    assert recorded["backbone"] == TEACHER_BACKBONE
    assert recorded["params"] == sum(p.numel() for p in before.parameters())


def test_teacher_stays_in_eval_mode_outside_the_optimiser_syncbn_and_the_disk_estimate() -> None:
    config = SEEDConfig(teacher=TeacherConfig(**backbone_teacher()), queue_size=8, hidden_dim=8)
    method = build_method("seed", "shufflenetv2", SIZE, (0.5,) * 3, (0.25,) * 3, config).train()
    teacher_params = {id(p) for p in method.teacher.parameters()}
    assert not method.teacher.training
    assert teacher_params.isdisjoint(id(p) for p in method.trainable_parameters())
    assert all(method.teacher is not m for m in method.global_batchnorm_modules())
    assert all(
        teacher_params.isdisjoint(id(p) for p in module.parameters())
        for module in method.global_batchnorm_modules()
    )
    stored = sum(t.numel() * t.element_size() for t in method.state_dict().values())
    trainable = sum(p.numel() * p.element_size() for p in method.trainable_parameters())
    one_run = TrainConfig(epochs=1, save_every=1)
    # epoch file, last, temp
    assert checkpoint_bytes_to_write(method, one_run, 0) == 3 * (stored + 2 * trainable)


def test_resume_rebuilds_the_teacher_and_refuses_one_that_changed(tmp_path: Path) -> None:
    weights = tmp_path / "teacher.pth"
    weights.write_bytes(teacher_weights_file().read_bytes())
    teacher = {"source": TEACHER_BACKBONE, "weights": str(weights)}
    run = tmp_path / "run"
    train(seed_run(run, teacher, max_steps=2), progress=False)
    changed = torch.load(weights, weights_only=True)
    changed["features.0.1.running_mean"] += 1.0  # a teacher whose BatchNorm statistics moved
    torch.save(changed, weights)
    with pytest.raises(Exception, match="teacher of .* changed since the run started"):
        train(seed_run(run, teacher, max_steps=3), resume=True, progress=False)
    weights.write_bytes(teacher_weights_file().read_bytes())  # the original teacher back: the resume goes on
    assert train(seed_run(run, teacher, max_steps=3), resume=True, progress=False).steps == 3


def test_a_teacher_from_an_edgessl_run_at_another_input_size(tmp_path: Path, capsys) -> None:
    """A SimCLR run at 24 px teaches a student at 16 px: views are resized to the teacher's size."""
    teacher_run = tmp_path / "teacher"
    teacher_config = seed_run(
        teacher_run, {}, method="simclr", image_size=24, max_steps=2, method_overrides={}
    )
    train(teacher_config, progress=False)
    capsys.readouterr()
    student = tmp_path / "student"
    flags = [
        "train",
        "--method",
        "seed",
        "--backbone",
        "shufflenetv2",
        "--data",
        "shapes10",
        "--split",
        "test",
    ]
    flags += ["--image-size", str(SIZE), "--batch-size", "32", "--max-steps", "2", "--monitor-every", "0"]
    flags += ["--teacher", str(teacher_run), "--out", str(student), "--no-progress", "--no-plots"]
    flags += ["--set", "queue_size=64"]
    assert main(flags) == 0
    start = capsys.readouterr().out
    assert "from teacher shufflenetv2" in start and "simclr run, 24px" in start and str(teacher_run) in start
    state = load_checkpoint(student / CHECKPOINT_DIR / LAST)
    assert state["metadata"]["frozen"]["teacher"]["image_size"] == 24
    # evaluation and export build the student's representation alone: the teacher may be gone
    for file in (teacher_run / CHECKPOINT_DIR).iterdir():
        file.unlink()
    features = load_representation(student / CHECKPOINT_DIR / LAST).model(torch.rand(2, 3, SIZE, SIZE))
    assert features.shape == (2, build_backbone("shufflenetv2").feature_dim)


@pytest.mark.parametrize(
    ("teacher_flags", "message"),
    [
        ([], "distils from a teacher: pass --teacher"),
        (["--teacher", "resnet18"], "needs its trained weights: add --teacher-weights"),
        (
            ["--teacher", "resnet18", "--teacher-weights", "WEIGHTS"],
            "--teacher-weights: .* does not fit backbone 'resnet18'",
        ),
        (["--teacher", "no/such/run"], "neither a run folder, a checkpoint nor a backbone name"),
    ],
)
def test_a_teacher_that_does_not_resolve_or_fit_is_one_line_exit_2_and_leaves_nothing(
    teacher_flags: list[str], message: str, tmp_path: Path, capsys
) -> None:
    flags = [flag.replace("WEIGHTS", str(teacher_weights_file())) for flag in teacher_flags]
    out = tmp_path / "run"
    code = main(
        ["train", "--method", "seed", "--image-size", "16", "--max-steps", "1", "--out", str(out), *flags]
    )
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert re.search(message, err), err
    assert not out.exists()


def test_teacher_options_on_a_method_without_a_teacher_are_refused(capsys) -> None:
    assert main(["train", "--method", "simclr", "--teacher", "resnet18", "--print-config"]) == 2
    assert "simclr has none" in capsys.readouterr().err
