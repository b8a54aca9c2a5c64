"""The contrastive and regression losses of SimCLR, MoCo v2 and BYOL.

:class:`InfoNCELoss` is NT-Xent (SimCLR) when called on two batches of projections, and
MoCo's InfoNCE when also given a queue of negative keys. :func:`normalized_regression_loss`
is BYOL's ``2 - 2 cos``. Both work on L2-normalised embeddings, in float32 even under
mixed precision (bf16 keeps ~3 digits of a cosine: too coarse near a loss of 0 or at
temperature 0.1), and compute the log-softmax through ``cross_entropy`` (numerically
stable at low temperatures).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class InfoNCELoss(nn.Module):
    """Cross-entropy of each sample's positive against its negatives, on cosine similarity / temperature.

    Without ``negatives`` (SimCLR's NT-Xent, Chen et al. 2020, eq. 1): the 2N projections
    of two views; for each one the positive is its other view and the negatives are the
    other 2N - 2 projections; the loss is the mean over all 2N anchors.

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
            a, b = F.normalize(a.float(), dim=1), F.normalize(b.float(), dim=1)
            if negatives is not None:
                return self._with_queue(a, b, F.normalize(negatives.float(), dim=1))
            return self._in_batch(a, b)

    def _with_queue(self, queries: torch.Tensor, keys: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        positive = (queries * keys).sum(dim=1, keepdim=True)
        logits = torch.cat([positive, queries @ negatives.T], dim=1) / self.temperature
        return F.cross_entropy(logits, torch.zeros(len(queries), dtype=torch.long, device=queries.device))

    def _in_batch(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        n = len(a)
        z = torch.cat([a, b])
        logits = (z @ z.T) / self.temperature
        logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
        index = torch.arange(n, device=z.device)
        targets = torch.cat([index + n, index])  # anchor i's positive is i + N, and back
        return F.cross_entropy(logits, targets)


def normalized_regression_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BYOL's ``|| p/|p| - z/|z| ||^2 = 2 - 2 cos(p, z)`` (Grill et al. 2020, eq. 2), mean over the batch.

    ``target`` is detached: gradients flow only into the online network.
    """
    with torch.autocast(prediction.device.type, enabled=False):
        cosine = F.cosine_similarity(prediction.float(), target.detach().float(), dim=1)
        return (2 - 2 * cosine).mean()
