"""Host-to-device copies that do not make the host wait for the GPU.

Batch indices and augmentation draws are made on the host, from seeded CPU generators, so that
a seed gives the same draws on any device; they are copied to the device every batch. A plain
``tensor.to("cuda")`` from ordinary (pageable) host memory returns only when the copy is done,
so the host first waits for every kernel queued before it: a synchronisation per batch, and an
idle GPU while the host prepares the next one (bench/gpu_profile.md). Through pinned memory
and ``non_blocking`` the copy is queued like a kernel; PyTorch's caching host allocator keeps
the pinned buffer until the copy has run.
"""

from __future__ import annotations

import torch


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``tensor`` on ``device``; from host memory to a GPU without waiting (see the module)."""
    if device.type != "cuda" or tensor.device.type != "cpu":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)
