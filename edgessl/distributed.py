"""Every cross-process operation edgessl makes, in one place; methods never call ``torch.distributed``.

Under ``accelerate launch`` / ``torchrun`` each process holds ``1 / world_size`` of the
global batch. A method's loss on each process is the mean of its per-sample terms over
that process's samples. The operations here are written so that this local loss,
back-propagated on every process and averaged by DDP, gives exactly the gradient of the
single-process loss on the global batch:

- :func:`gather_with_grad` concatenates every process's rows. Its backward sums, on each
  process, the gradients that *all* processes' losses send to its rows (an all-reduce),
  so process ``r`` receives ``d(sum_s loss_s) / d z_r``. The single-process loss on the
  global batch is ``L = (1 / N) sum_s loss_s`` (equal shards), and DDP divides the sum of
  the processes' parameter gradients by ``N``: ``(1 / N) d(sum_s loss_s) / d theta = dL / d theta``.
  No further scaling is needed; a gather whose backward kept only the local process's
  gradient would miss the terms other processes' anchors send to this process's rows.
- :func:`convert_sync_batchnorm` makes BatchNorm layers normalise over the global batch; its
  backward likewise carries the gradient of the sum of all processes' losses (the batch
  statistics depend on every process's samples), which DDP's mean turns into the global-batch
  gradient.
- :func:`gather` (no gradient) and :func:`shared_permutation` serve MoCo's shuffled BN and
  queue; :func:`mean_reduce` and :func:`average_batchnorm_statistics` keep state equal
  across processes.

With one process (or no process group) every function is the identity or a no-op, so
methods call them unconditionally.

How a run's processes are started and checked is :mod:`edgessl.training.setup`'s.
"""

from __future__ import annotations

import torch
from torch import distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

# Devices whose tensors torch's own SyncBatchNorm accepts (its forward refuses the rest, CPU included).
TORCH_SYNC_BN_DEVICES = ("cuda", "hpu", "xpu")


# ----------------------------------------------------------------------------- rank and world size


def is_distributed() -> bool:
    """Whether this process is one of several in an initialised process group."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def local_rows(gathered: torch.Tensor) -> torch.Tensor:
    """This process's rows of a tensor gathered in rank order from equal shards."""
    return gathered.chunk(world_size())[rank()] if is_distributed() else gathered


def at_least_float32(tensor: torch.Tensor) -> torch.Tensor:
    """Half-precision tensors in float32 (statistics and losses), wider ones as they are (float64 checks)."""
    return tensor if tensor.dtype == torch.float64 else tensor.float()


# ----------------------------------------------------------------------------- collectives


def _all_gather_single(output: torch.Tensor, tensor: torch.Tensor) -> None:
    # torch >= 2.10 names it all_gather_single; earlier releases all_gather_into_tensor (now deprecated).
    gather_single = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
    gather_single(output, tensor)


def gather(tensor: torch.Tensor) -> torch.Tensor:
    """Every process's ``tensor`` (equal shapes) concatenated along dim 0 in rank order; no gradient."""
    if not is_distributed():
        return tensor
    tensor = tensor.detach().contiguous()
    output = tensor.new_empty((world_size() * tensor.shape[0], *tensor.shape[1:]))
    _all_gather_single(output, tensor)
    return output


class _GatherWithGrad(torch.autograd.Function):
    """All-gather forward; backward all-reduces (sums) the gradient and returns this process's rows."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        return gather(tensor)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()  # reduced in place: never write into autograd's own buffer
        dist.all_reduce(grad)
        return local_rows(grad)


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Every process's ``(n, ...)`` rows concatenated in rank order, differentiable for this process's rows.

    The gradient this process's rows receive is the sum over all processes of the
    gradients their losses send to them (see the module docstring for why that, with a
    per-process mean loss and DDP's mean, is the global-batch gradient). The identity in
    one process.
    """
    return _GatherWithGrad.apply(tensor) if is_distributed() else tensor


def mean_reduce(tensor: torch.Tensor) -> torch.Tensor:
    """The mean of ``tensor`` over processes (a new tensor; ``tensor`` itself in one process)."""
    if not is_distributed():
        return tensor
    total = tensor.detach().clone()
    dist.all_reduce(total)
    return total / world_size()


def shared_permutation(n: int, device: torch.device) -> torch.Tensor:
    """A random permutation of ``range(n)``, the same on every process (rank 0's draw).

    Every process draws one, so their random streams advance alike, and rank 0's is broadcast.
    """
    order = torch.randperm(n, device=device)
    if is_distributed():
        dist.broadcast(order, src=0)
    return order


# ----------------------------------------------------------------------------- batch normalisation


def _global_moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-channel mean and biased variance over every process's batch, and the global count.

    Each process's mean, variance and count are gathered (one collective) and combined
    exactly (the parallel-variance formula of Chan et al.), with gradients flowing back to
    every process's own statistics through :func:`gather_with_grad`.
    """
    channels = x.shape[1]
    dims = [0, *range(2, x.ndim)]
    local_var, local_mean = torch.var_mean(x, dim=dims, unbiased=False)
    count = x.new_full((1,), x.numel() // channels)
    stats = gather_with_grad(torch.cat([local_mean, local_var, count]).unsqueeze(0))
    means, variances, counts = stats[:, :channels], stats[:, channels:-1], stats[:, -1:].detach()
    total = counts.sum()
    mean = (counts * means).sum(0) / total
    var = (counts * (variances + (means - mean) ** 2)).sum(0) / total
    return mean, var, total


class CPUSyncBatchNorm(_BatchNorm):
    """BatchNorm over every process's batch for CPU tensors (gloo), where ``torch.nn.SyncBatchNorm`` refuses.

    torch's SyncBatchNorm accepts only GPU-like tensors (its forward and DDP's constructor
    both check), so CPU processes use this layer: the global statistics come from
    :func:`_global_moments` and the normalisation is written out in autograd ops — the
    mathematics of ``F.batch_norm`` (global mean and biased variance for the output, the
    unbiased variance for the running estimate), checked against one process on the
    global batch by ``tests/distributed/test_exactness.py``. Outside training or in one
    process it is plain BatchNorm. Parameters and buffers are named as BatchNorm's, so
    checkpoints load into either.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not (self.training and is_distributed()):
            return super().forward(input)
        self._check_input_dim(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average, as BatchNorm
                factor = 1.0 / float(self.num_batches_tracked)
        x = at_least_float32(input)
        mean, var, count = _global_moments(x)
        if self.track_running_stats:
            with torch.no_grad():
                self.running_mean.lerp_(mean.detach().to(self.running_mean), factor)
                unbiased = var.detach() * (count / (count - 1))
                self.running_var.lerp_(unbiased.to(self.running_var), factor)
        shape = (1, -1, *([1] * (x.ndim - 2)))
        out = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.weight is not None:
            out = out * self.weight.view(shape)
        if self.bias is not None:
            out = out + self.bias.view(shape)
        return out.to(input.dtype)


SYNC_BATCHNORM = (nn.SyncBatchNorm, CPUSyncBatchNorm)


def convert_sync_batchnorm(module: nn.Module, device: torch.device | str) -> int:
    """Replace every BatchNorm layer inside ``module`` by a synchronised one, in place; returns how many.

    ``torch.nn.SyncBatchNorm`` (fused kernels) on the devices it supports, :class:`CPUSyncBatchNorm`
    elsewhere. The new layers take over the old ones' parameters and buffers (the same
    tensors), so an optimiser built before the conversion still steps them. ``module``
    itself must not be a BatchNorm layer (it could not be replaced in place).
    """
    if isinstance(module, _BatchNorm):
        raise TypeError(
            "convert_sync_batchnorm converts the layers inside a module, not a BatchNorm layer itself"
        )
    layer_class = nn.SyncBatchNorm if torch.device(device).type in TORCH_SYNC_BN_DEVICES else CPUSyncBatchNorm
    converted = 0
    for name, child in module.named_children():
        if isinstance(child, _BatchNorm) and not isinstance(child, SYNC_BATCHNORM):
            module.add_module(name, _sync_copy(child, layer_class))
            converted += 1
        else:
            converted += convert_sync_batchnorm(child, device)
    return converted


def _sync_copy(layer: _BatchNorm, layer_class: type[_BatchNorm]) -> _BatchNorm:
    sync = layer_class(layer.num_features, layer.eps, layer.momentum, layer.affine, layer.track_running_stats)
    if layer.affine:
        sync.weight, sync.bias = layer.weight, layer.bias
    sync.running_mean, sync.running_var = layer.running_mean, layer.running_var
    sync.num_batches_tracked = layer.num_batches_tracked
    sync.train(layer.training)
    return sync


def average_batchnorm_statistics(module: nn.Module) -> None:
    """Replace each per-process BatchNorm running mean and variance by its mean over processes.

    Why: without SyncBatchNorm every process normalises its own shard, so each holds
    different running statistics, and DDP does not broadcast buffers here (MoCo's queue is
    kept equal by the method itself; rank 0's statistics alone would describe a
    ``1 / world_size`` sample). The mean over processes of the running means is exactly the
    running mean of the global batches' means (the moving average is linear and the
    shards are equal); for the variance it misses the spread of the shard means around the
    global mean, a small downward bias documented here rather than corrected. Layers that
    are already synchronised are equal on every process and left alone. One collective.
    """
    if not is_distributed():
        return
    buffers = [
        buffer
        for layer in module.modules()
        if isinstance(layer, _BatchNorm)
        and not isinstance(layer, SYNC_BATCHNORM)
        and layer.track_running_stats
        for buffer in (layer.running_mean, layer.running_var)
    ]
    if not buffers:
        return
    flat = torch.cat([buffer.detach().double().flatten() for buffer in buffers])
    dist.all_reduce(flat)
    flat /= world_size()
    for buffer, value in zip(buffers, flat.split([b.numel() for b in buffers]), strict=True):
        buffer.copy_(value.view_as(buffer))
