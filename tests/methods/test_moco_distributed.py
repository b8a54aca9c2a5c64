"""MoCo's cross-process shuffled BN on two real gloo processes (CPU)."""

from __future__ import annotations

import socket
from pathlib import Path

import torch
from torch import distributed as dist
from torch import multiprocessing as mp

from edgessl.methods import build_method
from edgessl.methods.mocov2 import MoCoV2, MoCoV2Config

PER_RANK = 3


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        torch.manual_seed(0)  # same weights and same global batch on both ranks
        config = MoCoV2Config(queue_size=10, hidden_dim=16, out_dim=4)
        method = build_method("mocov2", "squeezenet", 32, (0.5,) * 3, (0.25,) * 3, config)
        assert isinstance(method, MoCoV2)
        everything = torch.rand(2 * PER_RANK, 3, 32, 32)
        mine = everything[rank * PER_RANK : (rank + 1) * PER_RANK]
        torch.manual_seed(rank + 1)  # ranks draw different permutations: rank 0's must win
        method.eval()  # fixed statistics: shuffling across processes must then change nothing
        keys = method._keys(mine)
        expected = method._key_projection(mine)
        queue_before = method.queue.clone()
        method.loss((mine, mine))
        torch.save(
            {
                "keys_match": torch.allclose(keys, expected, atol=1e-5),
                "pointer": method.queue_pointer.item(),
                "queue": method.queue.clone(),
                "unchanged_tail": torch.equal(method.queue[2 * PER_RANK :], queue_before[2 * PER_RANK :]),
            },
            Path(out) / f"rank{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


def test_keys_are_shuffled_across_processes_and_both_ranks_enqueue_all_keys(tmp_path: Path) -> None:
    # fork: the children reuse the imported modules (spawn would re-import torch: ~30 s here)
    mp.start_processes(_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True, start_method="fork")
    results = [torch.load(tmp_path / f"rank{rank}.pt", weights_only=True) for rank in range(2)]
    for result in results:
        assert result["keys_match"], "un-permuted keys do not belong to this rank's images"
        assert result["pointer"] == 2 * PER_RANK and result["unchanged_tail"]  # both ranks' keys enqueued
    assert torch.equal(results[0]["queue"], results[1]["queue"])  # the queues stay identical across ranks
