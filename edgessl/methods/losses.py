"""The contrastive and regression losses of SimCLR, MoCo v2 and BYOL.

:class:`InfoNCELoss` is NT-Xent (SimCLR) when called on two batches of projections, and
MoCo's InfoNCE when also given a queue of negative keys. :func:`normalized_regression_loss`
is BYOL's ``2 - 2 cos``. Both work on L2-normalised embeddings, in float32 (float64 stays)
even under mixed precision (bf16 keeps ~3 digits of a cosine: too coarse near a loss of 0 or at
temperature 0.1), and compute the log-softmax through ``cross_entropy`` (numerically
stable at low temperatures).

Under several processes NT-Xent draws its negatives from the global batch (SimCLR section
2.2 trains at 4096 over many devices against all 2N - 2 others): each process scores its
own anchors against every process's projections, gathered by
:func:`edgessl.distributed.gather_with_grad`, and averages over its own anchors. With
DDP's mean over processes that is exactly the gradient of the single-process loss on the
global batch (the reasoning is in :mod:`edgessl.distributed`); the ``(2n, 2N)`` logits of
each process are the rows of the single-process ``(2N, 2N)`` matrix for its anchors.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from edgessl import distributed
from edgessl.distributed import at_least_float32


class InfoNCELoss(nn.Module):
    """Cross-entropy of each sample's positive against its negatives, on cosine similarity / temperature.

    Without ``negatives`` (SimCLR's NT-Xent, Chen et al. 2020, eq. 1): the 2N projections
    of two views; for each one the positive is its other view and the negatives are the
    other 2N - 2 projections; the loss is the mean over all 2N anchors. Under several
    processes N is the global batch and the mean is over this process's anchors.

    With ``negatives`` ``(K, D)`` (MoCo, He et al. 2020, eq. 1): ``a`` are queries and ``b``
    their positive keys; the negatives are the queue; the loss is the mean over the N queries.
    """

    def __init__(self, temperature: float) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = temperature

    def forward(
        self, a: torch.Tensor, b: torch.Tensor, negatives: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``a``, ``b``: ``(N, D)`` embeddings of the two views (normalised here); returns a scalar."""
        if a.shape != b.shape or a.ndim != 2:
            raise ValueError(
                f"expected two (N, D) batches of the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
            )
        with torch.autocast(a.device.type, enabled=False):
            a, b = F.normalize(at_least_float32(a), dim=1), F.normalize(at_least_float32(b), dim=1)
            if negatives is not None:
                return self._with_queue(a, b, F.normalize(at_least_float32(negatives), dim=1))
            return self._in_batch(a, b)

    def _with_queue(self, queries: torch.Tensor, keys: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        positive = (queries * keys).sum(dim=1, keepdim=True)
        logits = torch.cat([positive, queries @ negatives.T], dim=1) / self.temperature
        return F.cross_entropy(logits, torch.zeros(len(queries), dtype=torch.long, device=queries.device))

    def _in_batch(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """This process's 2n anchors against the 2N projections of every process (N = n in one process)."""
        n = len(a)
        candidates = torch.cat([distributed.gather_with_grad(a), distributed.gather_with_grad(b)])
        total = len(candidates) // 2  # the global batch
        index = torch.arange(n, device=a.device) + distributed.rank() * n  # this process's rows
        logits = (torch.cat([a, b]) @ candidates.T) / self.temperature
        own = torch.cat([index, index + total])  # each anchor's own column
        rows = torch.arange(2 * n, device=a.device)
        logits = logits.index_put((rows, own), logits.new_tensor(float("-inf")))
        targets = torch.cat([index + total, index])  # a_i's positive is b_i, and back
        return F.cross_entropy(logits, targets)


def normalized_regression_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BYOL's ``|| p/|p| - z/|z| ||^2 = 2 - 2 cos(p, z)`` (Grill et al. 2020, eq. 2), mean over the batch.

    ``target`` is detached: gradients flow only into the online network.
    """
    with torch.autocast(prediction.device.type, enabled=False):
        cosine = F.cosine_similarity(at_least_float32(prediction), at_least_float32(target.detach()), dim=1)
        return (2 - 2 * cosine).mean()
