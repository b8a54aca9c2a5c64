"""The losses of SimCLR, MoCo v2, BYOL, Barlow Twins and VICReg.

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

:class:`BarlowTwinsLoss` and :class:`VICRegLoss` regularise statistics of the batch (a
cross-correlation, variances, covariances), so under several processes they use the
global batch, as both papers do: every process computes the same global loss on the
embeddings :func:`edgessl.distributed.gather_with_grad` concatenates, whose backward gives
each process ``world_size`` times its share of the gradient, and DDP's mean over
processes makes that the single-process gradient. They too run in float32, and return
their terms as diagnostics (a :class:`StepOutput`).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from edgessl import distributed
from edgessl.distributed import at_least_float32
from edgessl.methods.base import StepOutput


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


def off_diagonal(matrix: torch.Tensor) -> torch.Tensor:
    """The D * (D - 1) off-diagonal entries of a square matrix as a flat view (no D x D mask)."""
    d = len(matrix)
    return matrix.flatten()[:-1].view(d - 1, d + 1)[:, 1:].flatten()


def _check_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape or a.ndim != 2 or len(a) < 2:
        raise ValueError(
            "expected two (N, D) batches of the same shape with N >= 2, "
            f"got {tuple(a.shape)} and {tuple(b.shape)}"
        )


def _global_float32(z: torch.Tensor) -> torch.Tensor:
    """A view's embeddings over the global batch (with gradient to this process's part), in float32: what
    both batch-statistics losses regularise."""
    return distributed.gather_with_grad(at_least_float32(z))


class BarlowTwinsLoss(nn.Module):
    """Barlow Twins (Zbontar et al. 2021, eq. 1-2): the views' cross-correlation pulled towards identity.

    Each dimension is standardised over the batch (mean 0, biased variance 1, eps 1e-5:
    the released code's ``BatchNorm1d(affine=False)``); ``C = a_norm.T @ b_norm / N`` and
    the loss is ``sum_i (1 - C_ii)^2 + lambda * sum_{i != j} C_ij^2``. Diagnostics:
    ``on_diagonal`` (the invariance term) and ``off_diagonal`` (redundancy, unweighted).
    """

    def __init__(self, off_diagonal_weight: float) -> None:
        super().__init__()
        if not off_diagonal_weight >= 0:
            raise ValueError(f"off_diagonal_weight must be >= 0, got {off_diagonal_weight}")
        self.off_diagonal_weight = off_diagonal_weight

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> StepOutput:
        """``a``, ``b``: ``(N, D)`` projections of the two views (this process's part of the batch)."""
        _check_pair(a, b)
        with torch.autocast(a.device.type, enabled=False):
            a, b = _global_float32(a), _global_float32(b)
            c = _standardize(a).T @ _standardize(b) / len(a)
            on = (torch.diagonal(c) - 1).pow(2).sum()
            off = off_diagonal(c).pow(2).sum()
        loss = on + self.off_diagonal_weight * off
        return StepOutput(loss, {"on_diagonal": on.detach(), "off_diagonal": off.detach()})


def _standardize(z: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    return (z - z.mean(dim=0)) / torch.sqrt(z.var(dim=0, unbiased=False) + eps)


class VICRegLoss(nn.Module):
    """VICReg (Bardes et al. 2022, eq. 1-6) with the normalisation of the released code.

    ``invariance``: the mean squared difference of the views over batch and dimensions.
    ``variance``: per view, the mean over dimensions of ``max(0, 1 - sqrt(Var + eps))``
    (unbiased variance), averaged over the two views. ``covariance``: per view, the sum of
    squared off-diagonal entries of the covariance matrix (``/ (N - 1)``) divided by D,
    summed over the two views. The loss weighs them by lambda, mu and nu. The paper's
    eq. 5-6 sum the invariance over dimensions and the two variance terms; its
    lambda = mu = 25 come with the code's means, so those are kept (lightly's VICRegLoss too).
    """

    def __init__(
        self, invariance_weight: float, variance_weight: float, covariance_weight: float, eps: float
    ) -> None:
        super().__init__()
        weights = (invariance_weight, variance_weight, covariance_weight)
        if not all(w >= 0 for w in weights) or not eps > 0:
            raise ValueError(f"VICReg needs weights >= 0 and eps > 0, got {weights} and eps {eps}")
        self.weights, self.eps = weights, eps

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> StepOutput:
        """``a``, ``b``: ``(N, D)`` embeddings (expander outputs) of the two views."""
        _check_pair(a, b)
        with torch.autocast(a.device.type, enabled=False):
            a, b = _global_float32(a), _global_float32(b)
            terms = {
                "invariance": F.mse_loss(a, b),
                "variance": (_variance_hinge(a, self.eps) + _variance_hinge(b, self.eps)) / 2,
                "covariance": _covariance_penalty(a) + _covariance_penalty(b),
            }
        lam, mu, nu = self.weights
        loss = lam * terms["invariance"] + mu * terms["variance"] + nu * terms["covariance"]
        return StepOutput(loss, {name: term.detach() for name, term in terms.items()})


def _variance_hinge(z: torch.Tensor, eps: float) -> torch.Tensor:
    """VICReg eq. 1-2 with gamma = 1: how far each dimension's regularised std falls short of 1, averaged."""
    return F.relu(1 - torch.sqrt(z.var(dim=0) + eps)).mean()


def _covariance_penalty(z: torch.Tensor) -> torch.Tensor:
    """VICReg eq. 3-4: the squared off-diagonal covariances, summed and divided by the dimension."""
    centred = z - z.mean(dim=0)
    return off_diagonal(centred.T @ centred / (len(z) - 1)).pow(2).sum() / z.shape[1]


def dino_teacher_probabilities(
    teacher: torch.Tensor, center: torch.Tensor, temperature: float
) -> torch.Tensor:
    """DINO's teacher targets (Caron et al. 2021, section 3.1, eq. 1 and "avoiding collapse"): the softmax
    of the centred teacher outputs at the low, sharpening temperature ``tau_t``, without gradient.

    Centring (subtracting ``center``, a running mean of the teacher's outputs) keeps one dimension
    from dominating; sharpening keeps the targets from going uniform. Float32 (float64 stays).
    """
    if not temperature > 0:
        raise ValueError(f"teacher temperature must be positive, got {temperature}")
    with torch.autocast(teacher.device.type, enabled=False):
        teacher = at_least_float32(teacher.detach())
        return F.softmax((teacher - center.to(teacher.dtype)) / temperature, dim=-1)


def dino_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    center: torch.Tensor,
    student_temperature: float,
    teacher_temperature: float,
    teacher_crops: int = 2,
) -> torch.Tensor:
    """DINO's loss (Caron et al. 2021, eq. 3; the released ``DINOLoss``): the mean over pairs of views of
    the cross-entropy ``H(P_t(x_iq), P_s(x_v))`` over the batch, for every teacher view ``iq`` and every
    student view ``v != iq``.

    ``student``: ``(S * N, K)`` outputs of the student's ``S`` views, view-major, the ``teacher_crops``
    global views first (the views the teacher saw, in the same order); ``teacher``: ``(T * N, K)``
    outputs of the teacher on those ``T`` views; ``center``: ``(1, K)`` or ``(K,)``. The student's
    distribution is ``softmax(s / tau_s)``, the teacher's :func:`dino_teacher_probabilities`.
    The sum over pairs is taken in closed form (all pairs, less the ``T`` same-view ones), which is
    the released double loop's value with one product per view instead of one per pair.
    """
    if student.ndim != 2 or teacher.ndim != 2 or student.shape[1] != teacher.shape[1]:
        raise ValueError(
            f"expected (S*N, K) student and (T*N, K) teacher outputs, got {tuple(student.shape)} and "
            f"{tuple(teacher.shape)}"
        )
    if teacher_crops < 1 or len(teacher) % teacher_crops:
        raise ValueError(f"{len(teacher)} teacher rows do not split into {teacher_crops} views")
    batch = len(teacher) // teacher_crops
    student_crops = len(student) // batch
    if student_crops * batch != len(student) or student_crops < max(teacher_crops, 2):
        raise ValueError(
            f"{len(student)} student rows are not at least {max(teacher_crops, 2)} views of the "
            f"teacher's {batch} images"
        )
    if center.numel() != student.shape[1]:
        raise ValueError(f"center has {center.numel()} entries for {student.shape[1]} outputs")
    if not student_temperature > 0:
        raise ValueError(f"student temperature must be positive, got {student_temperature}")
    with torch.autocast(student.device.type, enabled=False):
        targets = dino_teacher_probabilities(teacher, center.reshape(1, -1), teacher_temperature)
        log_p = F.log_softmax(at_least_float32(student) / student_temperature, dim=-1)
        log_p = log_p.view(student_crops, batch, -1)
        q = targets.view(teacher_crops, batch, -1)
        every_pair = (q.sum(0) * log_p.sum(0)).sum(-1)  # (N,): sum over all (iq, v) of q_iq . log p_v
        same_view = (q * log_p[:teacher_crops]).sum(-1).sum(0)  # (N,): the v == iq pairs DINO skips
        pairs = teacher_crops * student_crops - teacher_crops
        return -(every_pair - same_view).mean() / pairs
