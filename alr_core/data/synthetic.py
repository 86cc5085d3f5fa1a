"""A procedural benchmark source: class-dependent images of any N, K, size and imbalance.

Not a medical dataset. It exists to measure speed and memory at scale and to run the
pipeline without downloads. Class k is a grating at orientation π·k/K with spatial frequency
2, 3.5 or 5 cycles per image (k mod 3), under a soft window at a random position, with
random phase, contrast, orientation jitter and pixel noise; on 3 channels each class also
has its own tint. A small CNN learns it in a few epochs, but not perfectly at K ≥ 10.
"""

from __future__ import annotations

import numpy as np

from alr_core.common.errors import AlrError
from alr_core.data.splits import long_tail_counts

CHUNK_IMAGES = 4096  # images rendered at a time: bounds the float64 temporaries (~100 MB at 28 px)


def synthetic_layout(num_train: int, num_classes: int, imbalance_ratio: float, val_per_class: int,
                     test_per_class: int) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Labels and split names, both (N,): a long-tailed train split of ``num_train`` images
    (class 0 the head, class K − 1 the tail, sizes as :func:`~alr_core.data.splits.long_tail_counts`,
    at least one per class) and balanced val and test splits."""
    shares = long_tail_counts(num_classes, 10**6, imbalance_ratio).astype(float)
    if num_train < num_classes:
        raise AlrError(f"data.synthetic.num_train is {num_train}; it must be at least num_classes ({num_classes})")
    train_counts = np.maximum(1, np.floor(num_train * shares / shares.sum())).astype(int)
    if train_counts.sum() > num_train:  # the minimum of one image per class overshoots: share out the rest
        train_counts = 1 + np.floor((num_train - num_classes) * shares / shares.sum()).astype(int)
    # Settle the rounding on the head classes, so the train split has exactly num_train: the
    # shortfall (fewer than K) adds one image to each of the largest classes
    train_counts[: num_train - train_counts.sum()] += 1
    labels, splits = [], []
    for split, counts in (("train", train_counts), ("val", [val_per_class] * num_classes),
                          ("test", [test_per_class] * num_classes)):  # fmt: skip
        labels.append(np.repeat(np.arange(num_classes), counts))
        splits.append(np.full(int(np.sum(counts)), split, dtype=object))
    return np.concatenate(labels).astype(np.int64), np.concatenate(splits)


def synthetic_images(labels: np.ndarray, num_classes: int, size: int, channels: int,
                     rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    """Render one image per label: uint8 (N, size, size, channels)."""
    axis = np.linspace(-1.0, 1.0, size)
    y, x = np.meshgrid(axis, axis, indexing="ij")
    tints = 0.4 + 0.6 * rng.random((num_classes, channels))
    out = np.empty((len(labels), size, size, channels), dtype=np.uint8)
    for start in range(0, len(labels), CHUNK_IMAGES):
        k = labels[start : start + CHUNK_IMAGES]
        n = len(k)
        angle = np.pi * k / num_classes + rng.normal(0.0, 0.25 * np.pi / num_classes, n)
        cycles = 2.0 + 1.5 * (k % 3)
        phase = rng.uniform(0.0, 2 * np.pi, n)
        along = np.cos(angle)[:, None, None] * x + np.sin(angle)[:, None, None] * y
        wave = np.sin(np.pi * cycles[:, None, None] * along + phase[:, None, None])
        cx, cy = rng.uniform(-0.4, 0.4, (2, n, 1, 1))
        width = rng.uniform(0.5, 0.9, (n, 1, 1))
        window = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / width**2)
        contrast = rng.uniform(0.5, 1.0, (n, 1, 1))
        image = 0.5 + 0.45 * contrast * wave * window + rng.normal(0.0, 0.15, (n, size, size))
        image = image[..., None] * (tints[k][:, None, None, :] if channels == 3 else 1.0)
        out[start : start + n] = np.clip(np.round(image * 255), 0, 255).astype(np.uint8)
    return out
