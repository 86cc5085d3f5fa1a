"""Co-teaching's sample-selection rules (docs/method.md, phase 1). Pure functions over tensors.

``losses``, ``vog`` and ``labels`` have shape (B,) for one batch, or (N,) for the global
clean guess after training. Selections are index tensors into those arrays. Ties are broken
by position (stable sort), so a selection is deterministic.
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


def num_to_keep(batch_size: int, forget_rate: float) -> int:
    """n = ⌊(1 − R)·|b|⌋, at least 1."""
    return max(1, math.floor((1.0 - forget_rate) * batch_size + 1e-9))


def select_loss_vog(losses: torch.Tensor, vog: Optional[torch.Tensor], n: int, mix: float) -> torch.Tensor:
    """S = L ∪ V: the small-loss set L plus V, the ⌊m·n⌋ smallest-VOG samples outside L.

    |L| = n − ⌊m·n⌋, so |S| = n exactly (docs/method.md's ⌊(1 − m)·n⌋ + ⌊m·n⌋ can lose a sample and,
    at n = 1, keep none). Without ``vog`` (or with m = 0) this is the plain small-loss rule.
    """
    n = min(n, len(losses))
    n_vog = math.floor(mix * n + 1e-9) if vog is not None else 0
    order = torch.argsort(losses, stable=True)
    by_loss, rest = order[: n - n_vog], order[n - n_vog :]
    if n_vog == 0:
        return by_loss
    by_vog = rest[torch.argsort(vog[rest], stable=True)[:n_vog]]
    return torch.cat([by_loss, by_vog])


def select_kept(
    losses: torch.Tensor,
    labels: torch.Tensor,
    forget_rate: float,
    vog: Optional[torch.Tensor] = None,
    mix: float = 0.0,
    class_aware: bool = False,
) -> torch.Tensor:
    """Indices of the samples a network keeps, shape (n,).

    Global: n = :func:`num_to_keep` over all samples, then :func:`select_loss_vog`.
    Class-aware (our extension): the same rule inside each observed class, with
    n_c = :func:`num_to_keep` of that class's size, so every class present keeps at least one.
    """
    if not class_aware:
        return select_loss_vog(losses, vog, num_to_keep(len(losses), forget_rate), mix)
    kept = []
    for cls in torch.unique(labels):
        members = torch.nonzero(labels == cls).squeeze(1)
        within = select_loss_vog(
            losses[members],
            vog[members] if vog is not None else None,
            num_to_keep(len(members), forget_rate),
            mix,
        )
        kept.append(members[within])
    return torch.sort(torch.cat(kept)).values


def with_always_kept(kept: torch.Tensor, always: torch.Tensor) -> torch.Tensor:
    """``kept`` indices (n,) joined with the positions where the bool mask ``always`` (B,) is
    set, sorted and without repeats: expert-relabelled samples that no selection rule drops."""
    return torch.unique(torch.cat([kept, torch.nonzero(always).squeeze(1)]))


def exchange_losses(
    losses_f: torch.Tensor,
    losses_g: torch.Tensor,
    kept_f: torch.Tensor,
    kept_g: torch.Tensor,
    weights: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Co-teaching's exchange: f learns from the samples g kept, g from those f kept.

    Returns (loss for f, loss for g), each the mean cross-entropy over the peer's kept set,
    each sample weighted by ``weights`` (B,) when given (``lnl.class_balance: loss``).
    """
    if weights is None:
        return losses_f[kept_g].mean(), losses_g[kept_f].mean()
    return (losses_f[kept_g] * weights[kept_g]).mean(), (losses_g[kept_f] * weights[kept_f]).mean()


def masked_loss(losses: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Σ weights·losses over the number of samples with weight > 0 (0 when there are none):
    the mean loss over a whole-split keep mask's samples in the batch, ``weights`` (B,) being
    the mask (0/1, times the class weight under ``lnl.class_balance: loss``). No index
    tensors: nothing is read back to the host per batch."""
    return (losses * weights).sum() / (weights > 0).sum().clamp(min=1)


def masked_exchange_losses(
    losses_f: torch.Tensor, losses_g: torch.Tensor, weights_f: torch.Tensor, weights_g: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The exchange with whole-split keep masks (:func:`masked_loss`): f learns from the
    samples g's mask keeps, ``weights_g`` (B,), and g from f's, ``weights_f``."""
    return masked_loss(losses_f, weights_g), masked_loss(losses_g, weights_f)


def balance_weights(counts: torch.Tensor) -> torch.Tensor:
    """Inverse-frequency class weights (K,) from per-class counts (K,): w_c = n / (K' · n_c)
    over the K' classes with n_c > 0 (0 elsewhere), so the weights average 1 over the samples."""
    counts = counts.float()
    present = counts > 0
    weights = torch.zeros_like(counts)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights
