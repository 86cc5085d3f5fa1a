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


def exchange_losses(
    losses_f: torch.Tensor, losses_g: torch.Tensor, kept_f: torch.Tensor, kept_g: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Co-teaching's exchange: f learns from the samples g kept, g from those f kept.

    Returns (loss for f, loss for g), each the mean cross-entropy over the peer's kept set.
    """
    return losses_f[kept_g].mean(), losses_g[kept_f].mean()
