"""Images that are pixel-for-pixel identical after preparation. Pure functions over the
prepared images, labels and splits.

An image in validation or test that is also in train makes those scores optimistic (the model
is tested on an image it was fitted to), and identical images with different labels are label
noise that needs no model to find. ``prepare`` keeps each group of identical images in one
split when it draws the splits itself, and reports both in metrics/data.json.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict

import numpy as np

from alr_core.common.text import counted

EXAMPLES = 5  # groups with different labels named in metrics/data.json


def identical_groups(images: np.ndarray) -> list[np.ndarray]:
    """Groups of two or more identical images among ``images`` (N, H, W, C): index arrays,
    ascending, the groups in the order of their first member."""
    members = defaultdict(list)
    for index, image in enumerate(images):
        members[hashlib.blake2b(np.ascontiguousarray(image), digest_size=16).digest()].append(index)
    return [np.asarray(group) for group in members.values() if len(group) > 1]


def keep_together(splits: np.ndarray, groups: list[np.ndarray]) -> np.ndarray:
    """``splits`` (N,) of ``train | val | test | ""`` (unused) with each group of identical images
    in one split: train when any member drew train (so no class loses its train images), else
    the split of its first member that drew one; unused members stay unused."""
    together = splits.copy()
    for group in groups:
        used = group[splits[group] != ""]
        if len(used) > 1:
            together[used] = "train" if (splits[used] == "train").any() else splits[used[0]]
    return together


def identical_summary(groups: list[np.ndarray], labels: np.ndarray, splits: np.ndarray,
                      sample_ids: np.ndarray, class_names: list[str]) -> dict:
    """metrics/data.json's ``identical_images``: ``groups`` and the ``images`` in them;
    ``with_different_labels``: groups whose labels disagree, and ``examples`` of them (up to
    :data:`EXAMPLES`, each ``{sample_id: class name}``); ``evaluation_images_in_train``:
    validation and test images identical to a train image (only a source's own splits leave
    any, as ``prepare`` keeps groups together when it draws the splits)."""
    differing = [g for g in groups if len(np.unique(labels[g])) > 1]
    in_train = [g for g in groups if (splits[g] == "train").any()]
    return {
        "groups": len(groups),
        "images": int(sum(len(g) for g in groups)),
        "with_different_labels": len(differing),
        "examples": [{str(sample_ids[i]): class_names[labels[i]] for i in g} for g in differing[:EXAMPLES]],
        "evaluation_images_in_train": int(sum(np.isin(splits[g], ["val", "test"]).sum() for g in in_train)),
    }


def identical_text(summary: dict) -> str | None:
    """What ``prepare`` prints about :func:`identical_summary`'s ``summary``; None without any
    identical images."""
    if not summary["groups"]:
        return None
    text = (f"identical images: {counted(summary['groups'], 'group')} ({summary['images']} images; alr keeps "
            "each group in one split where it draws the splits)")
    if summary["with_different_labels"]:
        example = ", ".join(f"{sample_id} ({name})" for sample_id, name in summary["examples"][0].items())
        text += (f"; {summary['with_different_labels']} with different labels, e.g. {example}: "
                 "label noise to fix at the source (all in metrics/data.json)")
    if summary["evaluation_images_in_train"]:
        text += (f"; {counted(summary['evaluation_images_in_train'], 'validation or test image')} of the "
                 "source's own splits also in train: their scores are optimistic")
    return text


def conflicting_copies(images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """bool (N,): images (N, H, W, C) with an identical copy under another label in ``labels``
    (N,), every copy of such a group flagged: the pixels cannot say which label is right."""
    flagged = np.zeros(len(labels), dtype=bool)
    for group in identical_groups(images):
        if len(np.unique(labels[group])) > 1:
            flagged[group] = True
    return flagged
