"""Batched augmentation and input conversion on uint8 image tensors.

Images stay uint8 (B, H, W, C) until :func:`to_input`; a random crop with padding and the
flips are one gather, so augmentation costs about one copy of the batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from alr_core.common.params import AugmentParams, check_crop_padding
from alr_core.nn.transfer import to_device


def augment(images: torch.Tensor, params: AugmentParams, generator: torch.Generator) -> torch.Tensor:
    """Random crop after zero padding by ``crop_padding`` px, random horizontal/vertical flips.

    images: uint8 (B, H, W, C) → uint8 (B, H, W, C). Draws come from ``generator`` (on the CPU,
    so a seed gives the same augmentation on any device).
    """
    batch, height, width, _ = images.shape
    pad = params.crop_padding
    # data.image_size: null keeps the source's size, which params.yaml's check cannot know
    check_crop_padding(pad, min(height, width), side_name="the images' side (data.image_size: null keeps the "
                       "source's)")  # fmt: skip
    if pad:
        images = F.pad(images, (0, 0, pad, pad, pad, pad))  # pads W and H, not C

    def offsets_and_flips(size, flip):
        start = torch.randint(0, 2 * pad + 1, (batch, 1), generator=generator)
        steps = torch.arange(size).expand(batch, size)
        if flip:
            flipped = torch.rand(batch, 1, generator=generator) < 0.5
            steps = torch.where(flipped, size - 1 - steps, steps)
        return to_device(start + steps, images.device)

    rows = offsets_and_flips(height, params.vflip)
    cols = offsets_and_flips(width, params.hflip)
    batch_index = torch.arange(batch, device=images.device)[:, None, None]
    return images[batch_index, rows[:, :, None], cols[:, None, :]]


def to_input(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 (B, H, W, C) → normalised float (B, C, H, W) in channels_last memory layout."""
    x = images.permute(0, 3, 1, 2).float().div_(255.0)
    return ((x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)).contiguous(memory_format=torch.channels_last)
