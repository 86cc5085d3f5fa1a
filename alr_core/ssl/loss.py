"""NT-Xent, SimCLR's contrastive loss (Chen et al., ICML 2020)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """Normalised temperature-scaled cross-entropy of two views' embeddings.

    z1, z2: (B, D), row i of each the two views of image i. Rows are L2-normalised, so only
    directions count. Each of the 2B embeddings is an anchor whose positive is the other view
    of its image and whose negatives are the other 2B − 2 embeddings:
    ℓ(a) = −log( exp(s(a, a⁺)/t) / Σ_{k ≠ a} exp(s(a, k)/t) ) with s the cosine similarity
    and t = ``temperature``. Returns the mean over the 2B anchors, a 0-d tensor in nats;
    log(2B − 1) is its value when all embeddings coincide (chance).
    """
    if z1.shape != z2.shape or z1.ndim != 2:
        raise ValueError(f"nt_xent expects two (B, D) batches of one shape, got "
                         f"{tuple(z1.shape)} and {tuple(z2.shape)}")  # fmt: skip
    batch = len(z1)
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    logits = z @ z.T / temperature
    # an anchor is never its own negative
    logits.fill_diagonal_(float("-inf"))
    positives = torch.cat([torch.arange(batch, 2 * batch), torch.arange(batch)]).to(z.device)
    return F.cross_entropy(logits, positives)
