"""Co-teaching's sample-selection rules (docs/method.md, phase 1). Pure functions over tensors.

``losses``, ``vog`` and ``labels`` have shape (B,) for one batch, or (N,) for the global
clean guess after training. Selections are bool masks over those arrays; ties are broken by
position (stable sorts), so a selection is deterministic.
"""

from __future__ import annotations

import math
from typing import Optional

import torch


def forget_rate_schedule(epoch: int, tau: float, num_gradual: int, exponent: float) -> float:
    """R(e) = τ · min(e / T_k, 1)^c for epoch e = 0, 1, ...; τ from the start when T_k = 0."""
    if num_gradual == 0:
        return tau
    return tau * min(epoch / num_gradual, 1.0) ** exponent


def num_to_keep(size, forget_rate: float):
    """n = ⌊(1 − R)·s⌋, at least 1: of an int ``size``, or elementwise of an integer tensor (the
    selection's per-sample group sizes, without reading them back from the device)."""
    if isinstance(size, torch.Tensor):
        return torch.floor((1.0 - forget_rate) * size.double() + 1e-9).clamp(min=1).long()
    return max(1, math.floor((1.0 - forget_rate) * size + 1e-9))


def kept_mask(
    losses: torch.Tensor,
    labels: torch.Tensor,
    forget_rate: float,
    vog: Optional[torch.Tensor] = None,
    mix: float = 0.0,
    class_aware: bool = False,
) -> torch.Tensor:
    """The samples a network keeps, bool (B,).

    Within each group of size s — the whole batch, or each observed class when
    ``class_aware`` (our extension, so every class present keeps at least one) — n =
    :func:`num_to_keep` (s, R) samples are kept: S = L ∪ V, L the n − ⌊m·n⌋ smallest losses
    and V the ⌊m·n⌋ smallest VOG outside L (m = ``mix``; 0 without ``vog``). |S| = n exactly
    (docs/method.md's ⌊(1 − m)·n⌋ + ⌊m·n⌋ can lose a sample and, at n = 1, keep none). Ties
    go to the earlier position in L, and to the smaller loss (then position) in V.

    Sorts and running maxima only, no data-dependent shapes: nothing waits for the device,
    so a GPU's training loop is never stalled by the selection (issue 26).
    """
    by_loss = torch.argsort(losses, stable=True)
    if class_aware:
        group = labels
        by_loss = by_loss[torch.argsort(group[by_loss], stable=True)]  # by (group, loss, position)
        rank, size = _rank_and_size(group[by_loss])
    else:
        group = torch.zeros_like(labels)
        rank = torch.arange(len(losses), device=losses.device)
        size = torch.full_like(rank, len(losses))
    keep_count = num_to_keep(size, forget_rate)
    vog_count = torch.floor(mix * keep_count.double() + 1e-9).long() if vog is not None else torch.zeros_like(rank)
    in_loss_set = _unsorted(by_loss, rank < keep_count - vog_count)
    if vog is None or mix == 0:
        return in_loss_set
    vog_count = _unsorted(by_loss, vog_count)
    # the rest of each group by VOG; a stable sort of the loss order keeps the smaller loss first on ties
    by_vog = by_loss[torch.argsort(vog[by_loss], stable=True)]
    block = 2 * group + in_loss_set.long()  # (group, in L) blocks, each in VOG order
    by_vog = by_vog[torch.argsort(block[by_vog], stable=True)]
    vog_rank, _ = _rank_and_size(block[by_vog])
    in_vog_set = _unsorted(by_vog, vog_rank < vog_count[by_vog]) & ~in_loss_set
    return in_loss_set | in_vog_set


def _rank_and_size(sorted_groups: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For group ids in sorted order (B,): each position's rank within its group and its group's size."""
    positions = torch.arange(len(sorted_groups), device=sorted_groups.device)
    starts = torch.ones_like(sorted_groups, dtype=torch.bool)
    starts[1:] = sorted_groups[1:] != sorted_groups[:-1]
    ends = torch.ones_like(starts)
    ends[:-1] = starts[1:]
    first = torch.cummax(torch.where(starts, positions, 0), 0).values
    last = torch.cummin(torch.where(ends, positions, len(positions)).flip(0), 0).values.flip(0)
    return positions - first, last - first + 1


def _unsorted(order: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``values`` given in ``order`` (values[i] belongs to sample order[i]) back in sample order."""
    out = torch.empty_like(values)
    out[order] = values
    return out


def masked_loss(losses: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Σ weights·losses over the number of samples with weight > 0 (0 when there are none):
    the mean loss over a whole-split keep mask's samples in the batch, ``weights`` (B,) being
    the mask (0/1, times the class weight under ``lnl.class_balance: loss``). No index
    tensors: nothing is read back to the host per batch."""
    return (losses * weights).sum() / (weights > 0).sum().clamp(min=1)


def masked_exchange_losses(
    losses_f: torch.Tensor, losses_g: torch.Tensor, weights_f: torch.Tensor, weights_g: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Co-teaching's exchange: f learns from the samples g keeps, g from those f keeps.
    ``weights_f``, ``weights_g`` (B,): each network's keep mask (this batch's selection, or a
    whole-split mask's rows), times the class weight where one applies; (loss for f, loss for
    g), each :func:`masked_loss`."""
    return masked_loss(losses_f, weights_g), masked_loss(losses_g, weights_f)


def balance_weights(counts: torch.Tensor) -> torch.Tensor:
    """Inverse-frequency class weights (K,) from per-class counts (K,): w_c = n / (K' · n_c)
    over the K' classes with n_c > 0 (0 elsewhere), so the weights average 1 over the samples."""
    counts = counts.float()
    present = counts > 0
    weights = torch.zeros_like(counts)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights
