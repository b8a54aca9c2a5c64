"""N processes train what one process trains on the global batch: every registered method, 2 gloo processes.

How the comparison is made exact. A method's augmentations draw random numbers on each
process, so two runs only see the same images if they are given the same views. The
parent makes each rank's views once from its half of the batch (seeded), the two gloo
ranks each take one step on their half through real DDP (its bucketed gradient mean) and
the method's real optimiser, and the one-process reference takes the same step on the
two halves' views concatenated — the global batch. Every other random draw inside a step
(MoCo's key permutation) is seeded alike on both ranks and in the reference; MoCo v2's
reference uses ``shuffle_bn_splits = 2``, the one-process form of its two-process
shuffled BN (the same chunks of the same permutation).

Three settings per method:
- ``sync``: SyncBatchNorm on. Loss, every updated parameter and buffer (momentum targets,
  BN statistics, MoCo's queue) equal the reference, and both ranks hold identical state.
- ``frozen``: SyncBatchNorm off, BatchNorm on its running statistics (eval mode). Equal to
  the reference too: the gathers, the loss scaling and DDP are exact, so batch statistics
  are the only thing that can differ.
- ``local``: SyncBatchNorm off, BatchNorm on shard statistics. The loss differs from the
  reference and the ranks' running statistics differ; after
  ``average_batchnorm_statistics`` (what a checkpoint save does) the ranks agree and the
  first BatchNorm layer's running mean is the reference's (the mean of the shards' moving
  averages is the moving average of the global means).
"""

from __future__ import annotations

import copy
import dataclasses
import socket
from pathlib import Path
from typing import Any

import pytest
import torch
from teachers import teacher_fields
from torch import distributed as dist
from torch import multiprocessing as mp
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.parallel import DistributedDataParallel

from edgessl import distributed
from edgessl.methods import Method, build_method, method_class, method_names
from edgessl.training.optim import build_optimizer

WORLD = 2
PER_RANK = 4  # images per process; the global batch is 8
IMAGE_SIZE = 16
BACKBONE = "shufflenetv2"  # BatchNorm throughout, 0.34M parameters
SMALL = {"hidden_dim": 32, "out_dim": 16, "queue_size": 24}  # shrunk where a method has the field
STEP_SEED = 1234
SETTINGS = ("sync", "frozen", "local")
RTOL, ATOL = 1e-7, 1e-10  # float64: any real difference (a missing gradient term) is many orders larger


def shipped_methods() -> list[str]:
    """Every method registered by edgessl itself (not the tiny ones tests register)."""
    return [name for name in method_names() if method_class(name).__module__.startswith("edgessl.methods.")]


def method_config(name: str, setting: str, reference: bool) -> Any:
    cls = method_class(name)
    config = cls.Config()
    sizes = {key: value for key, value in SMALL.items() if hasattr(config, key)}
    if reference and hasattr(config, "shuffle_bn_splits"):
        sizes["shuffle_bn_splits"] = WORLD  # MoCo v2: one process emulating two processes' shuffled BN
    return dataclasses.replace(
        config, sync_batchnorm=setting == "sync", **sizes, **teacher_fields(cls.Config)
    )


def new_method(name: str, setting: str, reference: bool) -> Method:
    torch.manual_seed(0)  # identical initial weights on every rank and in the reference
    method = build_method(
        name,
        BACKBONE,
        IMAGE_SIZE,
        (0.5, 0.5, 0.5),
        (0.25, 0.25, 0.25),
        method_config(name, setting, reference),
    )
    method.double().train()
    if setting == "frozen":
        for layer in method.modules():
            if isinstance(layer, _BatchNorm):
                layer.eval()
    return method


def to_double(views: Any) -> Any:
    """Floating tensors of a views structure in float64 (integer labels stay)."""
    if isinstance(views, torch.Tensor):
        return views.double() if views.is_floating_point() else views
    return type(views)(to_double(part) for part in views)


def tree_cat(trees: list[Any]) -> Any:
    """Concatenate matching tensors of several views structures along dim 0 (tensors, tuples, lists)."""
    if isinstance(trees[0], torch.Tensor):
        return torch.cat(trees)
    return type(trees[0])(tree_cat(list(parts)) for parts in zip(*trees, strict=True))


def rank_views(name: str, images: torch.Tensor) -> list[Any]:
    """Each rank's views of its own half of ``images`` (made once, seeded)."""
    method = new_method(name, "sync", reference=True)
    views = []
    for rank, half in enumerate(images.chunk(WORLD)):
        torch.manual_seed(100 + rank)
        with torch.no_grad():
            views.append(to_double(method.make_views(half)))
    return views


class GivenViews(nn.Module):
    """The method's step on fixed views, as the module DDP wraps (so DDP sees the real forward)."""

    def __init__(self, method: Method, views: Any) -> None:
        super().__init__()
        self.method, self.views = method, views

    def forward(self) -> Any:
        return self.method.step_output(self.views)


def one_step(method: Method, views: Any) -> float:
    """Forward, backward, optimiser step and momentum update; the loss averaged over processes."""
    model: nn.Module = GivenViews(method, views)
    if distributed.is_distributed():
        method.synchronize_batchnorm("cpu")  # what the trainer does before DDP wraps the method
        model = DistributedDataParallel(model, broadcast_buffers=False)
    optimizer = build_optimizer(method, method.config.optimizer, WORLD * PER_RANK)
    torch.manual_seed(STEP_SEED)
    out = model()
    out.loss.backward()
    optimizer.step()
    method.after_optimizer_step(0.5)
    return float(distributed.mean_reduce(out.loss.detach()))


def state(method: Method) -> dict[str, torch.Tensor]:
    return {key: value.detach().clone() for key, value in method.state_dict().items()}


def _worker(rank: int, port: int, views: dict[str, list[Any]], out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        results = {}
        for name, per_rank in views.items():
            for setting in SETTINGS:
                method = new_method(name, setting, reference=False)
                loss = one_step(method, per_rank[rank])
                before = state(method)
                distributed.average_batchnorm_statistics(method)
                results[f"{name}/{setting}"] = {"loss": loss, "state": before, "averaged": state(method)}
        torch.save(results, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def first_batchnorm_called(method: Method, views: Any) -> str:
    """The BatchNorm layer a step runs first (its input depends on no other layer's batch statistics)."""
    probe = copy.deepcopy(method)  # the real reference step stays untouched
    names = {layer: name for name, layer in probe.named_modules() if isinstance(layer, _BatchNorm)}
    order: list[str] = []
    for layer in names:
        layer.register_forward_hook(lambda m, *_: order.append(names[m]))
    with torch.no_grad():
        probe.step_output(views)
    return order[0]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from edgessl.data import load_dataset

    torch.set_num_threads(1)
    images = load_dataset("shapes10", "test", image_size=IMAGE_SIZE).images[: WORLD * PER_RANK]  # real images
    # SplitBrain's ab bins are computed here, before the fork, once
    views = {name: rank_views(name, images) for name in shipped_methods()}
    out = tmp_path_factory.mktemp("ranks")
    # fork: the children reuse the imported modules and the views (spawn would re-import torch: ~30 s here)
    mp.start_processes(
        _worker, args=(_free_port(), views, str(out)), nprocs=WORLD, join=True, start_method="fork"
    )
    ranks = [torch.load(out / f"rank{rank}.pt", weights_only=True) for rank in range(WORLD)]
    references = {}
    for name, per_rank in views.items():
        global_views = tree_cat(per_rank)
        for setting in SETTINGS:
            method = new_method(name, setting, reference=True)
            first_bn = first_batchnorm_called(method, global_views) if setting == "local" else ""
            start = state(method)
            loss = one_step(method, global_views)
            references[f"{name}/{setting}"] = {
                "loss": loss,
                "state": state(method),
                "start": start,
                "first_bn": first_bn,
            }
    return {"ranks": ranks, "references": references}


def assert_states_close(got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], what: str) -> None:
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        torch.testing.assert_close(
            got[key].double(), value.double(), rtol=RTOL, atol=ATOL, msg=lambda m, k=key: f"{what} {k}: {m}"
        )


@pytest.mark.parametrize("name", shipped_methods())
def test_two_processes_with_sync_batchnorm_equal_one_process_on_the_global_batch(runs, name: str) -> None:
    reference, ranks = runs["references"][f"{name}/sync"], [r[f"{name}/sync"] for r in runs["ranks"]]
    assert ranks[0]["loss"] == pytest.approx(reference["loss"], rel=1e-10)
    for key, value in ranks[0]["state"].items():  # both ranks hold the very same model
        assert torch.equal(value, ranks[1]["state"][key]), key
    assert_states_close(ranks[0]["state"], reference["state"], name)
    moved = [
        key
        for key, value in reference["state"].items()
        if value.is_floating_point() and (value - reference["start"][key]).abs().max() > 1e-6
    ]
    assert len(moved) > 10, f"the step hardly changed {name}: the comparison would prove nothing"
    bn_buffers = [key for key in moved if key.endswith("running_mean")]
    assert bn_buffers, "BatchNorm running statistics were not updated"


@pytest.mark.parametrize("name", shipped_methods())
def test_without_sync_batchnorm_only_batch_statistics_differ(runs, name: str) -> None:
    frozen, ranks = runs["references"][f"{name}/frozen"], [r[f"{name}/frozen"] for r in runs["ranks"]]
    assert ranks[0]["loss"] == pytest.approx(frozen["loss"], rel=1e-10)
    assert_states_close(ranks[0]["state"], frozen["state"], f"{name} (BatchNorm frozen)")

    local, ranks = runs["references"][f"{name}/local"], [r[f"{name}/local"] for r in runs["ranks"]]
    assert ranks[0]["loss"] != pytest.approx(local["loss"], rel=1e-3)  # shard statistics change the loss
    running = [key for key in local["state"] if key.endswith(("running_mean", "running_var"))]
    assert any(not torch.equal(ranks[0]["state"][k], ranks[1]["state"][k]) for k in running)
    for key in running:  # a checkpoint save averages them: every process then holds the same statistics
        assert torch.equal(ranks[0]["averaged"][key], ranks[1]["averaged"][key]), key
    first = f"{local['first_bn']}.running_mean"
    torch.testing.assert_close(ranks[0]["averaged"][first], local["state"][first], rtol=RTOL, atol=ATOL)
