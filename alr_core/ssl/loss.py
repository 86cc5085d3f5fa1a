"""The self-supervised losses: NT-Xent, SimCLR's contrastive loss (Chen et al., ICML 2020), and
VICReg's variance-invariance-covariance loss (Bardes et al., ICLR 2022), which needs no negatives."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

# VICReg's weights and constants as its paper sets them (λ, μ, ν, ε, γ)
VICREG_INVARIANCE_WEIGHT = 25.0
VICREG_VARIANCE_WEIGHT = 25.0
VICREG_COVARIANCE_WEIGHT = 1.0
VICREG_EPSILON = 1e-4
VICREG_TARGET_STD = 1.0


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """Normalised temperature-scaled cross-entropy of two views' embeddings.

    z1, z2: (B, D), row i of each the two views of image i. Rows are L2-normalised, so only
    directions count. Each of the 2B embeddings is an anchor whose positive is the other view
    of its image and whose negatives are the other 2B − 2 embeddings:
    ℓ(a) = −log( exp(s(a, a⁺)/t) / Σ_{k ≠ a} exp(s(a, k)/t) ) with s the cosine similarity
    and t = ``temperature``. Returns the mean over the 2B anchors, a 0-d tensor in nats;
    log(2B − 1) is its value when all embeddings coincide (chance).
    """
    _check_pair("nt_xent", z1, z2)
    batch = len(z1)
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    logits = z @ z.T / temperature
    # an anchor is never its own negative
    logits.fill_diagonal_(float("-inf"))
    positives = torch.cat([torch.arange(batch, 2 * batch), torch.arange(batch)]).to(z.device)
    return F.cross_entropy(logits, positives)


def vicreg(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """VICReg's loss of two views' embeddings: λ·s + μ·(v(z1) + v(z2)) + ν·(c(z1) + c(z2)).

    z1, z2: (B, D), row i of each the two views of image i, B ≥ 2. Invariance s: the mean
    squared difference of the two views, per element. Variance v: the mean over dimensions of
    max(0, γ − √(Var + ε)), the batch's (unbiased) standard deviation per dimension held up to
    γ = 1, which is what keeps the embeddings from collapsing without negatives. Covariance c:
    the squared off-diagonal entries of the batch covariance matrix, summed, over D, which
    decorrelates the dimensions. λ = μ = 25, ν = 1 as in the paper. Returns a 0-d tensor;
    2μ(1 − √ε) ≈ 49.5 is its value when all embeddings coincide (collapse).
    """
    _check_pair("vicreg", z1, z2)
    if len(z1) < 2:
        raise ValueError(f"vicreg needs at least 2 rows per batch for a variance, got {len(z1)}")
    z1, z2 = z1.float(), z2.float()
    invariance = F.mse_loss(z1, z2)
    return (
        VICREG_INVARIANCE_WEIGHT * invariance
        + VICREG_VARIANCE_WEIGHT * (_variance_term(z1) + _variance_term(z2))
        + VICREG_COVARIANCE_WEIGHT * (_covariance_term(z1) + _covariance_term(z2))
    )


def vicreg_collapse_loss() -> float:
    """VICReg's loss when every embedding is the same vector: only the variance terms remain."""
    return 2 * VICREG_VARIANCE_WEIGHT * max(0.0, VICREG_TARGET_STD - math.sqrt(VICREG_EPSILON))


def _variance_term(z: torch.Tensor) -> torch.Tensor:
    std = torch.sqrt(z.var(dim=0) + VICREG_EPSILON)
    return F.relu(VICREG_TARGET_STD - std).mean()


def _covariance_term(z: torch.Tensor) -> torch.Tensor:
    batch, dim = z.shape
    centred = z - z.mean(dim=0)
    covariance = centred.T @ centred / (batch - 1)
    off_diagonal = covariance - torch.diag(torch.diagonal(covariance))
    return off_diagonal.pow(2).sum() / dim


def _check_pair(name: str, z1: torch.Tensor, z2: torch.Tensor) -> None:
    if z1.shape != z2.shape or z1.ndim != 2:
        raise ValueError(f"{name} expects two (B, D) batches of one shape, got "
                         f"{tuple(z1.shape)} and {tuple(z2.shape)}")  # fmt: skip


@dataclass(frozen=True)
class Objective:
    """One ``pretrain.method``'s loss, by name: ``loss(z1, z2, temperature)`` of two views'
    projections (B, D), its ``name`` as the stage prints it, and ``collapse(batch)``, its value
    when every embedding of a batch of ``batch`` images coincides (what training must beat)."""

    name: str
    loss: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]
    collapse: Callable[[int], float]


# pretrain.method → its objective; `none` trains nothing
OBJECTIVES = {
    "simclr": Objective("NT-Xent", nt_xent, lambda batch: math.log(2 * batch - 1)),
    "vicreg": Objective("VICReg loss", lambda z1, z2, _temperature: vicreg(z1, z2),
                        lambda _batch: vicreg_collapse_loss()),
}
