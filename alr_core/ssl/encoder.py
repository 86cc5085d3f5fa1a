"""The encoder that pretraining learns, the projection head on top of it, and its checkpoint.

The encoder is the pipeline's own classifier network (alr_core.nn.models, ``model.arch``
resolved the same way) with its classifier head removed, so that a later stage can start its
classifier from these weights: every key of the encoder's state dict is a key of the
classifier's, which adds only ``head.*``.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from alr_core.nn.models import ModelSpec, build_model, resolve_arch

# ``num_classes`` of an encoder's ModelSpec: it has no classifier head
ENCODER_ONLY = 0


def encoder_spec(arch: str, image_shape: tuple[int, int, int]) -> ModelSpec:
    """The encoder of ``arch`` (``model.arch``, ``auto`` resolved by image size as for the
    classifier) for images of shape (H, W, C). Dropout sits before the classifier head, which
    an encoder lacks, so it is 0."""
    height, width, channels = image_shape
    size = max(height, width)
    return ModelSpec(resolve_arch(arch, size), ENCODER_ONLY, channels, size, 0.0)


def build_encoder(spec: ModelSpec) -> nn.Module:
    """A fresh encoder: forward (B, C, H, W) → (features (B, D), features (B, D)), D =
    ``feature_dim``; the pair keeps the classifier's calling convention, so that the
    training engine's helpers (``predict``) serve it unchanged."""
    model = build_model(dataclasses.replace(spec, num_classes=1))
    model.head = nn.Identity()
    return model


class ProjectionHead(nn.Module):
    """SimCLR's projection g: Linear (D → D), BatchNorm, ReLU, Linear (D → ``out_dim``).

    The loss acts on g's output, the embeddings are taken before it: features before the head
    keep more of what the augmentations remove (Chen et al., 2020, §4.2)."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(in_dim, in_dim, bias=False), nn.BatchNorm1d(in_dim), nn.ReLU(inplace=True),
            nn.Linear(in_dim, out_dim),
        )  # fmt: skip

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(B, D) → (B, out_dim)."""
        return self.layers(features)


def save_encoder(path, spec: ModelSpec, encoder: nn.Module, normalization: dict, pretrain: dict,
                 head: nn.Module | None) -> None:  # fmt: skip
    """Write the encoder checkpoint: ``spec`` (ModelSpec fields, ``num_classes`` 0), the input
    ``normalization`` (train-split channel mean and std), the encoder's ``state_dict``, the
    projection head's (``projection_state_dict``, None without training) and the ``pretrain``
    params that made it."""
    from alr_core.common.artifacts import write_torch

    write_torch(path, {
        "spec": dataclasses.asdict(spec),
        "normalization": normalization,
        "state_dict": encoder.state_dict(),
        "projection_state_dict": head.state_dict() if head is not None else None,
        "pretrain": pretrain,
    })  # fmt: skip
