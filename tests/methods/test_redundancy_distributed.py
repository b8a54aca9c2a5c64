"""Barlow Twins' and VICReg's losses over the global batch, on two real gloo processes (CPU)."""

from __future__ import annotations

import socket
from pathlib import Path

import torch
from torch import distributed as dist
from torch import multiprocessing as mp

from edgessl.methods.losses import BarlowTwinsLoss, VICRegLoss

PER_RANK = 4
LOSSES = {"barlowtwins": BarlowTwinsLoss(5e-3), "vicreg": VICRegLoss(25.0, 25.0, 1.0, 1e-4)}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    a = torch.randn(2 * PER_RANK, 5) * torch.linspace(0.2, 2.0, 5)
    return a, a + 0.3 * torch.randn(2 * PER_RANK, 5)


def _worker(rank: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        a, b = _batch()
        mine = slice(rank * PER_RANK, (rank + 1) * PER_RANK)
        results = {}
        for name, loss in LOSSES.items():
            a_mine, b_mine = a[mine].clone().requires_grad_(), b[mine].clone().requires_grad_()
            value = loss(a_mine, b_mine).loss
            value.backward()
            results[name] = {"loss": value.detach(), "grad_a": a_mine.grad, "grad_b": b_mine.grad}
        torch.save(results, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_each_rank_computes_the_global_batch_loss_and_ddp_mean_gives_its_gradient(tmp_path: Path) -> None:
    # fork: the children reuse the imported modules (spawn would re-import torch: ~30 s here)
    mp.start_processes(_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True, start_method="fork")
    ranks = [torch.load(tmp_path / f"rank{rank}.pt", weights_only=True) for rank in range(2)]
    a, b = (t.requires_grad_() for t in _batch())
    for name, loss in LOSSES.items():
        a.grad = b.grad = None
        whole = loss(a, b).loss
        whole.backward()
        assert a.grad is not None and b.grad is not None
        for rank, result in enumerate(ranks):
            mine = slice(rank * PER_RANK, (rank + 1) * PER_RANK)
            assert torch.allclose(result[name]["loss"], whole.detach(), rtol=1e-5), (name, rank)
            # each rank holds world_size x its share; DDP's mean over the 2 ranks makes it the whole gradient
            assert torch.allclose(result[name]["grad_a"] / 2, a.grad[mine], atol=1e-6), (name, rank)
            assert torch.allclose(result[name]["grad_b"] / 2, b.grad[mine], atol=1e-6), (name, rank)
