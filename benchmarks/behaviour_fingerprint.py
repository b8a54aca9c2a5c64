"""Behaviour fingerprint: what every method trains, to the bit, for a refactor to be held against.

Each registered method trains a few optimiser steps on shapes10 (SqueezeNet, 32 px, batch
16, seed 0, deterministic kernels, one thread) through ``edgessl.training.train``. The
fingerprint of a method is its logged losses and a SHA-256 over every tensor the final
checkpoint saves (model, optimiser, schedule, sampler position), in key order. A
restructuring that leaves behaviour alone leaves every fingerprint unchanged; one
changed bit anywhere in augmentation, heads, losses, parameter groups, the optimiser or
the schedule changes the hash.

SEED distils from a teacher; here the teacher is a random-init ResNet-18 written to a
temporary safetensors file from seed 0, so the fingerprint needs no download.

Run (alone on the machine, about 2 minutes on 2 CPU cores):
    python benchmarks/behaviour_fingerprint.py --out /tmp/before.json
    python benchmarks/behaviour_fingerprint.py --against /tmp/before.json   # after the change
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import torch
from rich.console import Console
from safetensors.torch import save_file

from edgessl.backbones import build_backbone
from edgessl.methods import method_names
from edgessl.training import TrainConfig, train
from edgessl.training.run_log import read_metrics

STEPS = 3


def tensor_hash(state: object, digest: hashlib._Hash) -> None:
    """Feed every tensor and number of a (nested) checkpoint into ``digest``, keys sorted."""
    if isinstance(state, torch.Tensor):
        digest.update(state.detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(state, dict):
        for key in sorted(state, key=str):
            digest.update(str(key).encode())
            tensor_hash(state[key], digest)
    elif isinstance(state, (list, tuple)):
        for item in state:
            tensor_hash(item, digest)
    elif isinstance(state, (int, float, bool, str)) or state is None:
        digest.update(repr(state).encode())


def teacher_file(folder: Path) -> Path:
    torch.manual_seed(0)
    path = folder / "teacher.safetensors"
    save_file(build_backbone("resnet18").state_dict(), str(path))
    return path


def fingerprint(method: str, folder: Path, teacher: Path) -> dict[str, object]:
    overrides = {"teacher": {"source": "resnet18", "weights": str(teacher)}} if method == "seed" else {}
    config = TrainConfig(
        method=method,
        backbone="squeezenet",
        data="shapes10",
        epochs=2,
        batch_size=16,
        max_steps=STEPS,
        out=str(folder / method),
        seed=0,
        deterministic=True,
        monitor_every=0,
        plots=False,
        method_overrides=overrides,
    )
    result = train(config, console=Console(quiet=True), progress=False)
    state = torch.load(result.last_checkpoint, weights_only=True, map_location="cpu")
    digest = hashlib.sha256()
    tensor_hash({key: value for key, value in state.items() if key != "metadata"}, digest)
    losses = [record["loss"] for record in read_metrics(result.run_dir / "metrics.jsonl") if "loss" in record]
    return {"losses": losses, "state_sha256": digest.hexdigest()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="write the fingerprints to this JSON file")
    parser.add_argument("--against", default=None, help="compare with fingerprints written before")
    parser.add_argument("--methods", default=",".join(method_names()))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    prints = {}
    with tempfile.TemporaryDirectory() as work:
        teacher = teacher_file(Path(work))
        for method in args.methods.split(","):
            prints[method] = fingerprint(method, Path(work), teacher)
            print(method, prints[method]["state_sha256"][:16], prints[method]["losses"], flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(prints, indent=1))
    if not args.against:
        return 0
    before = json.loads(Path(args.against).read_text())
    moved = [method for method in prints if before.get(method) != prints[method]]
    print("unchanged: " + ", ".join(m for m in prints if m not in moved))
    if moved:
        print("CHANGED: " + ", ".join(moved))
    return 1 if moved else 0


if __name__ == "__main__":
    sys.exit(main())
