"""Data-parallel training on several processes: PyTorch's DistributedDataParallel (DDP) under
``torchrun``, NCCL on CUDA (one GPU per process, ``cuda:LOCAL_RANK``), Gloo on the CPU.

The rule everything here serves: a run on W processes computes what one process computes with
the same global batch. Every rank draws the same batches and augmentation and trains on its
contiguous slice of each global batch (:func:`local_rows`); BatchNorm is synchronised
(:func:`data_parallel`); losses are taken over the global batch (:func:`global_batch`,
:func:`loss_for_backward`), so per-batch small-loss selection and NT-Xent's negatives are one
process's; per-sample outputs come back in sample order (:func:`gather_rows`). The decisions
and their costs: docs/distributed.md.

Every helper degrades to one process: outside a process group of two or more, ``rank()`` is 0,
``world_size()`` 1, a slice is the whole batch, a gather returns its input and
``data_parallel`` the model itself. The launch (``train.processes``, the re-execution under
torchrun, the error naming a failed rank) is :func:`alr_core.common.cli.run_stage`'s.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn

from alr_core.common.cli import torchrun_rank
from alr_core.common.errors import AlrError


def join(device_name: str) -> None:
    """Under torchrun with two or more processes: join the process group, NCCL with this
    process's GPU ``cuda:LOCAL_RANK`` when ``device_name`` (``train.device``) resolves to CUDA,
    Gloo otherwise. Anywhere else, and when already joined, nothing. A training stage calls it
    first thing after reading its params; :func:`alr_core.common.cli.run_stage` leaves the group."""
    launched = torchrun_rank()
    if launched is None or launched[1] == 1 or dist.is_initialized():
        return
    if device_name != "cpu" and torch.cuda.is_available():
        local = int(os.environ["LOCAL_RANK"])
        if local >= torch.cuda.device_count():
            raise AlrError(
                f"torchrun started {os.environ.get('LOCAL_WORLD_SIZE', local + 1)} processes on this machine "
                f"but it has {torch.cuda.device_count()} GPUs; set train.processes (or --nproc-per-node) to "
                f"at most {torch.cuda.device_count()}"
            )
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    else:
        dist.init_process_group("gloo")


def is_distributed() -> bool:
    """True inside a process group of two or more processes."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def local_rank() -> int:
    """This process's index among those of its machine (its GPU); 0 in one process."""
    return int(os.environ.get("LOCAL_RANK", 0)) if is_distributed() else 0


def is_main_process() -> bool:
    """Rank 0, the one process that writes outputs and prints (the others return before)."""
    return rank() == 0


def slice_bounds(num_rows: int, world: int) -> list[int]:
    """Where the W contiguous slices of a global batch of ``num_rows`` start, and the end:
    rank r holds rows bounds[r]:bounds[r + 1]; sizes differ by at most one (a slice is empty
    when num_rows < W)."""
    return [num_rows * r // world for r in range(world + 1)]


def local_rows(num_rows: int) -> slice:
    """This rank's slice of a global batch of ``num_rows`` rows (all of them in one process)."""
    bounds = slice_bounds(num_rows, world_size())
    return slice(bounds[rank()], bounds[rank() + 1])


def gather_rows(local: torch.Tensor, num_rows: int) -> torch.Tensor:
    """The ranks' slices (:func:`local_rows`) of a global batch of ``num_rows`` rows, put back
    together in row order: local (n_r, ...) → (num_rows, ...), the same on every rank. No
    gradient flows back (see :func:`global_batch`).

    Each slice is padded to the largest and all-gathered (NCCL and Gloo both need equal sizes);
    the padding is cut off by the known slice sizes."""
    if not is_distributed():
        return local
    bounds = slice_bounds(num_rows, world_size())
    sizes = [high - low for low, high in zip(bounds, bounds[1:])]
    if len(local) != sizes[rank()]:
        raise ValueError(f"rank {rank()} holds {len(local)} rows of a global batch of {num_rows}; "
                         f"its slice has {sizes[rank()]}")  # fmt: skip
    padded = local.new_zeros((max(sizes), *local.shape[1:]))
    padded[: len(local)] = local
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded)
    return torch.cat([part[:size] for part, size in zip(parts, sizes)])


def global_batch(local: torch.Tensor, num_rows: int) -> torch.Tensor:
    """The global batch's tensor (num_rows, ...) on every rank, in which this rank's own rows
    are ``local`` itself, gradient and all, and the other ranks' rows are detached copies.

    A loss of it has the one-process value on every rank and, through its own rows, each rank's
    share of the gradient; :func:`loss_for_backward` makes DDP's average of the shares the
    one-process gradient."""
    if not is_distributed():
        return local
    gathered = gather_rows(local.detach(), num_rows)
    mine = local_rows(num_rows)
    return torch.cat([gathered[: mine.start], local, gathered[mine.stop :]])


def loss_for_backward(loss: torch.Tensor) -> torch.Tensor:
    """A :func:`global_batch` loss, scaled for DDP: DDP averages the W ranks' gradients, each
    the gradient through one rank's rows, so W·loss makes the average their sum, the gradient
    of one process."""
    return loss * world_size()


class _SumOverRanks(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        total = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        # every rank's loss reads its own copy of the sum: the gradient of each addend is the
        # sum of those copies' gradients
        return _SumOverRanks.apply(grad)


def sum_over_ranks(tensor: torch.Tensor) -> torch.Tensor:
    """The sum of ``tensor`` over the ranks (same shape), on every rank, with its gradient."""
    return _SumOverRanks.apply(tensor)


class CpuSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """torch's SyncBatchNorm (batch statistics over every rank's slice of the batch) for the
    CPU and Gloo, where torch's refuses to run: it all-reduces the per-channel sums itself.

    The statistics are those of F.batch_norm on the global batch: mean and biased variance for
    the normalisation, the running variance unbiased over the global count. Both all-reduces
    carry gradients (:func:`sum_over_ranks`), so the backward pass is that of the global batch
    as well. Outside a process group, and in eval mode, it is plain BatchNorm. Any input of
    shape (B, C, ...)."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected an input of at least 2 dimensions (B, C, ...), got {input.dim()}")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not (self.training and is_distributed()):
            return super().forward(input)
        dims = [0, *range(2, input.dim())]
        shape = [1, -1] + [1] * (input.dim() - 2)
        count = input.new_tensor([input.numel() // input.shape[1]])
        sums = sum_over_ranks(torch.cat([input.sum(dims), count]))
        channel_sums, total = sums[:-1], sums[-1]
        mean = channel_sums / total
        centered = input - mean.view(shape)
        variance = sum_over_ranks((centered * centered).sum(dims)) / total
        output = centered * torch.rsqrt(variance + self.eps).view(shape)
        if self.affine:
            output = output * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                unbiased = variance * (total / (total - 1).clamp(min=1))
                # F.batch_norm's update, term for term
                self.running_mean.copy_(momentum * mean + (1 - momentum) * self.running_mean)
                self.running_var.copy_(momentum * unbiased + (1 - momentum) * self.running_var)
        return output


class CpuSyncBatchNormAct(CpuSyncBatchNorm):
    """:class:`CpuSyncBatchNorm` followed by the dropout and activation of the timm
    ``BatchNormAct2d`` it replaces (its ``drop`` and ``act`` children, in timm's order)."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return self.act(self.drop(super().forward(input)))


def synchronise_batchnorm(module: nn.Module) -> nn.Module:
    """Every BatchNorm layer of ``module`` replaced, in place, by a synchronised one sharing its
    parameters and buffers (so the optimiser's parameters and the state-dict keys stay the
    same, and a checkpoint loads into a plain network): torch's SyncBatchNorm on a GPU (timm's
    converter where timm layers are, which keeps the activation of its BatchNormAct2d),
    :class:`CpuSyncBatchNorm` on the CPU. Returns ``module``, or the new layer when ``module``
    is itself a BatchNorm layer."""
    for layer in module.modules():
        handled = isinstance(layer, (CpuSyncBatchNorm, nn.SyncBatchNorm)) or _is_timm_norm_act(layer)
        if (isinstance(layer, nn.modules.batchnorm._BatchNorm) and not handled
                and type(layer).forward is not nn.modules.batchnorm._BatchNorm.forward):  # fmt: skip
            # its forward does more than normalise: a synchronised copy would silently drop that
            raise AlrError(f"{type(layer).__name__} is a BatchNorm layer with a forward of its own, which "
                           "train.processes > 1 cannot synchronise; use train.processes: 1 or another "
                           "model.arch")  # fmt: skip
    if next(module.parameters()).device.type != "cpu":
        if any(_from_timm(layer) for layer in module.modules()):
            from timm.layers import convert_sync_batchnorm

            return convert_sync_batchnorm(module)
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return _cpu_synchronised(module)


def _from_timm(module: nn.Module) -> bool:
    return type(module).__module__.startswith("timm.")


def _is_timm_norm_act(module: nn.Module) -> bool:
    """timm's BatchNormAct2d (or its synchronised form): BatchNorm, then its dropout and activation."""
    return _from_timm(module) and type(module).__name__ in ("BatchNormAct2d", "SyncBatchNormAct")


def _cpu_synchronised(module: nn.Module) -> nn.Module:
    converted = module
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, CpuSyncBatchNorm):
        layer = CpuSyncBatchNormAct if _is_timm_norm_act(module) else CpuSyncBatchNorm
        converted = layer(module.num_features, module.eps, module.momentum, module.affine,
                          module.track_running_stats)  # fmt: skip
        converted.weight, converted.bias = module.weight, module.bias
        converted.running_mean, converted.running_var = module.running_mean, module.running_var
        converted.num_batches_tracked = module.num_batches_tracked
        converted.train(module.training)
    for name, child in module.named_children():
        converted.add_module(name, _cpu_synchronised(child))
    return converted


def same_on_every_rank(model: nn.Module) -> nn.Module:
    """``model`` with rank 0's parameters and buffers on every rank (in place), for a network
    that no DDP wrapper will copy them to: one that only computes features (``pretrain.method:
    none``), whose ranks would otherwise each hold the random weights of their own torch stream.
    Returns ``model``."""
    if is_distributed():
        with torch.no_grad():
            for tensor in [*model.parameters(), *model.buffers()]:
                dist.broadcast(tensor, src=0)
    return model


def data_parallel(model: nn.Module) -> nn.Module:
    """What a training loop calls forward on: ``model`` itself in one process; in a process
    group, ``model`` with synchronised BatchNorm (:func:`synchronise_batchnorm`, in place)
    wrapped in DDP, which starts every rank from rank 0's weights and averages the gradients.

    Keep ``model`` for everything but the training forward: its state dict has no ``module.``
    prefix and its no-grad passes need no DDP. Buffers are copied from rank 0 once, not at every
    forward (the synchronised statistics keep the running averages equal on every rank)."""
    if not is_distributed():
        return model
    model = synchronise_batchnorm(model)
    device = next(model.parameters()).device
    return nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None, forward_sync_buffers=False
    )
