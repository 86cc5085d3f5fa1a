"""Variance of Gradients (VOG) of the last layer, in closed form (docs/method.md, phase 1).

For sample i with penultimate features h_i (D,), softmax probabilities p_i (K,) and label
ỹ_i, the gradient of CE(ỹ_i) with respect to the last layer's row for ỹ_i and its bias is
G_i = (p_{i,ỹ_i} − 1) · [h_i, 1], shape (D + 1,); no backward pass is needed.
VOG_i = mean over the D + 1 coordinates of the population standard deviation of G_i over
the last W snapshots.
"""

from __future__ import annotations

import torch


def last_layer_gradient(probs: torch.Tensor, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """G = (p_ỹ − 1)·[h, 1]. probs (N, K), features (N, D), labels (N,) → (N, D + 1)."""
    scale = probs.gather(1, labels[:, None]) - 1.0
    ones = torch.ones_like(features[:, :1])
    return scale * torch.cat([features, ones], dim=1)


def head_gradient(head: torch.nn.Linear, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """G of the linear ``head`` at ``features`` (N, D), without the dropout before it: a training
    forward's logits went through dropout masks ``features`` do not carry, so G taken from them
    would be neither the step's gradient nor the eval pass's. labels (N,) → (N, D + 1)."""
    with torch.no_grad():
        return last_layer_gradient(head(features).softmax(1), features, labels)


class VogBuffer:
    """The last ``window`` gradient snapshots of N samples, kept in memory as a ring.

    Memory: window · N · (D + 1) · 4 bytes (float32), plus one snapshot being filled when
    snapshots are written batch by batch. ``vog()`` works in chunks of rows, so its
    temporaries stay small.
    """

    def __init__(self, num_samples: int, dim: int, window: int, device="cpu"):
        self.window = window
        self.snapshots = torch.zeros(window, num_samples, dim, device=device)
        self.count = 0  # snapshots committed so far

    @property
    def ready(self) -> bool:
        """True once ``window`` snapshots exist."""
        return self.count >= self.window

    def add(self, gradients: torch.Tensor) -> None:
        """Commit a full snapshot, shape (N, D + 1)."""
        self.snapshots[self.count % self.window] = gradients
        self.count += 1

    def write(self, indices: torch.Tensor, gradients: torch.Tensor) -> None:
        """Fill rows (an index tensor or a slice) of the snapshot in progress, batch by batch;
        :meth:`commit` finishes it."""
        self.snapshots[self.count % self.window, indices] = gradients

    def commit(self) -> None:
        """Finish the snapshot filled by :meth:`write`."""
        self.count += 1

    def vog(self, chunk_rows: int = 16384) -> torch.Tensor:
        """VOG per sample, shape (N,). Requires :attr:`ready`."""
        if not self.ready:
            raise RuntimeError(f"VOG needs {self.window} snapshots, have {self.count}")
        num_samples = self.snapshots.shape[1]
        out = torch.empty(num_samples, device=self.snapshots.device)
        for start in range(0, num_samples, chunk_rows):
            block = self.snapshots[:, start : start + chunk_rows]
            out[start : start + chunk_rows] = block.std(dim=0, correction=0).mean(dim=1)
        return out


def normalize_by_class(vog: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Z-score VOG within each observed class (Agarwal et al.'s class-normalised VOG)."""
    out = torch.zeros_like(vog)
    for cls in range(num_classes):
        members = labels == cls
        if members.any():
            values = vog[members]
            out[members] = (values - values.mean()) / (values.std(correction=0) + 1e-12)
    return out
