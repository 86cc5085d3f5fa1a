"""Train/validation/test split rules. Pure functions over label arrays.

Split names are ``train``, ``val`` and ``test`` everywhere in alr.
"""

from __future__ import annotations

import numpy as np

from alr_core.common.errors import AlrError

SPLITS = ("train", "val", "test")


def long_tail_counts(num_classes: int, head_count: int, imbalance_ratio: float) -> np.ndarray:
    """Class sizes decaying geometrically from ``head_count`` (class 0) to ``head_count / ratio``.

    n_k = round(head_count · ratio^(−k / (K − 1))), at least 1. Class 0 is the head and class
    K − 1 the tail, so the order of the class list decides which classes are rare.
    """
    if num_classes < 2:
        raise AlrError(f"a long-tailed split needs at least 2 classes, got {num_classes}")
    exponents = np.arange(num_classes) / (num_classes - 1)
    return np.maximum(1, np.round(head_count * imbalance_ratio ** (-exponents))).astype(int)


def long_tail_split(
    labels: np.ndarray,
    val_per_class: int,
    test_per_class: int,
    imbalance_ratio: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Balanced val/test splits and a long-tailed train split, drawn without overlap.

    Per class, ``val_per_class`` and ``test_per_class`` images are drawn first; the train size
    of class k is :func:`long_tail_counts` with the head as large as the smallest class's
    remainder allows. Images in none of the three splits get the split ``""`` (unused).

    Returns an array of split names, shape (N,).
    """
    classes, counts = np.unique(labels, return_counts=True)
    reserved = val_per_class + test_per_class
    if counts.min() <= reserved:
        smallest = classes[counts.argmin()]
        raise AlrError(
            f"data.val_per_class + data.test_per_class = {reserved} leaves no train images for "
            f"class {smallest}, which has {counts.min()} images; make them smaller"
        )
    train_counts = long_tail_counts(len(classes), int(counts.min() - reserved), imbalance_ratio)
    split = np.full(len(labels), "", dtype=object)
    for cls, n_train in zip(classes, train_counts):
        members = rng.permutation(np.flatnonzero(labels == cls))
        split[members[:val_per_class]] = "val"
        split[members[val_per_class:reserved]] = "test"
        split[members[reserved : reserved + n_train]] = "train"
    return split


def stratified_split(
    labels: np.ndarray, val_fraction: float, test_fraction: float, rng: np.random.Generator
) -> np.ndarray:
    """Split each class by the given fractions, rounding per class, train never empty.

    Unlike a global stratified shuffle, every class keeps at least one train image, however
    rare (a class of 3 images gets 2 train, 0 val, 1 test at fractions 0.1/0.2).
    Returns an array of split names, shape (N,).
    """
    split = np.full(len(labels), "train", dtype=object)
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        n = len(members)
        n_test = min(int(np.floor(test_fraction * n + 0.5)), n - 1)
        n_val = min(int(np.floor(val_fraction * n + 0.5)), n - 1 - n_test)
        split[members[:n_val]] = "val"
        split[members[n_val : n_val + n_test]] = "test"
    return split
