"""Train/validation/test split rules. Pure functions over label arrays.

Split names are ``train``, ``val`` and ``test`` everywhere in alr.

The drawn splits take images (or groups) in a draw ``order``: a function from an index array
to the same indices reordered. :func:`hashed` orders by a keyed hash of each image's id, so an
image keeps its place whatever other images are added or removed (a team's growing folder
leaves its test set nearly as it was, and scores before and after comparable); a generator's
``permutation`` reshuffles everything after the first changed class.
"""

from __future__ import annotations

import hashlib
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from alr_core.common.errors import AlrError

SPLITS = ("train", "val", "test")

Order = Callable[[np.ndarray], np.ndarray]


def hash_ranks(texts: Sequence[str], seed: int) -> np.ndarray:
    """A rank per text, uint64 (N,): BLAKE2b keyed by ``seed``, so the ranks are a random
    order that another seed redraws, yet one text's rank depends on nothing else."""
    key = seed.to_bytes(8, "little")
    return np.fromiter((int.from_bytes(hashlib.blake2b(text.encode(), key=key, digest_size=8).digest(), "little")
                        for text in texts), dtype=np.uint64, count=len(texts))  # fmt: skip


def hashed(ranks: np.ndarray) -> Order:
    """The draw order of ascending ``ranks`` (of :func:`hash_ranks`, indexed like the items)."""
    return lambda indices: indices[np.argsort(ranks[indices], kind="stable")]


def group_ranks(ranks: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Per group of ``np.unique(groups)`` (the indexing :func:`grouped_split` deals by), the
    lowest of its images' ``ranks``."""
    names, inverse = np.unique(groups, return_inverse=True)
    lowest = np.full(len(names), np.iinfo(np.uint64).max, dtype=np.uint64)
    np.minimum.at(lowest, inverse, ranks)
    return lowest


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


def stratified_split(labels: np.ndarray, val_fraction: float, test_fraction: float, order: Order) -> np.ndarray:
    """Split each class by the given fractions, rounding per class, train never empty: the
    first of its images in the draw ``order`` go to val, the next to test.

    Unlike a global stratified shuffle, every class keeps at least one train image, however
    rare (a class of 3 images gets 2 train, 0 val, 1 test at fractions 0.1/0.2).
    Returns an array of split names, shape (N,).
    """
    split = np.full(len(labels), "train", dtype=object)
    for cls in np.unique(labels):
        members = order(np.flatnonzero(labels == cls))
        n_val, n_test = evaluation_counts(np.array([len(members)]), val_fraction, test_fraction)[:, 0]
        split[members[:n_val]] = "val"
        split[members[n_val : n_val + n_test]] = "test"
    return split


def evaluation_counts(class_counts: np.ndarray, val_fraction: float, test_fraction: float) -> np.ndarray:
    """Val and test images per class, (2, K) int: each fraction of the class rounded half up,
    test first, leaving at least one train image."""
    n_test = np.minimum(np.floor(test_fraction * class_counts + 0.5), class_counts - 1)
    n_val = np.minimum(np.floor(val_fraction * class_counts + 0.5), class_counts - 1 - n_test)
    return np.stack([n_val, n_test]).astype(int)


def group_ids(names: np.ndarray, linked: list[np.ndarray]) -> np.ndarray:
    """One int per image, equal for images that must share a split, (N,): those with the same
    name in ``names`` (a patient or lesion id; "" is a group of its own) and, transitively, those
    in one index array of ``linked`` (identical images, which may join two patients' groups)."""
    ids = np.where(names == "", -1, pd.factorize(names)[0])
    alone = ids < 0
    ids[alone] = ids.max(initial=-1) + 1 + np.arange(alone.sum())
    for members in linked:
        ids[np.isin(ids, ids[members])] = ids[members].min()
    return ids


def grouped_split(labels: np.ndarray, groups: np.ndarray, val_fraction: float, test_fraction: float,
                  order: Order) -> np.ndarray:
    """Split so that images with the same ``groups`` id (:func:`group_ids`) share a split, each
    class's val and test counts as close to :func:`evaluation_counts` as whole groups allow
    without exceeding them, so every class keeps a train image.

    Groups are dealt out in the draw ``order`` (of the indices into ``np.unique(groups)``): a
    group goes to test where it fits in every class's remaining test share, else to val where it
    fits there, else to train. With one image per group this fills the shares exactly; large
    groups mostly land in train and can leave val and test short. Returns an array of split
    names, shape (N,)."""
    num_classes = int(labels.max()) + 1
    room = evaluation_counts(np.bincount(labels, minlength=num_classes), val_fraction, test_fraction)
    names, inverse = np.unique(groups, return_inverse=True)
    per_group = np.zeros((len(names), num_classes), dtype=int)
    np.add.at(per_group, (inverse, labels), 1)
    group_split = np.full(len(names), "train", dtype=object)
    for group in order(np.arange(len(names))):
        for row, split in ((1, "test"), (0, "val")):
            if (per_group[group] <= room[row]).all():
                room[row] -= per_group[group]
                group_split[group] = split
                break
    return group_split[inverse]
